"""The SQL of a thread's shape, for the dashboard: the turns a previous_response_id chain
passes through and every fork hanging from them, tombstones included (a deleted turn is shown
as such, since later turns still build on it).

Two recursive queries, each one statement whatever the depth: up from a turn to its root, then
down from the root through the (indexed) previous_response_id. Serving the API never needs
the downward walk; building a turn's context is app/responses/repository.py's `chain`.
"""

from typing import Any

from sqlalchemy import Select, literal, select

from app.kit.driver import Db
from app.responses.repository import responses

# Turns drawn at most: a thread with more is cut, and says so.
MAX_NODES = 500
_COLUMNS = ("id", "previous_response_id", "status", "model", "created_at", "deleted_at", "input")


def _node(table: Any) -> list[Any]:
    return [table.c[name] for name in _COLUMNS]


class ThreadRepository:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def root(self, project_id: str, response_id: str) -> str | None:
        """The first turn of the thread `response_id` is in; None if the project has no such
        response (a tombstone counts: its descendants are still shown)."""
        r, parent = responses, responses.alias("parent")
        up = (
            select(r.c.id, r.c.previous_response_id, literal(0).label("depth"))
            .where(r.c.id == response_id, r.c.project_id == project_id)
            .cte("up", recursive=True)
        )
        up = up.union_all(
            select(parent.c.id, parent.c.previous_response_id, up.c.depth + 1).where(
                parent.c.id == up.c.previous_response_id, parent.c.project_id == project_id
            )
        )
        found = await self.db.execute(select(up.c.id).order_by(up.c.depth.desc()).limit(1))
        return found.scalar_one_or_none()

    async def descendants(self, project_id: str, root_id: str) -> list[dict[str, Any]]:
        """The root and every turn below it (up to MAX_NODES + 1, to tell a cut), in no
        particular order; each with its input, for a line of what was asked."""
        query: Select[Any] = _down(project_id, root_id)
        found = await self.db.execute(query.limit(MAX_NODES + 1))
        return [dict(row) for row in found.mappings()]


def _down(project_id: str, root_id: str) -> Select[Any]:
    r, child = responses, responses.alias("child")
    down = (
        select(*_node(r))
        .where(r.c.id == root_id, r.c.project_id == project_id)
        .cte("down", recursive=True)
    )
    down = down.union_all(
        select(*_node(child)).where(
            child.c.previous_response_id == down.c.id, child.c.project_id == project_id
        )
    )
    return select(*[down.c[name] for name in _COLUMNS])
