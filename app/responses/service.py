"""The rules of responses: what a create may ask for, how a thread is continued, what is kept.

create() does not use a request-wide transaction: a model call can take minutes, and holding a
pooled connection (or, on SQLite, a transaction) for that long would starve every other request.
It reads the thread on one short connection, calls the model with no connection held, and writes
the response in one short transaction. A background create writes the row `queued`, commits,
and only then hands the id to the queue (DESIGN §6.1). Reads use a bare connection.
"""

import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.background.eventlog import EventLog
from app.background.repository import JobsRepository
from app.conversations import service as conversations
from app.conversations.repository import record_turn
from app.errors import InvalidRequest, NotFound, upstream_error
from app.jobs import Enqueuer
from app.kit.http import page
from app.kit.ids import new_id, now_seconds
from app.kit.listing import PageQuery, page_of_list
from app.providers.base import ModelProvider, UpstreamFailure
from app.providers.registry import Providers
from app.responses import streaming, tokens
from app.responses.events import TurnEvents
from app.responses.items import normalize_input
from app.responses.render import render_response
from app.responses.repository import DuplicateKey, PreviousResponseGone, ResponsesRepository
from app.responses.schemas import CreateResponseRequest
from app.responses.translate import (
    chat_messages,
    chat_payload,
    check_reasoning,
    check_text,
    check_tool_choice,
    check_tools,
    completed_values,
    failed_values,
)

log = logging.getLogger(__name__)

IN_FLIGHT = ("queued", "in_progress")


def not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.")


