"""All SQL of stored items found by id: the index of responses' items, and conversation items.

Items stay on their owners' rows (a response's input and output, a conversation's items); the
`response_items` table only says which response holds an id, so an `item_reference` is one
indexed lookup however many responses the project has.
"""

from typing import Any, cast

import orjson
from sqlalchemy import JSON, Insert, String, Table, Text, bindparam, func, insert, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from app.kit.driver import Db, DriverStatement, dialect_name
from app.models import ConversationItemRow, ConversationRow, ResponseItemRow, ResponseRow

index = cast(Table, ResponseItemRow.__table__)
responses = cast(Table, ResponseRow.__table__)
conversations = cast(Table, ConversationRow.__table__)
conversation_items = cast(Table, ConversationItemRow.__table__)
INDEX_COLUMNS = ["project_id", "item_id", "response_id"]


def item_ids_table(dialect: str) -> Any:
    """The `item_ids` parameter (a JSON array of ids, as text) as a table of one `value`
    column: one statement indexes every item, whatever their number."""
    ids = bindparam("item_ids", type_=Text)
    if dialect == "postgresql":
        return func.json_array_elements_text(sql_cast(ids, JSON)).table_valued("value").alias("ids")
    return func.json_each(ids).table_valued("value").alias("ids")


def index_from(
    dialect: str, project_id: ColumnElement[Any], response_id: ColumnElement[Any]
) -> Insert:
    """INSERT of the index rows of the ids in `item_ids`, for this response."""
    ids = item_ids_table(dialect)
    chosen = select(project_id, ids.c.value, response_id).select_from(ids)
    return insert(index).from_select(INDEX_COLUMNS, chosen)


# One statement per dialect: hot (every stored turn runs it).
INDEX = {
    name: DriverStatement(
        index_from(
            name,
            bindparam("project_id", type_=String),
            bindparam("response_id", type_=String),
        )
    )
    for name in ("postgresql", "sqlite")
}


def item_ids(items: list[dict[str, Any]]) -> str:
    """The `item_ids` parameter: the items' ids, each once."""
    return orjson.dumps(list(dict.fromkeys(i["id"] for i in items if i.get("id")))).decode()


async def index_items(
    db: Db, project_id: str, response_id: str, items: list[dict[str, Any]]
) -> None:
    """Record where these items of a stored response live (in the caller's transaction)."""
    if items:
        statement = INDEX[dialect_name(db)]
        await statement.execute(
            db, project_id=project_id, response_id=response_id, item_ids=item_ids(items)
        )


class ItemsRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

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
        rows = held.all()
        # An item as its response produced it wins over a copy a later turn re-sent.
        for items in [*(row.output for row in rows), *(row.input for row in rows)]:
            for item in items:
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
