"""Chat Completions: proxied to the upstream as sent; kept, with their messages and metadata,
when store=true (OpenAI's default is false). A streamed completion is stored as the completion
its chunks add up to.

Stored completions carry our own id (time-ordered, so lists page by id): upstream ids are often
not unique across servers, or across restarts of one.
"""

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.chat.repository import ChatCompletionsRepository
from app.chat.schemas import CreateChatCompletion
from app.errors import NotFound
from app.kit.http import page
from app.kit.ids import new_id, now_seconds
from app.kit.listing import PageQuery, page_of_list
from app.providers.base import DEPLOYMENT_HEADER, ModelProvider, UpstreamFailure, upstream_error
from app.providers.registry import Providers
from app.providers.templates import fit_template

log = logging.getLogger(__name__)


def not_found(completion_id: str) -> NotFound:
    return NotFound(f"Chat completion with id '{completion_id}' not found.")


def completion_id() -> str:
    return new_id("chatcmpl").replace("_", "-", 1)


def _row(
    project_id: str, cid: str, req: CreateChatCompletion, completion: dict[str, Any]
) -> dict[str, Any]:
    request = req.upstream_payload()
    messages = request.pop("messages")
    request.pop("model")
    return {
        "id": cid,
        "project_id": project_id,
        "model": req.model,
        "created": completion.get("created") or now_seconds(),
        "metadata": req.metadata or {},
        # Our ids win over any a client sent: they are what `after` pages by.
        "messages": [{**m, "id": f"{cid}-{n}"} for n, m in enumerate(messages)],
        "request": request,
        "completion": completion,
    }


def _upstream(req: CreateChatCompletion, providers: Providers) -> dict[str, Any]:
    """What the upstream is sent: the request as the client sent it, its messages shaped for
    the upstream's chat template as on the Responses path (the stored request keeps them as
    sent)."""
    payload = req.upstream_payload()
    payload["messages"] = fit_template(payload["messages"], providers.merge_messages)
    return payload


async def _store(engine: AsyncEngine, row: dict[str, Any]) -> None:
    async with engine.begin() as conn:
        await ChatCompletionsRepository(conn).create(row)


def _provider(providers: Providers, req: CreateChatCompletion) -> ModelProvider:
    tier = (req.model_extra or {}).get("service_tier")
    return providers.for_model(req.model, tier=tier if isinstance(tier, str) else None)


def _deployment(provider: ModelProvider) -> dict[str, str] | None:
    """The header naming the catalog deployment that answered, if the model is routed."""
    return {DEPLOYMENT_HEADER: provider.deployment} if provider.deployment else None


async def create(
    engine: AsyncEngine, providers: Providers, project_id: str, req: CreateChatCompletion
) -> tuple[dict[str, Any], dict[str, str] | None]:
    """The completion, and the headers that go with it."""
    provider = _provider(providers, req)
    try:
        completion = await provider.completion_raw(_upstream(req, providers))
    except UpstreamFailure as failure:
        headers = {DEPLOYMENT_HEADER: failure.deployment} if failure.deployment else None
        raise upstream_error(failure, headers) from failure
    completion["id"] = cid = completion_id()
    if req.store:
        await _store(engine, _row(project_id, cid, req, completion))
    return completion, _deployment(provider)


async def create_stream(
    engine: AsyncEngine, providers: Providers, project_id: str, req: CreateChatCompletion
) -> tuple[AsyncGenerator[dict[str, Any], None], dict[str, str] | None]:
    """The upstream's chunks as they come (with our id), stored at the end if asked; and the
    headers that go with them (the first chunk is awaited before they are sent)."""
    provider = _provider(providers, req)
    cid = completion_id()
    chunks = provider.chunks_raw(_upstream(req, providers))
    try:
        first = await anext(chunks)  # an upstream that fails at once is a plain HTTP error
    except StopAsyncIteration:
        first = None
    except UpstreamFailure as failure:
        headers = {DEPLOYMENT_HEADER: failure.deployment} if failure.deployment else None
        raise upstream_error(failure, headers) from failure

    async def relay() -> AsyncGenerator[dict[str, Any], None]:
        assembled = Assembly(cid)
        async with aclosing(chunks):  # the upstream call closes with the answer, however it ends
            if first is not None:
                assembled.add(first)
                yield {**first, "id": cid}
            try:
                async for chunk in chunks:
                    assembled.add(chunk)
                    yield {**chunk, "id": cid}
            except UpstreamFailure as failure:
                # The status line is sent: the failure can only be told in the stream, as
                # OpenAI does it (a chunk with `error`, which the SDKs raise as an APIError).
                log.warning("chat completion %s: the upstream failed mid-stream: %s", cid, failure)
                yield upstream_error(failure).body()
                return
        if req.store:
            await _store(engine, _row(project_id, cid, req, assembled.completion()))

    return relay(), _deployment(provider)


