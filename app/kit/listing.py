"""Listing stored objects the OpenAI way: cursor pages ordered by id, filtered by metadata.

Ids sort by creation (app/kit/ids.py), so `after` is a plain id comparison and each page is an
index range scan. Several `metadata[k]=v` filters combine with AND: one JSONB containment test
on PostgreSQL (served by the GIN index), one json_extract per key on SQLite.

A metadata-filtered page on PostgreSQL is two plans in one statement (`filtered_page`), because
neither plan alone stays flat as a project grows (bench/README.md §9 has the figures):
- walking the project's rows in id order and testing each costs limit/selectivity rows, whatever
  the table's size, while matches are spread over time; but a filter whose matches are all old
  (a job that stopped) walks every newer row first;
- the metadata GIN index finds exactly the matches, but gives them unordered: a page of a common
  filter then sorts every match the project has.
So the statement walks at most WALK_ROWS_PER_ITEM rows per item of the page (and only if the first
PROBE_ROWS_PER_ITEM rows per item hold a match); only when that walk fills no page does it take
the matches from the GIN index. The planner is not asked to choose:
with the generic plan a prepared statement falls back to, it assumes every project is small
and every filter rare, and chose the GIN index (or a BitmapAnd with the project's whole btree
range) for common filters of big projects too.
"""

from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Boolean, ColumnElement, Select, Table, func, literal, select, union_all
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


# The walk of a filtered page reads at most this many rows per row it returns: it serves filters
# that match one row in 100 (with room for chance), the GIN index serves rarer ones.
WALK_ROWS_PER_ITEM = 200
# ...and it only starts when the first of them (this many per row) hold a match at all: a filter
# with none there is rare or old, and goes to the GIN index after reading these few rows, not
# all of them. A filter matching one row in 100 finds none in them once in 150 pages.
PROBE_ROWS_PER_ITEM = 25


def _limit(rows: int) -> Any:
    # Inline, not a parameter: the generic plan of a prepared statement must know it wants a
    # page, not (PostgreSQL's guess for a LIMIT parameter) a tenth of the table.
    return literal(rows, literal_execute=True)


def _after(id_column: Any, page: PageQuery) -> list[ColumnElement[bool]]:
    if page.after is None:
        return []
    return [id_column < page.after if page.order == "desc" else id_column > page.after]


def _order(id_column: Any, page: PageQuery) -> Any:
    return id_column.desc() if page.order == "desc" else id_column.asc()


def paged(query: Select[Any], id_column: Any, page: PageQuery) -> Select[Any]:
    """One page (and one row more, to tell has_more) after the cursor, in order."""
    query = query.where(*_after(id_column, page))
    return query.order_by(_order(id_column, page)).limit(_limit(page.limit + 1))


def filtered_page(
    table: Table,
    columns: list[Any],
    project_id: str,
    along: ColumnElement[bool] | None,
    where: list[ColumnElement[bool]],
    metadata: dict[str, str],
    page: PageQuery,
    dialect: str,
) -> Select[Any]:
    """A page of `columns` of the rows of `table` in the project that satisfy `along` and
    `where` and hold `metadata`. `along` is an equality that a btree (project_id, column, id)
    serves (model, status), the walk's way in; `where` is the rest.

    On PostgreSQL, with a metadata filter, the page comes from the walk or from the GIN index
    (see the module's docstring); both give exactly the rows of the plain query, in its order.
    """
    id_, meta = table.c.id, table.c.metadata
    matches = metadata_matches(meta, metadata, dialect)
    walked_by = [] if along is None else [along]
    if not matches or dialect != "postgresql":
        conditions = [table.c.project_id == project_id, *walked_by, *where, *matches]
        return paged(select(*columns).where(*conditions), id_, page)
    # The project inline, not a parameter: how to walk depends on its size (a big project's
    # rows in id order; a small one's all at once), which a generic plan cannot know.
    walked_by.insert(0, table.c.project_id == literal(project_id, literal_execute=True))
    rows = page.limit + 1

    def walk(count: int, *selected: Any) -> Any:
        """The first `count` rows after the cursor that the btree has, in page order, those
        of them that satisfy `where` and `metadata`: their ids come from the btree alone (an
        index-only scan: the primary key, which the planner prefers for its physical order,
        would read every project's rows), each row by its primary key."""
        ids = paged(
            select(id_.label("id")).where(*walked_by),
            id_,
            page.model_copy(update={"limit": count - 1}),
        ).subquery()
        return (
            select(*selected)
            .select_from(ids.join(table, id_ == ids.c.id))
            .where(*where, *matches)
            .order_by(_order(ids.c.id, page))
        )

    # 1. The walk: the next rows in page order, tested one by one, at most a bounded number;
    # not even that unless the first few hold a match.
    probe = walk(PROBE_ROWS_PER_ITEM * rows, id_).limit(_limit(1)).exists()
    found = (
        walk(WALK_ROWS_PER_ITEM * rows, *columns, id_.label("_id"))
        .where(probe)
        .limit(_limit(rows))
        .cte("walk")
    )
    walk_filled = select(func.count()).select_from(found).scalar_subquery() == rows
    # 2. The index: every match after the cursor (MATERIALIZED: found all at once through the
    # GIN index, never by the ordered walk the planner might pick for an ORDER BY ... LIMIT),
    # then the page of them. Runs only when the walk came back short.
    hits = (
        select(id_.label("id"))
        .where(*walked_by, *where, *_after(id_, page), *matches)
        .cte("hits")
        .prefix_with("MATERIALIZED")
    )
    first_hits = select(hits.c.id).order_by(_order(hits.c.id, page)).limit(_limit(rows))
    from_index = select(*columns, id_.label("_id")).where(id_.in_(first_hits), ~walk_filled)
    both = union_all(select(found).where(walk_filled), from_index).subquery("page")
    return select(*(both.c[column.name] for column in columns)).order_by(_order(both.c._id, page))


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
