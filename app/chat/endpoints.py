"""/v1/chat/completions: the proxy, and the stored completions (thin handlers)."""

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from app.auth import ProjectDep
from app.chat import service
from app.chat.schemas import CreateChatCompletion, UpdateChatCompletion
from app.db import EngineDep
from app.kit.http import json_response
from app.kit.listing import MetadataFilter, PageQuery
from app.kit.sse import EventStreamResponse
from app.routing import GuardedRoute

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/chat/completions", tags=["chat"], route_class=GuardedRoute)


def chunk_stream(
    request: Request,
    chunks: AsyncGenerator[dict[str, Any], None],
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    async def body() -> AsyncGenerator[bytes, None]:
        try:
            async with aclosing(chunks):  # closed with the answer, whichever way it ends
                async for chunk in chunks:
                    yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        except Exception:
            # The status line is sent: told in the stream, as OpenAI does, never a cut.
            log.exception("a chat completion stream failed")
            failed = {"message": "The stream failed on the server's side.", "type": "server_error"}
            yield b"data: " + orjson.dumps({"error": {**failed, "param": None, "code": None}})
            yield b"\n\n"
            return
        yield b"data: [DONE]\n\n"

    stall = request.app.state.settings.stream_stall_seconds
    return EventStreamResponse(body(), stall, {"Cache-Control": "no-cache", **(headers or {})})


class AscPageQuery(PageQuery):
    order: Literal["asc", "desc"] = "asc"  # OpenAI's default for chat completions, messages


@router.post("")
async def create_chat_completion(
    body: CreateChatCompletion, request: Request, engine: EngineDep, project_id: ProjectDep
) -> Response:
    """Proxied to the upstream as sent; kept (store=true) with its messages and metadata."""
    providers = request.app.state.providers
    if body.stream:
        chunks, headers = await service.create_stream(engine, providers, project_id, body)
        return chunk_stream(request, chunks, headers)
    completion, headers = await service.create(engine, providers, project_id, body)
    return json_response(completion, headers=headers)


@router.get("")
async def list_chat_completions(
    query: Annotated[AscPageQuery, Query()],
    engine: EngineDep,
    project_id: ProjectDep,
    metadata: MetadataFilter,
    model: str | None = None,
) -> Response:
    """Stored chat completions, oldest first by default; metadata[key]=value filters AND."""
    return json_response(
        await service.list_completions(engine, project_id, query, model=model, metadata=metadata)
    )


@router.get("/{completion_id}")
async def retrieve_chat_completion(
    completion_id: str, engine: EngineDep, project_id: ProjectDep
) -> Response:
    return json_response(await service.get(engine, project_id, completion_id))


@router.get("/{completion_id}/messages")
async def list_chat_completion_messages(
    completion_id: str,
    query: Annotated[AscPageQuery, Query()],
    engine: EngineDep,
    project_id: ProjectDep,
) -> Response:
    """The request messages of a stored chat completion, each with an id."""
    return json_response(await service.list_messages(engine, project_id, completion_id, query))


@router.post("/{completion_id}")
async def update_chat_completion(
    completion_id: str, body: UpdateChatCompletion, engine: EngineDep, project_id: ProjectDep
) -> Response:
    """Replace a stored chat completion's metadata (the only thing that can change)."""
    return json_response(
        await service.update_metadata(engine, project_id, completion_id, body.metadata)
    )


@router.delete("/{completion_id}")
async def delete_chat_completion(
    completion_id: str, engine: EngineDep, project_id: ProjectDep
) -> Response:
    return json_response(await service.delete(engine, project_id, completion_id))
