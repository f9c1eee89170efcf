"""Item references resolved: `{"type": "item_reference", "id": ...}` becomes the stored item.

The AI SDK's default multi-turn pattern re-sends earlier output this way. A reference is
resolved once, when its turn is created; the turn keeps the item itself, so replaying the
thread later never depends on the referenced item still being there.
"""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import InvalidRequest
from app.items.repository import ItemsRepository


async def resolve_references(
    engine: AsyncEngine, project_id: str, items: list[dict[str, Any]], field: str = "input"
) -> list[dict[str, Any]]:
    """`items` with each reference replaced by the item it names; an id the project does not
    have is a 400 naming `{field}[i].id`."""
    wanted = [item["id"] for item in items if item["type"] == "item_reference"]
    if not wanted:
        return items
    async with engine.connect() as conn:
        found = await ItemsRepository(conn).find(project_id, wanted)
    out = []
    for i, item in enumerate(items):
        if item["type"] == "item_reference":
            stored = found.get(item["id"])
            if stored is None:
                raise InvalidRequest(
                    f"Item with id '{item['id']}' not found.",
                    param=f"{field}[{i}].id",
                    code="invalid_value",
                )
            item = stored
        out.append(item)
    return out
