"""Client for any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp, OpenAI...).

aiohttp rather than httpx: on this hardware the upstream client is the largest single cost of a
create, and aiohttp measured about 3x httpx's throughput (DESIGN §7, bench/upstream_clients.py).
One pooled session per process, created inside the running loop.
"""

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import orjson

from app.config import Settings
from app.ops.metrics import observe_upstream
from app.providers.base import ChatDelta, ChatResult, UpstreamFailure

log = logging.getLogger(__name__)


def _error_message(body: bytes, status: int) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(data.get("detail"), str):  # FastAPI-based servers (vLLM's older builds)
            return str(data["detail"])
    text = body.decode("utf-8", "replace").strip()[:500]
    return text or f"upstream answered HTTP {status}"


def _chunk(data: bytes) -> dict[str, Any]:
    """One streamed chunk; a failure some servers report in-stream as an UpstreamFailure."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamFailure(
            "server", "The model server streamed a chunk that is not JSON."
        ) from exc
    if not isinstance(chunk, dict):
        raise UpstreamFailure("server", "The model server streamed a chunk that is not an object.")
    if "error" in chunk:
        err = chunk["error"]
        message = err.get("message") if isinstance(err, dict) else str(err)
        raise UpstreamFailure("server", str(message or "The model server failed mid-answer."))
    return chunk


def _logprobs(choice: dict[str, Any]) -> list[dict[str, Any]]:
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return [entry for entry in content or [] if isinstance(entry, dict)]


def _delta(chunk: dict[str, Any]) -> ChatDelta:
    out = ChatDelta(usage=chunk.get("usage"), service_tier=chunk.get("service_tier"))
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        out.text += delta.get("content") or ""
        out.reasoning += delta.get("reasoning_content") or delta.get("reasoning") or ""
        out.refusal += delta.get("refusal") or ""
        out.tool_calls += delta.get("tool_calls") or []
        out.logprobs += _logprobs(choice)
        out.finish_reason = choice.get("finish_reason") or out.finish_reason
    return out


def published_context_window(entry: dict[str, Any]) -> int | None:
    """A /v1/models entry's context window, as the servers that publish it name it:
    vLLM and SGLang `max_model_len`; LM Studio `max_context_length`; OpenRouter-style
    `context_length`; llama.cpp's server `meta.n_ctx` (its runtime window) or, failing that,
    `meta.n_ctx_train` (the model's). Ollama publishes none through its OpenAI API."""
    meta: dict[str, Any] = entry["meta"] if isinstance(entry.get("meta"), dict) else {}
    for value in (
        entry.get("max_model_len"),
        entry.get("max_context_length"),
        entry.get("context_length"),
        meta.get("n_ctx"),
        meta.get("n_ctx_train"),
    ):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _classify(status: int) -> str:
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server"
    return "client"


class OpenAICompatibleProvider:
    """One process's calls to the upstream.

    The connection pool is never a queue. A call takes a kept-alive connection while fewer than
    UPSTREAM_MAX_CONNECTIONS calls hold one, else a connection of its own that closes after it
    (SQLAlchemy's overflow, uncapped). A cap would make calls wait behind streams that hold
    their connection for as long as their model generates or their client takes to read (one
    that stops reading holds it until it reads again or hangs up): 300 open streams made every
    other call wait for one of 256 connections, and fail (issue 14). The concurrency that
    matters is the model server's, and its scheduler enforces it (vLLM's max_num_seqs, Ollama's
    OLLAMA_NUM_PARALLEL): it queues the excess, or answers 429/503. What bounds the connections
    is what bounds the calls: the requests a process serves, and WORKER_CONCURRENCY.
    """

    # Which catalog deployment answered (app/providers/routed.py); this client alone: none.
    deployment: str | None = None

    def __init__(
        self, settings: Settings, *, base_url: str | None = None, api_key: str | None = None
    ) -> None:
        """The upstream of UPSTREAM_BASE_URL, or (`base_url`, `api_key`) one of the catalog's."""
        base = base_url or settings.upstream_base_url
        assert base
        self._base = base.rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        key = api_key if base_url else settings.upstream_api_key
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        # Only making a connection is timed against UPSTREAM_CONNECT_TIMEOUT: aiohttp's
        # `connect` timeout also runs while a call waits for a pooled connection
        # (BaseConnector.connect), `sock_connect` covers the TCP and TLS handshakes alone.
        self._connect_timeout = settings.upstream_connect_timeout
        self._timeout = aiohttp.ClientTimeout(
            total=settings.upstream_timeout, sock_connect=settings.upstream_connect_timeout
        )
        self._pool_size = settings.upstream_max_connections
        self._in_pool = 0  # calls holding (or making) a kept-alive connection
        self._pooled: aiohttp.ClientSession | None = None
        self._unpooled: aiohttp.ClientSession | None = None

    async def reserve(self) -> None:
        return None  # no limit of ours: the model server's own scheduler queues

    def release(self) -> None:
        return None

    def _session(self, *, keep_alive: bool) -> aiohttp.ClientSession:
        """Made on first use, inside the running loop. limit=0 on both: aiohttp never makes a
        call wait for a connection; `_in_pool` is what keeps the kept-alive ones to the pool."""
        session = self._pooled if keep_alive else self._unpooled
        if session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, force_close=not keep_alive)
            session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, json_serialize=lambda o: o
            )
            if keep_alive:
                self._pooled = session
            else:
                self._unpooled = session
        return session

    @contextmanager
    def _http(self) -> Iterator[aiohttp.ClientSession]:
        """The session for one call: pooled while the pool has room, else one whose
        connections close after their call. Never a wait."""
        if self._in_pool >= self._pool_size:
            yield self._session(keep_alive=False)
            return
        self._in_pool += 1
        try:
            yield self._session(keep_alive=True)
        finally:
            self._in_pool -= 1

    @asynccontextmanager
    async def _call(
        self, method: str, path: str, body: bytes | None = None, model: str = "(models)"
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """_request, measured: its duration (a stream's until its last chunk was read) and
        failures, by model (app/ops/metrics.py); and every failure logged, with its cause."""
        started = time.perf_counter()
        failure: str | None = None
        try:
            async with self._request(method, path, body) as resp:
                yield resp
        except UpstreamFailure as exc:
            failure = exc.kind
            # The caller's mistake (a 4xx it is answered with) is no incident of ours.
            level = logging.INFO if exc.kind == "client" else logging.WARNING
            log.log(
                level,
                "upstream %s %s for model %s failed after %.2f s (%s): %s",
                method,
                path,
                model,
                time.perf_counter() - started,
                exc.kind,
                exc.message,
                extra={"model": model, "upstream_failure": exc.kind},
            )
            raise
        finally:
            observe_upstream(model, time.perf_counter() - started, failure)

    @asynccontextmanager
    async def _request(
        self, method: str, path: str, body: bytes | None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """An upstream request whose status was checked; every failure as an UpstreamFailure."""
        try:
            with self._http() as http:
                async with http.request(
                    method, self._base + path, data=body, headers=self._headers
                ) as resp:
                    if resp.status >= 400:
                        raw = await resp.read()
                        kind = _classify(resp.status)
                        raise UpstreamFailure(kind, _error_message(raw, resp.status), resp.status)  # type: ignore[arg-type]
                    yield resp
        except aiohttp.ConnectionTimeoutError as exc:
            # Only the handshake is timed (sock_connect), so this is the server not accepting
            # a connection, not a call that ran out its time: a retry may well connect.
            raise UpstreamFailure(
                "unreachable",
                "Could not connect to the model server within "
                f"{self._connect_timeout:g} s (UPSTREAM_CONNECT_TIMEOUT).",
            ) from exc
        except TimeoutError as exc:
            raise UpstreamFailure("timeout", "The model server did not answer in time.") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailure(
                "unreachable", f"Could not reach the model server: {exc.__class__.__name__}."
            ) from exc

    async def _json(
        self, method: str, path: str, body: bytes | None = None, model: str = "(models)"
    ) -> Any:
        async with self._call(method, path, body, model) as resp:
            raw = await resp.read()
            try:  # inside the call: a body that is not JSON is one of its failures
                return orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise UpstreamFailure(
                    "server", "The model server sent a body that is not JSON."
                ) from exc

    async def stream(self, payload: dict[str, Any]) -> AsyncGenerator[ChatDelta, None]:
        """The completion as it is generated: the upstream is streamed too, so the first delta
        reaches our client as soon as the model produced it."""
        options = {"stream": True, "stream_options": {"include_usage": True}}
        async for chunk in self.chunks_raw({**payload, **options}):
            yield _delta(chunk)

    async def completion_raw(self, payload: dict[str, Any]) -> dict[str, Any]:
        data = await self._json(
            "POST", "/chat/completions", orjson.dumps(payload), str(payload.get("model"))
        )
        if not isinstance(data, dict):
            raise UpstreamFailure("server", "The model server sent no completion object.")
        return data

    async def chunks_raw(self, payload: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """The upstream's SSE chunks, parsed, until [DONE]."""
        body = orjson.dumps(payload)
        async with self._call("POST", "/chat/completions", body, str(payload.get("model"))) as resp:
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                yield _chunk(data)

    async def complete(self, payload: dict[str, Any]) -> ChatResult:
        data = await self._json(
            "POST", "/chat/completions", orjson.dumps(payload), str(payload.get("model"))
        )
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (KeyError, IndexError, TypeError) as exc:
            raise UpstreamFailure("server", "The model server sent no choices.") from exc
        return ChatResult(
            text=message.get("content"),
            finish_reason=choice.get("finish_reason"),
            usage=data.get("usage"),
            reasoning=message.get("reasoning_content") or message.get("reasoning"),
            tool_calls=message.get("tool_calls") or [],
            refusal=message.get("refusal"),
            logprobs=_logprobs(choice),
            service_tier=data.get("service_tier"),
        )

    async def list_models(self) -> list[dict[str, Any]]:
        data = await self._json("GET", "/models")
        models = data.get("data") if isinstance(data, dict) else None
        return [m for m in models or [] if isinstance(m, dict) and "id" in m]

    async def context_window(self, model: str) -> int | None:
        """From the upstream's /v1/models entry for `model`, where the server publishes it."""
        for entry in await self.list_models():
            if entry["id"] == model:
                return published_context_window(entry)
        return None

    async def close(self) -> None:
        sessions = [s for s in (self._pooled, self._unpooled) if s is not None]
        for session in sessions:
            await session.close()
        if sessions:
            # aiohttp closes its transports on the next loop turn.
            await asyncio.sleep(0)
