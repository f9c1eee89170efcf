"""The rules of responses: what a create may ask for, how a thread is continued, what is kept.

create() does not use the request's transaction: a model call can take minutes, and holding a
pooled connection (or, on SQLite, a transaction) for that long would starve every other request.
It reads the thread on one short connection, calls the model with no connection held, and writes
the finished response in one short transaction. Reads use a bare connection, not a Session.
"""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.errors import InvalidRequest, NotFound, UpstreamError, UpstreamRateLimited
from app.kit.http import page
from app.kit.ids import new_id, now_seconds
from app.providers.base import UpstreamFailure
from app.providers.registry import Providers
from app.responses.items import normalize_input
from app.responses.render import render_response
from app.responses.repository import PreviousResponseGone, ResponsesRepository
from app.responses.schemas import CreateResponseRequest, ListQuery
from app.responses.translate import (
    chat_messages,
    chat_payload,
    check_reasoning,
    check_text,
    map_usage,
    to_output,
)

# Response.error.code for each way the model call can fail (codes the SDK knows).
FAILURE_CODES = {
    "client": "invalid_prompt",
    "rate_limited": "rate_limit_exceeded",
    "server": "server_error",
    "timeout": "server_error",
    "unreachable": "server_error",
}


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


def check_request(req: CreateResponseRequest) -> dict[str, Any]:
    """Reject what we cannot honour; return the parameters echoed on the Response object."""
    if req.input is None:
        raise InvalidRequest(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    if req.background and not req.store:
        raise InvalidRequest(
            "Background responses require store=true.", param="background", code="invalid_value"
        )
    if req.background:
        raise _unsupported("background", "Background responses are not available yet.")
    if req.stream:
        raise _unsupported("stream", "Streaming is not available yet.")
    if req.conversation is not None:
        raise _unsupported("conversation", "Conversations are not available yet.")
    if req.prompt is not None:
        raise _unsupported("prompt", "Prompt templates are not supported.")
    for i, tool in enumerate(req.tools):
        raise _unsupported(
            f"tools[{i}].type", f"Tool type '{tool.get('type')}' is not supported yet."
        )
    if req.tool_choice not in ("auto", "none"):
        raise InvalidRequest(
            "tool_choice requires tools; none were given.",
            param="tool_choice",
            code="invalid_value",
        )
    return {
        "store": req.store,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "parallel_tool_calls": req.parallel_tool_calls,
        # OpenAI echoes the effective sampling defaults.
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "top_logprobs": req.top_logprobs,
        "text": check_text(req.text),
        "reasoning": check_reasoning(req.reasoning),
        "tool_choice": req.tool_choice,
        "tools": [],
        "truncation": req.truncation,
        "user": req.user,
        "safety_identifier": req.safety_identifier,
        "prompt_cache_key": req.prompt_cache_key,
        "service_tier": req.service_tier,
    }


def _api_error(failure: UpstreamFailure, response_id: str | None) -> Exception:
    headers = {"x-tether-response-id": response_id} if response_id else None
    if failure.kind == "client":
        return InvalidRequest(failure.message, headers=headers)
    if failure.kind == "rate_limited":
        return UpstreamRateLimited(failure.message, code="rate_limit_exceeded", headers=headers)
    error = UpstreamError(failure.message, code="upstream_error", headers=headers)
    if failure.kind == "timeout":
        # Retrying a call that ran out its whole timeout only triples the wait.
        error.should_retry = False
    return error


async def create_response(
    engine: AsyncEngine,
    providers: Providers,
    project_id: str,
    req: CreateResponseRequest,
) -> dict[str, Any]:
    params = check_request(req)
    provider = providers.for_model(req.model)
    assert req.input is not None
    new_items = normalize_input(req.input)

    history: list[dict[str, Any]] = []
    if req.previous_response_id is not None:
        async with engine.connect() as conn:
            chain = await ResponsesRepository.from_session(conn).chain(
                project_id, req.previous_response_id
            )
        if not chain.found:
            raise previous_not_found(req.previous_response_id)
        history = chain.messages

    row: dict[str, Any] = {
        "id": new_id("resp"),
        "project_id": project_id,
        "model": req.model,
        "background": False,
        "created_at": now_seconds(),
        "completed_at": None,
        "previous_response_id": req.previous_response_id,
        "instructions": req.instructions,
        "input": new_items,
        "messages": [],
        "params": params,
        "error": None,
        "incomplete_details": None,
        "usage": None,
        "output": [],
        "metadata": req.metadata or {},
    }
    new_messages = chat_messages(new_items)
    payload = chat_payload(req, history, new_messages, params, providers.max_tokens_param)
    failure: UpstreamFailure | None = None
    try:
        result = await provider.complete(payload)
    except UpstreamFailure as exc:
        failure = exc
        row["status"] = "failed"
        row["error"] = {"code": FAILURE_CODES[exc.kind], "message": exc.message}
    else:
        row["status"], row["incomplete_details"], row["output"] = to_output(result)
        row["usage"] = map_usage(result.usage)
        row["completed_at"] = now_seconds()

    if req.store:
        row["messages"] = new_messages + chat_messages(row["output"])
        try:
            async with engine.begin() as conn:
                await ResponsesRepository.from_session(conn).create(row)
        except PreviousResponseGone as exc:
            # The parent was deleted for good while the model was answering.
            assert req.previous_response_id is not None
            raise previous_not_found(req.previous_response_id) from exc
    if failure is not None:
        raise _api_error(failure, row["id"] if req.store else None)
    return render_response(row)


async def get_response(engine: AsyncEngine, project_id: str, response_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = await ResponsesRepository.from_session(conn).get(project_id, response_id)
    if row is None:
        raise not_found(response_id)
    return render_response(row)


async def delete_response(session: AsyncSession, project_id: str, response_id: str) -> None:
    if not await ResponsesRepository.from_session(session).delete(project_id, response_id):
        raise not_found(response_id)


async def list_input_items(
    engine: AsyncEngine, project_id: str, response_id: str, query: ListQuery
) -> dict[str, Any]:
    async with engine.connect() as conn:
        items = await ResponsesRepository.from_session(conn).get_input(project_id, response_id)
    if items is None:
        raise not_found(response_id)
    if query.order == "desc":
        items = items[::-1]
    if query.after is not None:
        # An unknown cursor is past the end: an empty page, as for any exhausted cursor.
        ids = [item["id"] for item in items]
        items = items[ids.index(query.after) + 1 :] if query.after in ids else []
    return page(items[: query.limit + 1], query.limit)
