"""/v1/responses: thin handlers (parse, who is asking, call the service, answer)."""

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from app.auth import ProjectDep, get_caller
from app.db import EngineDep, SessionDep
from app.errors import InvalidRequest
from app.kit.http import json_response
from app.kit.listing import MetadataFilter, PageQuery
from app.kit.sse import EventStreamResponse
from app.responses import service, streaming
from app.responses.domain import ResponseStatus
from app.responses.params import omitted_tools
from app.responses.schemas import CountTokensRequest, CreateResponseRequest
from app.routing import GuardedRoute, SessionReadableRoute

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/responses", tags=["responses"], route_class=GuardedRoute)


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# Names the built-in tools (web_search, ...) a create left out of its model call.
OMITTED_TOOLS_HEADER = "x-tether-omitted-tools"


def event_stream(
    request: Request, events: AsyncGenerator[dict[str, Any], None], obfuscate: bool = False
) -> StreamingResponse:
    async def body() -> AsyncGenerator[bytes, None]:
        last = -1
        try:
            async with aclosing(events):  # closed with the answer, whichever way it ends
                async for event in events:
                    last = event["sequence_number"]
                    yield streaming.sse(streaming.obfuscated(event) if obfuscate else event)
        except Exception:
            # The status line is sent: a failure (the database or the broker gone mid-stream)
            # can only be told in the stream, as OpenAI's `error` event, never a cut.
            log.exception("a response stream failed after event %d", last)
            yield streaming.sse(streaming.error_event(last + 1))

    stall = request.app.state.settings.stream_stall_seconds
    return EventStreamResponse(body(), stall, SSE_HEADERS)


IDEMPOTENCY_KEY_MAX = 255

# The header is read by hand (idempotency_key_of), not declared as a parameter: FastAPI's
# per-request parameter solving was 3 % of a create's CPU. The schema still shows it.
IDEMPOTENCY_KEY_DOC = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX},
    "description": "A retried create with the same key returns the first result.",
}


def idempotency_key_of(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX:
        raise InvalidRequest(
            f"Invalid 'idempotency-key': String should have at most {IDEMPOTENCY_KEY_MAX} "
            "characters.",
            param="idempotency-key",
            code="invalid_value",
        )
    return key


@router.post("", openapi_extra={"parameters": [IDEMPOTENCY_KEY_DOC]})
async def create_response(body: CreateResponseRequest, request: Request) -> Response:
    """Create a model response; stored (store=true, the default) it can be fetched and continued
    with previous_response_id. With background=true it returns at once, `queued`; with
    stream=true the answer comes as server-sent events. A retried create with the same
    Idempotency-Key returns the first result."""
    deps: service.Deps = request.app.state.responses
    # GuardedRoute identified the caller before the body was parsed (not a dependency here:
    # solving one per request costs more than the lookup).
    caller = await get_caller(request)
    idempotency_key = idempotency_key_of(request)
    # Kept in this request's log line (app/kit/request_id.py), never sent to the model.
    request.state.client_metadata = body.client_metadata
    if body.stream:
        events = await service.create_stream(deps, caller, body, idempotency_key)
        obfuscate = bool((body.stream_options or {}).get("include_obfuscation"))
        answer: Response = event_stream(request, events, obfuscate)
    else:
        created = await service.create_response(deps, caller, body, idempotency_key)
        answer = json_response(created.body, headers=created.headers)
    if omitted := omitted_tools(body.tools):  # accepted: HOSTED_TOOLS=omit left them out
        headers = getattr(request.state, "headers", None) or {}
        request.state.headers = {**headers, OMITTED_TOOLS_HEADER: ", ".join(omitted)}
    return answer


@router.post("/input_tokens")
async def count_input_tokens(
    body: CountTokensRequest, request: Request, project_id: ProjectDep
) -> Response:
    """How many input tokens a create with these parameters would use: exact where the model's
    tokenizer is known, otherwise the estimate documented in app/responses/tokens.py."""
    req = CreateResponseRequest.model_validate(
        body.model_dump(exclude_unset=True)
        | {"model": body.model or "echo", "store": False, "input": body.input or []}
    )
    deps: service.Deps = request.app.state.responses
    return json_response(await service.count_input_tokens(deps, project_id, req))


@router.get("")
async def list_responses(
    query: Annotated[PageQuery, Query()],
    engine: EngineDep,
    project_id: ProjectDep,
    metadata: MetadataFilter,
    model: str | None = None,
    status: ResponseStatus | None = None,
) -> Response:
    """Stored responses, newest first by default, filtered by model, status and
    metadata[key]=value (several combine with AND). OpenAI has no such list; we do."""
    return json_response(
        await service.list_responses(
            engine, project_id, query, model=model, status=status, metadata=metadata
        )
    )


async def retrieve_response(
    response_id: str,
    request: Request,
    engine: EngineDep,
    project_id: ProjectDep,
    stream: bool = False,
    # Sequence numbers are 32-bit in the event log.
    starting_after: Annotated[int | None, Query(ge=-1, le=2**31 - 1)] = None,
    include_obfuscation: bool = False,
) -> Response:
    """Retrieve a stored response by id. With stream=true: its events after `starting_after`,
    then live ones until it ends (a background response can be resumed this way)."""
    response = await service.get_response(engine, project_id, response_id)
    if not stream:
        return json_response(response.body, headers=response.headers)
    after = -1 if starting_after is None else starting_after
    return event_stream(
        request,
        streaming.follow(engine, request.app.state.event_log, project_id, response_id, after),
        include_obfuscation,
    )


# The dashboard's live page reads this one route with its session cookie (app/routing.py).
router.add_api_route(
    "/{response_id}",
    retrieve_response,
    methods=["GET"],
    route_class_override=SessionReadableRoute,
)


@router.post("/compact")
async def compact_response() -> Response:
    """Not supported: compaction asks the model to summarise a conversation into an encrypted
    item only OpenAI's models can read back. context_management (which drops the oldest turns
    to fit) and truncation="auto" are what Tether offers instead."""
    raise InvalidRequest(
        "POST /v1/responses/compact is not supported by Tether: a chat-completions upstream "
        "cannot produce or read compaction items. Use truncation='auto' or context_management "
        "on create, which drop the oldest turns to fit.",
        code="unsupported_endpoint",
    )


@router.post("/{response_id}/cancel")
async def cancel_response(response_id: str, engine: EngineDep, project_id: ProjectDep) -> Response:
    """Cancel a background response. Cancelling again, or a finished response, returns it as
    it is."""
    return json_response(await service.cancel_response(engine, project_id, response_id))


@router.delete("/{response_id}")
async def delete_response(
    response_id: str, session: SessionDep, project_id: ProjectDep
) -> Response:
    """Delete a stored response. Later turns that chain through it keep their full context."""
    await service.delete_response(session, project_id, response_id)
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


@router.get("/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    query: Annotated[PageQuery, Query()],
    engine: EngineDep,
    project_id: ProjectDep,
) -> Response:
    """The input items of a stored response, newest first by default."""
    return json_response(await service.list_input_items(engine, project_id, response_id, query))
