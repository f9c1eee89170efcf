"""Listing stored objects the OpenAI way: cursor pages ordered by id, filtered by metadata.

Ids sort by creation (app/kit/ids.py), so `after` is a plain id comparison and each page is an
index range scan. Several `metadata[k]=v` filters combine with AND: one JSONB containment test
on PostgreSQL (served by the GIN index), one json_extract per key on SQLite.
"""

from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Boolean, ColumnElement, Select, func, literal
from sqlalchemy.dialects.postgresql import JSONB

from app.errors import InvalidRequest
from app.kit.http import page
from app.kit.metadata import validate_metadata


class PageQuery(BaseModel):
    # Query strings carry extras (the SDK's `include[]`, our metadata[...]): ignored here.
    model_config = ConfigDict(extra="ignore")

    after: str | None = None
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"


async def metadata_filter(request: Request) -> dict[str, str]:
    """`metadata[k]=v` query parameters as {k: v} (the SDK's encoding of metadata={...})."""
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name.startswith("metadata[") and name.endswith("]"):
            found[name[len("metadata[") : -1]] = value
        elif name == "metadata":
            raise InvalidRequest(
                "Filter by metadata as metadata[key]=value.", param="metadata", code="invalid_value"
            )
    try:
        validate_metadata(found)
    except ValueError as exc:
        raise InvalidRequest(
            f"Invalid 'metadata': {exc}.", param="metadata", code="invalid_value"
        ) from exc
    return found


MetadataFilter = Annotated[dict[str, str], Depends(metadata_filter)]


def metadata_matches(
    column: Any, wanted: dict[str, str], dialect: str
) -> list[ColumnElement[bool]]:
    if not wanted:
        return []
    if dialect == "postgresql":
        # metadata @> $1::jsonb, exactly the shape the GIN (jsonb_path_ops) index serves.
        return [column.op("@>", return_type=Boolean)(literal(wanted, JSONB))]
    return [func.json_extract(column, f'$."{key}"') == value for key, value in wanted.items()]


def page_of_list(items: list[dict[str, Any]], query: PageQuery) -> dict[str, Any]:
    """A page of a small list kept whole on its row (a response's input, a completion's
    messages). An unknown cursor is past the end: an empty page, as for any exhausted cursor."""
    if query.order == "desc":
        items = items[::-1]
    if query.after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(query.after) + 1 :] if query.after in ids else []
    return page(items[: query.limit + 1], query.limit)


def paged(query: Select[Any], id_column: Any, page: PageQuery) -> Select[Any]:
    """One page (and one row more, to tell has_more) after the cursor, in order."""
    if page.after is not None:
        query = query.where(
            id_column < page.after if page.order == "desc" else id_column > page.after
        )
    order = id_column.desc() if page.order == "desc" else id_column.asc()
    return query.order_by(order).limit(page.limit + 1)


def export_page_query(
    query: Select[Any],
    columns: tuple[Any, Any, Any],
    dialect: str,
    *,
    after: str | None,
    since: int | None,
    metadata: dict[str, str],
    limit: int,
    until: int | None = None,
) -> Select[Any]:
    """One page of an export: (id, created, metadata) `columns` filtered by creation time
    (since inclusive, until exclusive) and metadata, in id order after the `after` cursor
    (keyset: constant cost at any depth)."""
    id_column, created, metadata_column = columns
    if after is not None:
        query = query.where(id_column > after)
    if since is not None:
        query = query.where(created >= since)
    if until is not None:
        query = query.where(created < until)
    query = query.where(*metadata_matches(metadata_column, metadata, dialect))
    return query.order_by(id_column).limit(limit)
