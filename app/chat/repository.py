"""All SQL for stored chat completions. Every query is scoped by project_id."""

from typing import Any, cast

from sqlalchemy import Select, Table, delete, func, insert, or_, select, update

from app.kit.driver import Db, dialect_name
from app.kit.listing import PageQuery, export_page_query, filtered_page
from app.models import ChatCompletionRow

completions = cast(Table, ChatCompletionRow.__table__)


def list_query(
    project_id: str, page: PageQuery, *, model: str | None, metadata: dict[str, str], dialect: str
) -> Select[Any]:
    """A page of GET /v1/chat/completions (bench/scale_bench.py EXPLAINs this very query)."""
    c = completions.c
    along = None if model is None else c.model == model  # (project_id, model, id)
    columns = [c.completion, c.metadata]
    return filtered_page(completions, columns, project_id, along, [], metadata, page, dialect)


class ChatCompletionsRepository:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def create(self, row: dict[str, Any]) -> None:
        await self.db.execute(insert(completions).values(row))

    async def get(self, project_id: str, completion_id: str) -> dict[str, Any] | None:
        c = completions.c
        result = await self.db.execute(
            select(c.completion, c.metadata).where(
                c.id == completion_id, c.project_id == project_id
            )
        )
        row = result.mappings().one_or_none()
        return dict(row) if row else None

    async def messages(self, project_id: str, completion_id: str) -> list[dict[str, Any]] | None:
        c = completions.c
        result = await self.db.execute(
            select(c.messages).where(c.id == completion_id, c.project_id == project_id)
        )
        row = result.one_or_none()
        return list(row.messages) if row else None

    async def list_page(
        self, project_id: str, page: PageQuery, *, model: str | None, metadata: dict[str, str]
    ) -> list[dict[str, Any]]:
        query = list_query(
            project_id, page, model=model, metadata=metadata, dialect=dialect_name(self.db)
        )
        result = await self.db.execute(query)
        return [dict(row) for row in result.mappings()]

    async def set_metadata(
        self, project_id: str, completion_id: str, metadata: dict[str, str]
    ) -> bool:
        c = completions.c
        result = await self.db.execute(
            update(completions)
            .where(c.id == completion_id, c.project_id == project_id)
            .values(metadata=metadata)
        )
        return bool(getattr(result, "rowcount", 0))

    async def delete(self, project_id: str, completion_id: str) -> bool:
        c = completions.c
        result = await self.db.execute(
            delete(completions).where(c.id == completion_id, c.project_id == project_id)
        )
        return bool(getattr(result, "rowcount", 0))

    # Retention and export (app/ops/): across projects, or for one whole project.

    async def purge_older(
        self, cutoff: int, below: tuple[int, str] | None, limit: int
    ) -> tuple[int, tuple[int, str] | None]:
        """Remove up to `limit` stored completions created before `cutoff`, newest first from
        the keyset position `below` (created, id) down: how many, and the position reached.
        A keyset, not a rescan from the cutoff: the rows earlier batches removed stay dead
        until VACUUM, and a rescan read them all again on every batch."""
        c = completions.c
        ids = select(c.id).where(c.created < cutoff)
        if below is not None:
            created, last = below
            ids = ids.where(c.created <= created, or_(c.created < created, c.id < last))
        ids = ids.order_by(c.created.desc(), c.id.desc()).limit(limit)
        found = await self.db.execute(
            delete(completions).where(c.id.in_(ids)).returning(c.created, c.id)
        )
        removed = [(int(row.created), str(row.id)) for row in found]
        return len(removed), min(removed, default=None)

    async def count_older(self, cutoff: int) -> int:
        c = completions.c
        found = await self.db.execute(select(func.count()).where(c.created < cutoff))
        return int(found.scalar_one())

    async def export_page(
        self,
        project_id: str,
        after: str | None,
        limit: int,
        *,
        since: int | None,
        metadata: dict[str, str],
        until: int | None = None,
        model: str | None = None,
    ) -> list[dict[str, Any]]:
        """A project's stored completions in id order after `after`: a page of an export."""
        c = completions.c
        query = select(c.id, c.messages, c.request, c.completion).where(c.project_id == project_id)
        if model is not None:
            query = query.where(c.model == model)
        page = export_page_query(
            query,
            (c.id, c.created, c.metadata),
            dialect_name(self.db),
            after=after,
            since=since,
            metadata=metadata,
            limit=limit,
            until=until,
        )
        found = await self.db.execute(page)
        return [dict(row) for row in found.mappings()]
