"""All SQL for responses. Every query is scoped by project_id."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import RowMapping, Table, delete, exists, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.ids import now_seconds
from app.models import ResponseItemRow, ResponseRow

responses = cast(Table, ResponseRow.__table__)
items = cast(Table, ResponseItemRow.__table__)

# The columns the API shows; deleted_at only filters.
VISIBLE = [c for c in responses.c if c.name != "deleted_at"]


@dataclass(slots=True)
class Chain:
    """A thread up to and including one response: every item, in the order the model sees it."""

    found: bool
    items: list[dict[str, Any]]


class ResponsesRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "ResponsesRepository":
        return cls(session)

    async def create(self, row: dict[str, Any], input_items: Sequence[dict[str, Any]]) -> None:
        await self.session.execute(insert(responses).values(row))
        if input_items:
            await self.session.execute(
                insert(items),
                [
                    {"response_id": row["id"], "position": n, "item_id": it["id"], "item": it}
                    for n, it in enumerate(input_items)
                ],
            )

    async def get(self, project_id: str, response_id: str) -> RowMapping | None:
        result = await self.session.execute(
            select(*VISIBLE).where(
                responses.c.id == response_id,
                responses.c.project_id == project_id,
                responses.c.deleted_at.is_(None),
            )
        )
        return result.mappings().one_or_none()

    async def chain(self, project_id: str, response_id: str) -> Chain:
        """Every input and output item up the previous_response_id chain, oldest turn first.

        ONE query whatever the depth: a recursive CTE walks up the chain, then each turn's input
        items (response_items) and output items (responses.output) are read in one UNION.
        Tombstoned ancestors still contribute: deleting a turn must not cut it out of the
        context of later turns. Only the head itself must be visible.
        """
        r, parent = responses, responses.alias("parent")
        chain = (
            select(r.c.id, r.c.previous_response_id, r.c.deleted_at, literal(0).label("depth"))
            .where(r.c.id == response_id, r.c.project_id == project_id)
            .cte("chain", recursive=True)
        )
        chain = chain.union_all(
            select(
                parent.c.id, parent.c.previous_response_id, parent.c.deleted_at, chain.c.depth + 1
            ).where(parent.c.id == chain.c.previous_response_id, parent.c.project_id == project_id)
        )
        outputs = select(
            chain.c.depth,
            literal(1).label("k"),
            literal(0).label("pos"),
            r.c.output.label("payload"),
            chain.c.deleted_at,
        ).join_from(chain, r, r.c.id == chain.c.id)
        inputs = select(
            chain.c.depth, literal(0), items.c.position, items.c.item, chain.c.deleted_at
        ).join_from(chain, items, items.c.response_id == chain.c.id)
        union = outputs.union_all(inputs).subquery()
        rows = (
            await self.session.execute(
                select(union).order_by(union.c.depth.desc(), union.c.k, union.c.pos)
            )
        ).all()
        head = [row for row in rows if row.depth == 0]
        if not head or head[0].deleted_at is not None:
            return Chain(found=False, items=[])
        out: list[dict[str, Any]] = []
        for row in rows:
            if row.k == 1:
                out.extend(row.payload or [])
            else:
                out.append(row.payload)
        return Chain(found=True, items=out)

    async def input_items(
        self, response_id: str, *, after: str | None, limit: int, order: str
    ) -> list[dict[str, Any]]:
        """One page (+1 row to tell has_more) of a response's input items; `after` is an item id.

        The caller has checked the response is visible in its project.
        """
        query = select(items.c.item).where(items.c.response_id == response_id)
        if after is not None:
            cursor = (
                select(items.c.position)
                .where(items.c.response_id == response_id, items.c.item_id == after)
                .scalar_subquery()
            )
            query = query.where(
                items.c.position < cursor if order == "desc" else items.c.position > cursor
            )
        position = items.c.position.desc() if order == "desc" else items.c.position.asc()
        result = await self.session.execute(query.order_by(position).limit(limit + 1))
        return [row[0] for row in result.all()]

    async def delete(self, project_id: str, response_id: str) -> bool:
        """Delete a response; False if there was none to delete.

        A response later turns still chain through becomes a tombstone (404 to the API, its
        items kept for the descendants' context). A leaf is removed for real, and so is every
        tombstoned ancestor that no longer has anything hanging from it.
        """
        found = await self.session.execute(
            select(responses.c.previous_response_id).where(
                responses.c.id == response_id,
                responses.c.project_id == project_id,
                responses.c.deleted_at.is_(None),
            )
        )
        row = found.one_or_none()
        if row is None:
            return False
        if not await self._remove_if_leaf(response_id, tombstoned_only=False):
            await self.session.execute(
                update(responses)
                .where(responses.c.id == response_id)
                .values(deleted_at=now_seconds())
            )
            return True
        parent = row.previous_response_id
        while parent is not None:
            parent_row = (
                await self.session.execute(
                    select(responses.c.previous_response_id).where(responses.c.id == parent)
                )
            ).one_or_none()
            if parent_row is None or not await self._remove_if_leaf(parent, tombstoned_only=True):
                break
            parent = parent_row.previous_response_id
        return True

    async def _remove_if_leaf(self, response_id: str, *, tombstoned_only: bool) -> bool:
        children = exists().where(responses.c.previous_response_id == response_id)
        stmt = delete(responses).where(responses.c.id == response_id, ~children)
        if tombstoned_only:
            stmt = stmt.where(responses.c.deleted_at.is_not(None))
        try:
            # A savepoint, so that a child committed in between (the FK says RESTRICT) turns
            # this into a tombstone instead of failing the request.
            async with self.session.begin_nested():
                result = await self.session.execute(stmt)
        except IntegrityError:
            return False
        return bool(getattr(result, "rowcount", 0))
