"""All SQL for conversations. Every query is scoped by project_id."""

from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, update

from app.kit.driver import Db
from app.kit.ids import now_seconds
from app.kit.listing import PageQuery, paged
from app.models import ConversationItemRow, ConversationRow

conversations = cast(Table, ConversationRow.__table__)
conversation_items = cast(Table, ConversationItemRow.__table__)


class ConversationsRepository:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def create(
        self, project_id: str, conversation_id: str, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        row = {
            "id": conversation_id,
            "project_id": project_id,
            "created_at": now_seconds(),
            "metadata": metadata,
            "next_seq": 0,
        }
        await self.db.execute(insert(conversations).values(row))
        return row

    async def get(self, project_id: str, conversation_id: str) -> dict[str, Any] | None:
        c = conversations.c
        result = await self.db.execute(
            select(c.id, c.created_at, c.metadata).where(
                c.id == conversation_id, c.project_id == project_id
            )
        )
        row = result.mappings().one_or_none()
        return dict(row) if row else None

    async def list_page(self, project_id: str, page: PageQuery) -> list[dict[str, Any]]:
        """A page of the project's conversations, with how many items each holds (the
        dashboard's list; OpenAI's API has no list of conversations)."""
        c, i = conversations.c, conversation_items.c
        count = (
            select(func.count())
            .where(i.conversation_id == c.id)
            .correlate(conversations)
            .scalar_subquery()
        )
        query = select(c.id, c.created_at, c.metadata, count.label("items")).where(
            c.project_id == project_id
        )
        result = await self.db.execute(paged(query, c.id, page))
        return [dict(row) for row in result.mappings()]

    async def set_metadata(
        self, project_id: str, conversation_id: str, metadata: dict[str, Any]
    ) -> bool:
        c = conversations.c
        result = await self.db.execute(
            update(conversations)
            .where(c.id == conversation_id, c.project_id == project_id)
            .values(metadata=metadata)
        )
        return bool(getattr(result, "rowcount", 0))

    async def delete(self, project_id: str, conversation_id: str) -> bool:
        c = conversations.c
        result = await self.db.execute(
            delete(conversations).where(c.id == conversation_id, c.project_id == project_id)
        )
        return bool(getattr(result, "rowcount", 0))

    async def append(
        self, project_id: str, conversation_id: str, new: list[dict[str, Any]]
    ) -> bool:
        """Add items at the end, in order; False if there is no such conversation.

        The UPDATE ... RETURNING takes the conversation's row lock until commit, so concurrent
        appends take turns and each one's items get contiguous sequence numbers.
        """
        c = conversations.c
        result = await self.db.execute(
            update(conversations)
            .where(c.id == conversation_id, c.project_id == project_id)
            .values(next_seq=c.next_seq + len(new))
            .returning(c.next_seq)
        )
        end = result.scalar_one_or_none()
        if end is None:
            return False
        if new:
            start = end - len(new)
            await self.db.execute(
                insert(conversation_items),
                [
                    {
                        "conversation_id": conversation_id,
                        "seq": start + n,
                        "item_id": item["id"],
                        "item": item,
                    }
                    for n, item in enumerate(new)
                ],
            )
        return True

    async def items(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every item, oldest first (the caller has checked the conversation is visible)."""
        i = conversation_items.c
        result = await self.db.execute(
            select(i.item).where(i.conversation_id == conversation_id).order_by(i.seq)
        )
        return [row.item for row in result]

    async def page(self, conversation_id: str, query: PageQuery) -> list[dict[str, Any]]:
        """One page of items (and one more, to tell has_more), on the (conversation, seq) key.

        `after` is an item id: the page starts past its position. An id given twice is taken
        at its first position in the page's order; an unknown one is past the end (no rows).
        """
        i = conversation_items.c
        stmt = select(i.item).where(i.conversation_id == conversation_id)
        if query.after is not None:
            edge = func.max(i.seq) if query.order == "desc" else func.min(i.seq)
            cursor = (
                select(edge)
                .where(i.conversation_id == conversation_id, i.item_id == query.after)
                .scalar_subquery()
            )
            stmt = stmt.where(i.seq < cursor if query.order == "desc" else i.seq > cursor)
        order = i.seq.desc() if query.order == "desc" else i.seq.asc()
        result = await self.db.execute(stmt.order_by(order).limit(query.limit + 1))
        return [row.item for row in result]

    async def item(self, conversation_id: str, item_id: str) -> dict[str, Any] | None:
        i = conversation_items.c
        result = await self.db.execute(
            select(i.item)
            .where(i.conversation_id == conversation_id, i.item_id == item_id)
            .order_by(i.seq)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def delete_item(self, conversation_id: str, item_id: str) -> bool:
        i = conversation_items.c
        result = await self.db.execute(
            delete(conversation_items).where(
                i.conversation_id == conversation_id, i.item_id == item_id
            )
        )
        return bool(getattr(result, "rowcount", 0))
