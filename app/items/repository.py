"""All SQL of stored items found by id: the index of responses' items, and conversation items.

Items stay on their owners' rows (a response's input and output, a conversation's items); the
`response_items` table only says which response holds an id, so an `item_reference` is one
indexed lookup however many responses the project has.
"""

from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import ConversationItemRow, ConversationRow, ResponseItemRow, ResponseRow

index = cast(Table, ResponseItemRow.__table__)
responses = cast(Table, ResponseRow.__table__)
conversations = cast(Table, ConversationRow.__table__)
conversation_items = cast(Table, ConversationItemRow.__table__)


class ItemsRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def index(self, project_id: str, response_id: str, items: list[dict[str, Any]]) -> None:
        """Record where these items of a stored response live (in its transaction)."""
        ids = dict.fromkeys(item["id"] for item in items if item.get("id"))
        if ids:
            rows = [
                {"project_id": project_id, "item_id": item_id, "response_id": response_id}
                for item_id in ids
            ]
            await self.conn.execute(insert(index), rows)

    async def find(self, project_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored items with these ids, in the project: from responses that are not
        deleted, then from conversations."""
        found: dict[str, dict[str, Any]] = {}
        wanted = set(ids)
        r, i = responses.c, index.c
        held = await self.conn.execute(
            select(r.input, r.output)
            .join(index, i.response_id == r.id)
            .where(i.project_id == project_id, i.item_id.in_(wanted), r.deleted_at.is_(None))
        )
        for row in held:
            for item in [*row.output, *row.input]:
                if item.get("id") in wanted and item.get("type") != "item_reference":
                    found.setdefault(item["id"], item)
        missing = wanted - found.keys()
        if missing:
            c, ci = conversations.c, conversation_items.c
            held = await self.conn.execute(
                select(ci.item_id, ci.item)
                .join(conversations, c.id == ci.conversation_id)
                .where(c.project_id == project_id, ci.item_id.in_(missing))
            )
            for row in held:
                found.setdefault(row.item_id, row.item)
        return found