class Assembly:
    """Streamed chunks added up into the chat.completion a non-streamed call returns."""

    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        if not self.head:
            self.head = {
                k: chunk.get(k) for k in ("created", "model", "system_fingerprint", "service_tier")
            }
        self.usage = chunk.get("usage") or self.usage
        for choice in chunk.get("choices") or []:
            slot = self.choices.setdefault(
                choice.get("index", 0),
                {
                    "message": {"role": "assistant", "content": None},
                    "finish_reason": None,
                    "logprobs": None,
                },
            )
            delta = choice.get("delta") or {}
            message = slot["message"]
            for key in ("content", "refusal", "reasoning_content"):
                if delta.get(key):
                    message[key] = (message.get(key) or "") + delta[key]
            for call in delta.get("tool_calls") or []:
                calls = message.setdefault("tool_calls", [])
                while len(calls) <= call.get("index", 0):
                    calls.append(
                        {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                    )
                target = calls[call.get("index", 0)]
                target["id"] = call.get("id") or target["id"]
                function = call.get("function") or {}
                target["function"]["name"] += function.get("name") or ""
                target["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("logprobs"):
                logprobs = slot["logprobs"] = slot["logprobs"] or {"content": []}
                logprobs["content"] += choice["logprobs"].get("content") or []
            slot["finish_reason"] = choice.get("finish_reason") or slot["finish_reason"]

    def completion(self) -> dict[str, Any]:
        return {
            "id": self.cid,
            "object": "chat.completion",
            **{k: v for k, v in self.head.items() if v is not None},
            "choices": [{"index": i, **slot} for i, slot in sorted(self.choices.items())],
            "usage": self.usage,
        }


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {**row["completion"], "metadata": row["metadata"] or {}}


async def get(engine: AsyncEngine, project_id: str, cid: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = await ChatCompletionsRepository(conn).get(project_id, cid)
    if row is None:
        raise not_found(cid)
    return _shown(row)


async def list_completions(
    engine: AsyncEngine,
    project_id: str,
    query: PageQuery,
    *,
    model: str | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    async with engine.connect() as conn:
        rows = await ChatCompletionsRepository(conn).list_page(
            project_id, query, model=model, metadata=metadata
        )
    return page([_shown(row) for row in rows], query.limit)


async def list_messages(
    engine: AsyncEngine, project_id: str, cid: str, query: PageQuery
) -> dict[str, Any]:
    async with engine.connect() as conn:
        messages = await ChatCompletionsRepository(conn).messages(project_id, cid)
    if messages is None:
        raise not_found(cid)
    return page_of_list(messages, query)


async def update_metadata(
    engine: AsyncEngine, project_id: str, cid: str, metadata: dict[str, str] | None
) -> dict[str, Any]:
    async with engine.begin() as conn:
        repo = ChatCompletionsRepository(conn)
        if not await repo.set_metadata(project_id, cid, metadata or {}):
            raise not_found(cid)
        row = await repo.get(project_id, cid)
    assert row is not None
    return _shown(row)


async def delete(engine: AsyncEngine, project_id: str, cid: str) -> dict[str, Any]:
    async with engine.begin() as conn:
        if not await ChatCompletionsRepository(conn).delete(project_id, cid):
            raise not_found(cid)
    return {"object": "chat.completion.deleted", "id": cid, "deleted": True}