def previous_not_found(response_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def _unsupported(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_value")


def conversation_id(conversation: str | dict[str, Any] | None) -> str | None:
    if conversation is None or isinstance(conversation, str):
        return conversation
    if not isinstance(conversation.get("id"), str):
        raise InvalidRequest(
            "Missing required parameter: 'conversation.id'.",
            param="conversation.id",
            code="missing_required_parameter",
        )
    return str(conversation["id"])


def check_request(req: CreateResponseRequest) -> dict[str, Any]:
    """Reject what we cannot honour; return the parameters kept with the response."""
    if req.input is None:
        raise InvalidRequest(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    if req.background and not req.store:
        raise InvalidRequest(
            "Background responses require store=true.", param="background", code="invalid_value"
        )
    if req.conversation is not None and req.previous_response_id is not None:
        raise InvalidRequest(
            "Use either 'conversation' or 'previous_response_id', not both.",
            param="previous_response_id",
            code="invalid_value",
        )
    if req.prompt is not None:
        raise _unsupported("prompt", "Prompt templates are not supported.")
    tools = check_tools(req.tools)
    tool_choice = check_tool_choice(req.tool_choice, tools)
    return {
        "store": req.store,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "parallel_tool_calls": req.parallel_tool_calls,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "top_logprobs": req.top_logprobs,
        "text": check_text(req.text),
        "reasoning": check_reasoning(req.reasoning),
        "tool_choice": tool_choice,
        "tools": tools,
        "truncation": req.truncation,
        "user": req.user,
        "safety_identifier": req.safety_identifier,
        "prompt_cache_key": req.prompt_cache_key,
        "service_tier": req.service_tier,
        "conversation_id": conversation_id(req.conversation),
    }


def request_hash(req: CreateResponseRequest) -> str:
    body = req.model_dump(exclude_unset=True)
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def _replay(
    engine: AsyncEngine, project_id: str, key: str, req_hash: str
) -> dict[str, Any] | None:
    """The response an earlier create with this Idempotency-Key made, if any."""
    async with engine.connect() as conn:
        row = await ResponsesRepository(conn).get_by_idempotency_key(project_id, key)
    if row is None:
        return None
    if row["request_hash"] != req_hash:
        raise InvalidRequest(
            "Keys for idempotent requests can only be used with the same parameters they were "
            "first used with. Try using a key other than the one used in the original request.",
            code="idempotency_key_reused",
        )
    return render_response(row)


@dataclass(frozen=True, slots=True)
class Deps:
    """What a create needs of its process, made once in the app's lifespan."""

    engine: AsyncEngine
    providers: Providers
    enqueuer: Enqueuer
    events: EventLog


@dataclass(slots=True)
class Turn:
    """A validated create, ready to run: its row (not yet stored) and the model call."""

    row: dict[str, Any]
    provider: ModelProvider
    payload: dict[str, Any]
    store: bool
    background: bool


async def prepare(
    engine: AsyncEngine,
    providers: Providers,
    project_id: str,
    req: CreateResponseRequest,
    idempotency_key: str | None,
) -> Turn | dict[str, Any]:
    """Validate a create and read its thread; or the earlier response of a retried create."""
    params = check_request(req)
    provider = providers.for_model(req.model)
    assert req.input is not None
    new_items = normalize_input(req.input)
    key = idempotency_key if req.store else None
    req_hash = request_hash(req) if key else None
    if key and req_hash and (earlier := await _replay(engine, project_id, key, req_hash)):
        return earlier

    history: list[dict[str, Any]] = []
    if req.previous_response_id is not None:
        async with engine.connect() as conn:
            chain = await ResponsesRepository(conn).chain(project_id, req.previous_response_id)
        if not chain.found:
            raise previous_not_found(req.previous_response_id)
        if chain.status in IN_FLIGHT:
            raise InvalidRequest(
                f"Previous response with id '{req.previous_response_id}' is still "
                f"{chain.status}; continue it once it has finished.",
                param="previous_response_id",
                code="previous_response_in_progress",
            )
        history = chain.messages
    elif params["conversation_id"] is not None:
        async with engine.connect() as conn:
            items = await conversations.visible_items(conn, project_id, params["conversation_id"])
        history = chat_messages(items)

    new_messages = chat_messages(new_items)
    row: dict[str, Any] = {
        "id": new_id("resp"),
        "project_id": project_id,
        "status": "queued" if req.background else "in_progress",
        "model": req.model,
        "background": req.background,
        "created_at": now_seconds(),
        "completed_at": None,
        "previous_response_id": req.previous_response_id,
        "instructions": req.instructions,
        "input": new_items,
        "messages": new_messages,
        "params": params,
        "error": None,
        "incomplete_details": None,
        "usage": None,
        "output": [],
        "metadata": req.metadata or {},
        "idempotency_key": key,
        "request_hash": req_hash,
        "enqueued_at": now_seconds() if req.background else None,
    }
    if params["truncation"] == "auto" and providers.context_window:
        system = [{"role": "system", "content": req.instructions}] if req.instructions else []
        budget = providers.context_window - (req.max_output_tokens or 0)
        history = tokens.truncate(system, history, new_messages, budget)
    payload = chat_payload(
        req.model, req.instructions, params, history, new_messages, providers.max_tokens_param
    )
    return Turn(
        row=row, provider=provider, payload=payload, store=req.store, background=req.background
    )


async def create_response(
    deps: Deps, project_id: str, req: CreateResponseRequest, idempotency_key: str | None = None
) -> dict[str, Any]:
    engine = deps.engine
    turn = await prepare(engine, deps.providers, project_id, req, idempotency_key)
    if not isinstance(turn, Turn):
        return turn
    row = turn.row
    if turn.background:
        return await _start_background(deps, turn) or render_response(row)
    failure: UpstreamFailure | None = None
    try:
        row.update(completed_values(await turn.provider.complete(turn.payload), row["messages"]))
    except UpstreamFailure as exc:
        failure = exc
        row.update(failed_values(exc))
    if turn.store and (stored := await _store(engine, row)):
        return stored
    if not turn.store and failure is None:
        async with engine.begin() as conn:
            await record_turn(conn, project_id, row["params"], row["input"] + row["output"])
    if failure is not None:
        raise upstream_error(failure, {"x-tether-response-id": row["id"]} if turn.store else None)
    return render_response(row)


async def create_stream(
    deps: Deps, project_id: str, req: CreateResponseRequest, idempotency_key: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """stream=true: validated and stored before the first event (errors are plain 400s), then
    the events, live. A background one is followed through its event log."""
    engine, events = deps.engine, deps.events
    turn = await prepare(engine, deps.providers, project_id, req, idempotency_key)
    if not isinstance(turn, Turn):  # a retried create: follow the first one
        return streaming.follow(engine, events, project_id, turn["id"], -1)
    if turn.background:
        await _start_background(deps, turn)
        return streaming.follow(engine, events, project_id, turn.row["id"], -1)
    if turn.store and (stored := await _store(engine, turn.row)):
        return streaming.follow(engine, events, project_id, stored["id"], -1)
    return streaming.synchronous(engine, turn.provider, turn.payload, turn.row, turn.store)


async def _start_background(deps: Deps, turn: Turn) -> dict[str, Any] | None:
    """Store the row queued, log its first events, then enqueue (DESIGN §6.1)."""
    row = turn.row
    if stored := await _store(deps.engine, row):
        return stored
    opening = TurnEvents(render_response(row))
    try:
        await deps.events.append(
            row["id"], [opening.lifecycle("response.created"), opening.lifecycle("response.queued")]
        )
    except Exception:  # the job runs all the same; only its stream lacks the first events
        log.exception("could not log the first events of %s", row["id"])
    # After the commit: a worker must find the row. Should this fail, the row is queued all
    # the same and the sweeper hands it to the queue again.
    await deps.enqueuer.enqueue([row["id"]])
    return None


async def _store(engine: AsyncEngine, row: dict[str, Any]) -> dict[str, Any] | None:
    """Insert the row. Returns the earlier response instead if a concurrent create with the
    same Idempotency-Key won the race."""
    try:
        async with engine.begin() as conn:
            await ResponsesRepository(conn).create(row)
            if row["status"] in ("completed", "incomplete"):
                await record_turn(
                    conn, row["project_id"], row["params"], row["input"] + row["output"]
                )
    except PreviousResponseGone as exc:
        # The parent was deleted for good while the model was answering.
        raise previous_not_found(row["previous_response_id"]) from exc
    except DuplicateKey:
        return await _replay(engine, row["project_id"], row["idempotency_key"], row["request_hash"])
    return None


async def count_input_tokens(
    engine: AsyncEngine, providers: Providers, project_id: str, req: CreateResponseRequest
) -> dict[str, Any]:
    """What a create with these parameters would send the model, counted (app/responses/tokens)."""
    turn = await prepare(engine, providers, project_id, req, None)
    assert isinstance(turn, Turn)
    count = tokens.estimate(turn.payload["messages"], turn.payload.get("tools"))
    return {"object": "response.input_tokens", "input_tokens": count}


async def get_response(engine: AsyncEngine, project_id: str, response_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = await ResponsesRepository(conn).get(project_id, response_id)
    if row is None:
        raise not_found(response_id)
    return render_response(row)


async def cancel_response(engine: AsyncEngine, project_id: str, response_id: str) -> dict[str, Any]:
    """Cancel a background response. Idempotent; a finished one is returned as it finished.

    The worker running it sees the status change within a poll interval and stops its call.
    """
    async with engine.begin() as conn:
        repo = ResponsesRepository(conn)
        row = await repo.get(project_id, response_id)
        if row is None:
            raise not_found(response_id)
        if not row["background"]:
            raise InvalidRequest(
                "Only responses created with background=true can be cancelled.",
                param="response_id",
                code="invalid_value",
            )
        if row["status"] in IN_FLIGHT:
            await JobsRepository(conn).cancel(project_id, response_id)
            row = await repo.get(project_id, response_id)
            assert row is not None
    return render_response(row)


async def delete_response(session: AsyncSession, project_id: str, response_id: str) -> None:
    if not await ResponsesRepository(session).delete(project_id, response_id):
        raise not_found(response_id)


async def list_responses(
    engine: AsyncEngine,
    project_id: str,
    query: PageQuery,
    *,
    model: str | None,
    status: str | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    async with engine.connect() as conn:
        rows = await ResponsesRepository(conn).list_page(
            project_id, query, model=model, status=status, metadata=metadata
        )
    return page([render_response(row) for row in rows], query.limit)


async def list_input_items(
    engine: AsyncEngine, project_id: str, response_id: str, query: PageQuery
) -> dict[str, Any]:
    async with engine.connect() as conn:
        items = await ResponsesRepository(conn).get_input(project_id, response_id)
    if items is None:
        raise not_found(response_id)
    return page_of_list(items, query)
