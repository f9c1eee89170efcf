"""A turn's rules, written once: what the model is sent, and how a turn ends.

Every path that runs a turn (a create, a streamed create, a background job, token counting)
builds its model call with `build_payload` and ends with `end` or `store_ended`. The first
copies of these rules drifted within a day: the background path lost conversation history
and truncation. So a worker builds its call from the stored row, through the same function the
API uses, and gets the same request a synchronous create would have sent.
"""

from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.conversations import service as conversations
from app.errors import InvalidRequest
from app.items.repository import index_items
from app.kit.items import to_chat_messages
from app.providers.registry import Providers
from app.responses import tokens
from app.responses.domain import ANSWERED, IN_FLIGHT, FinalValues, ResponseRecord
from app.responses.repository import ResponsesRepository
from app.responses.translate import chat_payload


def previous_not_found(response_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


async def build_payload(
    engine: AsyncEngine, providers: Providers, row: ResponseRecord, *, accepted: bool = False
) -> dict[str, Any]:
    """The chat-completions request for a turn: this request's instructions, the thread (its
    previous_response_id chain or its conversation), truncated to the context window when
    truncation="auto", then this turn's own messages.

    `accepted`: the turn was validated when it was created (a background job), so its parent
    may since have become a tombstone; it still feeds the context.
    """
    params = row["params"]
    history = await _history(engine, row, accepted)
    budget = await _budget(providers, row)
    if budget is not None:
        system = [{"role": "system", "content": row["instructions"]}] if row["instructions"] else []
        history = tokens.truncate(system, history, row["messages"], budget, params["tools"])
    return chat_payload(
        row["model"],
        row["instructions"],
        params,
        history,
        row["messages"],
        providers.max_tokens_param,
        providers.merge_messages,
    )


async def _budget(providers: Providers, row: ResponseRecord) -> int | None:
    """The tokens the input may take, if the request asked to fit one: truncation="auto"
    (the model's context window, less max_output_tokens), or context_management's compaction
    (its compact_threshold; the window when it names none). Both drop the oldest turns: a
    chat upstream cannot summarise them for us."""
    params = row["params"]
    compaction = params.get("context_management") or []
    if params["truncation"] != "auto" and not compaction:
        return None
    window = await providers.context_window(row["model"])
    budgets = [t for entry in compaction if (t := entry.get("compact_threshold"))]
    if window is not None and (params["truncation"] == "auto" or len(budgets) < len(compaction)):
        budgets.append(window - (params["max_output_tokens"] or 0))
    return min(budgets) if budgets else None


async def _history(
    engine: AsyncEngine, row: ResponseRecord, accepted: bool
) -> list[dict[str, Any]]:
    previous = row["previous_response_id"]
    conversation_id = row["params"]["conversation_id"]
    if previous is not None:
        async with engine.connect() as conn:
            chain = await ResponsesRepository(conn).chain(
                row["project_id"], previous, head_may_be_deleted=accepted
            )
        if not chain.found:
            raise previous_not_found(previous)
        if chain.status in IN_FLIGHT and not accepted:
            raise InvalidRequest(
                f"Previous response with id '{previous}' is still {chain.status}; continue it "
                "once it has finished.",
                param="previous_response_id",
                code="previous_response_in_progress",
            )
        return chain.messages
    if conversation_id is not None:
        async with engine.connect() as conn:
            items = await conversations.visible_items(conn, row["project_id"], conversation_id)
        return to_chat_messages(items)
    return []


async def end(
    engine: AsyncEngine,
    row: ResponseRecord,
    values: FinalValues,
    *,
    attempt: int | None,
    join_conversation: bool = True,
) -> bool:
    """A turn's end, in one transaction: the final compare-and-set of its row (by the owner of
    `attempt`; None for a turn that was never stored) and, if it answered, its input and output
    appended to its conversation. False if the row was no longer this owner's to end
    (cancelled, or re-run elsewhere): then nothing is written."""
    async with engine.begin() as conn:
        return await end_on(conn, row, values, attempt=attempt, join_conversation=join_conversation)


async def end_on(
    conn: AsyncConnection,
    row: ResponseRecord,
    values: FinalValues,
    *,
    attempt: int | None,
    join_conversation: bool = True,
) -> bool:
    """`end`, within the caller's transaction (several jobs' ends written together:
    app/background/batching.py)."""
    if attempt is not None:
        if not await ResponsesRepository(conn).finish(row, values, attempt):
            return False
        output = values.get("output", [])
        await index_items(conn, row["project_id"], row["id"], output)
    if join_conversation:
        await _join_conversation(conn, row, values)
    return True


async def store_started(engine: AsyncEngine, row: ResponseRecord) -> None:
    """Insert a turn that has yet to run (queued, or in_progress for the request streaming
    it). Raises the repository's DuplicateKey / PreviousResponseGone."""
    async with _writing(engine, alone=True) as conn:
        await ResponsesRepository(conn).create(row, row["input"])


async def store_ended(engine: AsyncEngine, row: ResponseRecord) -> None:
    """Insert a turn that already ended (a synchronous create), with its conversation append,
    in one transaction. Raises the repository's DuplicateKey / PreviousResponseGone."""
    ended: FinalValues = {"status": row["status"], "output": row["output"]}
    joins = _joins_conversation(row, ended)
    async with _writing(engine, alone=not joins) as conn:
        await ResponsesRepository(conn).create(row, row["input"] + row["output"])
        if joins:
            await _join_conversation(conn, row, ended)


def _writing(engine: AsyncEngine, alone: bool) -> AbstractAsyncContextManager[AsyncConnection]:
    """A connection for a write. The response's insert is one atomic statement on PostgreSQL
    (ResponsesRepository.create): `alone`, it needs no transaction around it."""
    if alone and engine.dialect.name == "postgresql":
        return engine.connect()
    return engine.begin()


def _joins_conversation(row: ResponseRecord, values: FinalValues) -> bool:
    return row["params"]["conversation_id"] is not None and values.get("status") in ANSWERED


async def _join_conversation(
    conn: AsyncConnection, row: ResponseRecord, values: FinalValues
) -> None:
    conversation_id = row["params"]["conversation_id"]
    if conversation_id is None or not _joins_conversation(row, values):
        return
    items = row["input"] + values.get("output", row["output"])
    await conversations.record_turn(conn, row["project_id"], conversation_id, items)
