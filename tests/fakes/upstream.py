"""A fake OpenAI-compatible chat-completions server, scriptable per model.

Tests start it in a background thread (`FakeUpstream().start()`); benchmarks run it as a process
(`python -m tests.fakes.upstream --port 9100`) and use it as the throughput ceiling, so the hot
path is plain aiohttp + orjson with no per-request work beyond what the answer needs.
Out-of-process users script it over HTTP: `POST /_fake/script`, `GET /_fake/requests`,
`POST /_fake/reset`.
"""

import argparse
import asyncio
import concurrent.futures
import dataclasses
import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from aiohttp import web

BASE_MODEL = "fake-model"  # always listed by GET /v1/models, like a server's one loaded model
# One piece per word, whitespace kept, so "".join(pieces) is the reply again.
_WORD_PIECES = re.compile(r"\s*\S+\s*|\s+")
_ARGUMENT_PIECE = 16  # characters per streamed tool-call arguments delta


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Knobs:
    """How the fake answers one model; see FakeUpstream.script for the meaning of each knob."""

    reply: str | None = None
    delay: float = 0.0
    status: int | None = None
    error_message: str = "fake upstream failure"
    fail_times: int | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    tool_calls: list[dict[str, str]] | None = None
    # Only the first N requests call the tools (and say nothing); later ones answer `reply`,
    # as a model does once it has the tools' results: what an agent loop needs.
    tool_calls_times: int | None = None
    reasoning_content: str | None = None
    # Once a tool answered (the last message is a `tool` one), reply with what it returned, as
    # a model reports a command's output: what a client's own tool round trip needs.
    reply_with_tool_output: bool = False
    chunks: int | None = None
    chunk_delay: float = 0.0
    drop_after_chunks: int | None = None
    # The model declines: its answer is this refusal (message.refusal / delta.refusal).
    refusal: str | None = None
    # The tier a paid API says it served the request with (response's service_tier).
    service_tier: str | None = None
    # Published in GET /v1/models as the model's max_model_len, as vLLM does.
    max_model_len: int | None = None
    # Every request waits (after `delay`) until the test calls release(model): a call held
    # for exactly as long as the test needs, however slow the machine.
    hold: bool = False

    @classmethod
    def parse(cls, knobs: Mapping[str, Any]) -> "Knobs":
        unknown = set(knobs) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        return cls(**knobs)

    def __post_init__(self) -> None:
        # Fail at script() time, in the test that made the mistake, not inside the server thread.
        if self.delay < 0 or self.chunk_delay < 0:
            raise ValueError("delay and chunk_delay must be >= 0")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if self.chunks is not None and self.chunks < 1:
            raise ValueError("chunks must be >= 1")
        for name in ("fail_times", "drop_after_chunks", "tool_calls_times"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")
        for call in self.tool_calls or []:
            if not isinstance(call.get("name"), str) or not isinstance(call.get("arguments"), str):
                raise ValueError('each tool call needs "name" and "arguments" strings')

    def failure_status(self, nth_request: int) -> int | None:
        """The status to fail the nth (1-based) request for this model with, or None."""
        if self.fail_times is not None:
            return (self.status or 500) if nth_request <= self.fail_times else None
        return self.status


def message_text(content: Any) -> str:
    """A message's text: the string content, or its content parts' `text` concatenated."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = (p.get("text") for p in content if isinstance(p, dict))
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def _word_usage(messages: list[dict[str, Any]], content: str | None) -> dict[str, Any]:
    """Tokens counted as words: deterministic, so tests can assert the replayed prompt grows."""
    prompt = sum(len(message_text(m.get("content")).split()) for m in messages)
    completion = len((content or "").split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _pieces(text: str, chunks: int | None) -> list[str]:
    if not text:
        return []
    if chunks is None:
        return _WORD_PIECES.findall(text)
    n = min(chunks, len(text))  # more deltas than characters would mean empty deltas
    return [text[i * len(text) // n : (i + 1) * len(text) // n] for i in range(n)]


def _error(status: int, message: str) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _json(payload: Any) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


class FakeUpstream:
    """A scriptable OpenAI-compatible server; every public method is safe from any thread."""

    def __init__(
        self, default_knobs: Mapping[str, Any] | None = None, max_recorded: int | None = None
    ) -> None:
        self._default_raw = dict(default_knobs or {})
        self._defaults = Knobs.parse(self._default_raw)
        # The server thread and the test thread both touch this state.
        self._lock = threading.Lock()
        self._scripts: dict[str, Knobs] = {}
        self._calls: dict[str, int] = {}
        # Models of requests whose client hung up while the fake was still delaying them.
        self._abandoned: list[str] = []
        # Requests being answered now, and the most ever at once, per model: what a
        # concurrency limit in front of this server must keep under its cap.
        self._in_flight: dict[str, int] = {}
        self._max_in_flight: dict[str, int] = {}
        self._released: dict[str, threading.Event] = {}  # per model scripted with hold=True
        # (model, body, headers); bounded when the fake serves long benchmark runs.
        self._recorded: deque[tuple[str, dict[str, Any], dict[str, str]]] = deque(
            maxlen=max_recorded
        )
        self._completion_ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._url: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    # -- scripting and inspection -------------------------------------------------------------

    def script(self, model: str, **knobs: Any) -> None:
        """Set how requests whose body has this `model` are answered (replacing earlier knobs).

        reply, delay, status, error_message, fail_times, finish_reason, usage, tool_calls,
        reasoning_content, reply_with_tool_output, chunks, chunk_delay, drop_after_chunks,
        refusal, service_tier, max_model_len, hold; unset knobs take the defaults given to the
        constructor. A request with `logprobs: true` gets a logprob per streamed piece (-0.5
        each, `top_logprobs` of them).
        """
        parsed = Knobs.parse({**self._default_raw, **knobs})
        with self._lock:
            self._scripts[model] = parsed
            self._calls[model] = 0  # fail_times counts from the script that set it
            self._released[model] = threading.Event()

    def release(self, model: str) -> None:
        """Let the held requests for `model` (hold=True) go on, and every later one."""
        with self._lock:
            self._released.setdefault(model, threading.Event()).set()

    def requests(self, model: str | None = None) -> list[dict[str, Any]]:
        """JSON bodies received at /v1/chat/completions, oldest first."""
        with self._lock:
            return [body for m, body, _ in self._recorded if model is None or m == model]

    def abandoned(self, model: str) -> int:
        """How many requests for `model` the client closed before the fake had answered."""
        with self._lock:
            return self._abandoned.count(model)

    def in_flight(self, model: str) -> int:
        """Requests for `model` being answered right now (a stream until its last chunk)."""
        with self._lock:
            return self._in_flight.get(model, 0)

    def max_in_flight(self, model: str) -> int:
        """The most requests for `model` this server was answering at once."""
        with self._lock:
            return self._max_in_flight.get(model, 0)

    def request_headers(self, model: str | None = None) -> list[dict[str, str]]:
        """Headers (lower-cased names) of the same requests, in the same order."""
        with self._lock:
            return [dict(h) for m, _, h in self._recorded if model is None or m == model]

    def reset(self) -> None:
        """Forget scripts, recorded requests and id counters (constructor defaults stay)."""
        with self._lock:
            self._scripts.clear()
            self._calls.clear()
            self._recorded.clear()
            self._abandoned.clear()
            self._max_in_flight.clear()
            self._released.clear()
            self._completion_ids = itertools.count(1)
            self._call_ids = itertools.count(1)

    # -- HTTP ---------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)  # deep conversations are large
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/_fake/script", self._control_script)
        app.router.add_get("/_fake/requests", self._control_requests)
        app.router.add_post("/_fake/reset", self._control_reset)
        return app

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        model = str(body.get("model", ""))
        with self._lock:
            now = self._in_flight[model] = self._in_flight.get(model, 0) + 1
            self._max_in_flight[model] = max(self._max_in_flight.get(model, 0), now)
        try:
            return await self._answer(request, body, model)
        finally:
            with self._lock:
                self._in_flight[model] -= 1

    async def _answer(
        self, request: web.Request, body: dict[str, Any], model: str
    ) -> web.StreamResponse:
        headers = {name.lower(): value for name, value in request.headers.items()}
        with self._lock:
            self._recorded.append((model, body, headers))
            knobs = self._scripts.get(model, self._defaults)
            nth = self._calls[model] = self._calls.get(model, 0) + 1
            if knobs.tool_calls_times is not None:
                calling = nth <= knobs.tool_calls_times
                knobs = dataclasses.replace(
                    knobs,
                    reply=None if calling else knobs.reply,
                    tool_calls=knobs.tool_calls if calling else None,
                )
            completion_id = f"chatcmpl-fake-{next(self._completion_ids)}"
            call_ids = [f"call_{next(self._call_ids)}" for _ in knobs.tool_calls or []]

        if knobs.delay and not await self._wait(request, knobs.delay):
            with self._lock:
                self._abandoned.append(model)
            return web.Response(status=499)  # nobody is listening any more
        if knobs.hold:
            with self._lock:
                released = self._released.setdefault(model, threading.Event())
            if not await self._wait(request, float("inf"), until=released):
                with self._lock:
                    self._abandoned.append(model)
                return web.Response(status=499)
        status = knobs.failure_status(nth)
        if status is not None:
            return _error(status, knobs.error_message)

        answer = _Answer.decide(body, knobs, completion_id, call_ids)
        if not body.get("stream"):
            return _json(answer.completion())
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for n, event in enumerate(answer.events(knobs, include_usage)):
                if n and knobs.chunk_delay:
                    await asyncio.sleep(knobs.chunk_delay)
                await response.write(event)
            if knobs.drop_after_chunks is not None:
                # Mid-body close: the client sees an incomplete chunked body, like a crash.
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away; nothing left to tell it
        return response

    @staticmethod
    async def _wait(
        request: web.Request, delay: float, until: threading.Event | None = None
    ) -> bool:
        """Sleep `delay`, or until `until` is set (never time.sleep: slow requests must
        overlap), watching the client; False as soon as it hangs up, as a model server
        notices a closed connection."""
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0 and not (until and until.is_set()):
            await asyncio.sleep(min(left, 0.05))
            transport = request.transport
            if transport is None or transport.is_closing():
                return False
        return True

    async def _models(self, request: web.Request) -> web.Response:
        with self._lock:
            scripts = dict(self._scripts)
        data = []
        for name in dict.fromkeys([BASE_MODEL, *scripts]):
            entry: dict[str, Any] = {"id": name, "object": "model", "owned_by": "fake"}
            knobs = scripts.get(name, self._defaults)
            if knobs.max_model_len is not None:
                entry["max_model_len"] = knobs.max_model_len
            data.append({**entry, "created": 0})
        return _json({"object": "list", "data": data})

    async def _control_script(self, request: web.Request) -> web.Response:
        try:
            knobs = orjson.loads(await request.read())
            model = knobs.pop("model")
            self.script(model, **knobs)
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            return _error(400, f"bad script: {exc!r}")
        return _json({"ok": True})

    async def _control_requests(self, request: web.Request) -> web.Response:
        model = request.query.get("model")
        return _json({"data": self.requests(model), "headers": self.request_headers(model)})

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return _json({"ok": True})

    # -- running in a background thread ----------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL without /v1, e.g. "http://127.0.0.1:40123"."""
        if self._url is None:
            raise RuntimeError("FakeUpstream is not started")
        return self._url

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve from a daemon thread with its own event loop; returns once it is listening."""
        if self._thread is not None:
            raise RuntimeError("FakeUpstream is already started")
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()

        def run() -> None:
            try:
                asyncio.run(self._serve(host, port, ready))
            except BaseException as exc:  # surface bind errors in the caller's thread
                if not ready.done():
                    ready.set_exception(exc)
                else:
                    raise

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        try:
            self._url = ready.result(timeout=10)
        except BaseException:
            self._thread.join(timeout=5)
            self._thread = None
            raise
        return self._url

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=10)
        self._thread = self._loop = self._stopping = self._url = None

    def __enter__(self) -> "FakeUpstream":
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self, host: str, port: int, ready: concurrent.futures.Future[str]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        # A short shutdown_timeout: stop() must not wait out requests scripted to be slow.
        runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, backlog=1024).start()
            bound_port = runner.addresses[0][1]
            shown = f"[{host}]" if ":" in host else host
            ready.set_result(f"http://{shown}:{bound_port}")
            await self._stopping.wait()
        finally:
            await runner.cleanup()


@dataclasses.dataclass(slots=True, kw_only=True)
class _Answer:
    """One decided answer, rendered as a chat.completion or as chat.completion.chunk events."""

    id: str
    model: str
    created: int
    content: str | None
    reasoning_content: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    usage: dict[str, Any]
    refusal: str | None = None
    service_tier: str | None = None
    top_logprobs: int | None = None  # None: the request asked for no logprobs

    @classmethod
    def decide(
        cls, body: dict[str, Any], knobs: Knobs, completion_id: str, call_ids: list[str]
    ) -> "_Answer":
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        tool_output = messages[-1] if messages and messages[-1].get("role") == "tool" else None
        if knobs.reply_with_tool_output and tool_output is not None and not knobs.tool_calls:
            content: str | None = "The tool returned: " + message_text(tool_output.get("content"))
        elif knobs.reply is not None:
            content = knobs.reply
        elif knobs.tool_calls or knobs.refusal is not None:
            content = None  # like OpenAI: a tool-calling turn carries no text
        else:
            users = [m for m in messages if m.get("role") == "user"]
            content = "reply to: " + (message_text(users[-1].get("content")) if users else "")
        tool_calls = [
            {"id": call_id, "type": "function", "function": dict(call)}
            for call_id, call in zip(call_ids, knobs.tool_calls or [], strict=True)
        ]
        usage = knobs.usage if knobs.usage is not None else _word_usage(messages, content)
        return cls(
            id=completion_id,
            model=str(body.get("model", "")),
            created=int(time.time()),
            content=content,
            reasoning_content=knobs.reasoning_content,
            tool_calls=tool_calls,
            finish_reason=knobs.finish_reason or ("tool_calls" if tool_calls else "stop"),
            usage=usage,
            refusal=knobs.refusal,
            service_tier=knobs.service_tier,
            top_logprobs=int(body.get("top_logprobs") or 0) if body.get("logprobs") else None,
        )

    def logprobs(self, pieces: list[str]) -> dict[str, Any] | None:
        """Chat logprobs for these pieces of the content, one entry per piece."""
        if self.top_logprobs is None:
            return None

        def entry(token: str, logprob: float) -> dict[str, Any]:
            return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

        content = [
            {
                **entry(piece, -0.5),
                "top_logprobs": [entry(piece, -0.5 - n) for n in range(self.top_logprobs)],
            }
            for piece in pieces
        ]
        return {"content": content, "refusal": None}

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        if self.reasoning_content is not None:
            message["reasoning_content"] = self.reasoning_content
        if self.refusal is not None:
            message["refusal"] = self.refusal
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        logprobs = self.logprobs(_pieces(self.content or "", None))
        out = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{**choice, "logprobs": logprobs}],
            "usage": self.usage,
        }
        if self.service_tier is not None:
            out["service_tier"] = self.service_tier
        return out

    def events(self, knobs: Knobs, include_usage: bool) -> Iterator[bytes]:
        """SSE events as OpenAI sends them; stops after the content if drop_after_chunks is set."""
        head = {"id": self.id, "object": "chat.completion.chunk", "created": self.created}
        head["model"] = self.model
        if self.service_tier is not None:
            head["service_tier"] = self.service_tier

        def event(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            # With include_usage OpenAI sends "usage": null on every chunk but the last.
            tail = {"usage": None} if include_usage else {}
            return b"data: " + orjson.dumps({**head, "choices": [choice], **tail}) + b"\n\n"

        yield event({"role": "assistant", "content": ""})
        for piece in _pieces(self.reasoning_content or "", knobs.chunks):
            yield event({"reasoning_content": piece})
        pieces = _pieces(self.content or "", knobs.chunks)
        for piece in pieces[: knobs.drop_after_chunks]:
            yield event({"content": piece}, logprobs=self.logprobs([piece]))
        if knobs.drop_after_chunks is not None:
            return
        for piece in _pieces(self.refusal or "", knobs.chunks):
            yield event({"refusal": piece})
        for index, call in enumerate(self.tool_calls):
            function = {"name": call["function"]["name"], "arguments": ""}
            yield event({"tool_calls": [{"index": index, **call, "function": function}]})
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), _ARGUMENT_PIECE):
                part = {"arguments": arguments[start : start + _ARGUMENT_PIECE]}
                yield event({"tool_calls": [{"index": index, "function": part}]})
        yield event({}, self.finish_reason)
        if include_usage:
            yield b"data: " + orjson.dumps({**head, "choices": [], "usage": self.usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--chunks", type=int, default=None, help="deltas per streamed reply")
    parser.add_argument(
        "--max-recorded", type=int, default=1000, help="request bodies kept for /_fake/requests"
    )
    parser.add_argument(
        "--fixed-usage",
        action="store_true",
        help="answer a constant usage instead of counting words, so that a long prompt costs the "
        "fake no more CPU than a short one (a real server does that work on its GPU)",
    )
    args = parser.parse_args(argv)
    defaults: dict[str, Any] = {"delay": args.delay, "chunk_delay": args.chunk_delay}
    if args.fixed_usage:
        defaults["usage"] = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    if args.chunks is not None:
        defaults["chunks"] = args.chunks
    fake = FakeUpstream(default_knobs=defaults, max_recorded=args.max_recorded)
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(
        fake.build_app(),
        host=args.host,
        port=args.port,
        access_log=None,
        backlog=1024,
        shutdown_timeout=1.0,  # Ctrl-C should not wait on idle keep-alive clients
        loop=loop,
        print=lambda _: print(f"fake upstream on http://{args.host}:{args.port}", flush=True),
    )


if __name__ == "__main__":
    main()
