"""Conversations: a durable list of items that responses read before their input and append to
when they finish. Not subject to the stored-response retention."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.conversations.repository import ConversationsRepository
from app.errors import InvalidRequest, NotFound
from app.items.service import resolve_references
from app.kit.driver import Db
from app.kit.http import page
from app.kit.ids import new_id
from app.kit.items import normalize_input
from app.kit.listing import PageQuery

MAX_ITEMS_PER_CALL = 20


def not_found(conversation_id: str) -> NotFound:
    return NotFound(f"Conversation with id '{conversation_id}' not found.")


def render(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "conversation",
        "created_at": row["created_at"],
        "metadata": row["metadata"] or {},
    }


def check_items(raw: list[Any] | None) -> list[dict[str, Any]]:
    if raw is not None and len(raw) > MAX_ITEMS_PER_CALL:
        raise InvalidRequest(
            f"Invalid 'items': at most {MAX_ITEMS_PER_CALL} items can be added at once, "
            f"got {len(raw)}.",
            param="items",
            code="array_above_max_length",
        )
    return normalize_input(raw or [], field="items")


async def create(
    engine: AsyncEngine, project_id: str, raw_items: list[Any] | None, metadata: dict[str, Any]
) -> dict[str, Any]:
    new = await resolve_references(engine, project_id, check_items(raw_items), "items")
    async with engine.begin() as conn:
        repo = ConversationsRepository(conn)
        row = await repo.create(project_id, new_id("conv"), metadata)
        await repo.append(project_id, row["id"], new)
    return render(row)


async def get(engine: AsyncEngine, project_id: str, conversation_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = await ConversationsRepository(conn).get(project_id, conversation_id)
    if row is None:
        raise not_found(conversation_id)
    return render(row)


async def update(
    engine: AsyncEngine, project_id: str, conversation_id: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    async with engine.begin() as conn:
        repo = ConversationsRepository(conn)
        if not await repo.set_metadata(project_id, conversation_id, metadata):
            raise not_found(conversation_id)
        row = await repo.get(project_id, conversation_id)
    assert row is not None
    return render(row)


async def delete(engine: AsyncEngine, project_id: str, conversation_id: str) -> dict[str, Any]:
    async with engine.begin() as conn:
        if not await ConversationsRepository(conn).delete(project_id, conversation_id):
            raise not_found(conversation_id)
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


async def add_items(
    engine: AsyncEngine, project_id: str, conversation_id: str, raw_items: list[Any]
) -> dict[str, Any]:
    new = await resolve_references(engine, project_id, check_items(raw_items), "items")
    async with engine.begin() as conn:
        if not await ConversationsRepository(conn).append(project_id, conversation_id, new):
            raise not_found(conversation_id)
    return {
        "object": "list",
        "data": new,
        "first_id": new[0]["id"] if new else None,
        "last_id": new[-1]["id"] if new else None,
        "has_more": False,
    }


async def _visible(repo: ConversationsRepository, project_id: str, conversation_id: str) -> None:
    if await repo.get(project_id, conversation_id) is None:
        raise not_found(conversation_id)


async def visible_items(db: Db, project_id: str, conversation_id: str) -> list[dict[str, Any]]:
    """Every item of a conversation, oldest first: the history a response in it reads."""
    repo = ConversationsRepository(db)
    await _visible(repo, project_id, conversation_id)
    return await repo.items(conversation_id)


async def record_turn(
    db: Db, project_id: str, conversation_id: str, items: list[dict[str, Any]]
) -> None:
    """A finished response's input and output, appended to its conversation (a conversation
    deleted meanwhile just gets nothing)."""
    await ConversationsRepository(db).append(project_id, conversation_id, items)


async def list_items(
    engine: AsyncEngine, project_id: str, conversation_id: str, query: PageQuery
) -> dict[str, Any]:
    async with engine.connect() as conn:
        repo = ConversationsRepository(conn)
        await _visible(repo, project_id, conversation_id)
        found = await repo.page(conversation_id, query)
    return page(found, query.limit)


async def get_item(
    engine: AsyncEngine, project_id: str, conversation_id: str, item_id: str
) -> dict[str, Any]:
    async with engine.connect() as conn:
        repo = ConversationsRepository(conn)
        await _visible(repo, project_id, conversation_id)
        item = await repo.item(conversation_id, item_id)
    if item is None:
        raise NotFound(f"Item with id '{item_id}' not found.")
    return item


async def delete_item(
    engine: AsyncEngine, project_id: str, conversation_id: str, item_id: str
) -> dict[str, Any]:
    async with engine.begin() as conn:
        repo = ConversationsRepository(conn)
        row = await repo.get(project_id, conversation_id)
        if row is None:
            raise not_found(conversation_id)
        if not await repo.delete_item(conversation_id, item_id):
            raise NotFound(f"Item with id '{item_id}' not found.")
    return render(row)
