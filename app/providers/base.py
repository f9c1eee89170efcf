"""What the rest of the app knows about a model: a chat-completions payload in, a result out."""

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from app.errors import APIError, InvalidRequest, RateLimited, UpstreamError

# Which deployment of a catalog model answered a call: a header, since OpenAI's objects have
# no field for it (a stored response keeps it, app/models/response.py).
DEPLOYMENT_HEADER = "x-tether-deployment"

FailureKind = Literal["client", "rate_limited", "server", "timeout", "unreachable"]


class UpstreamFailure(Exception):
    """The model call failed; `kind` decides how we answer and whether a retry could help."""

    def __init__(self, kind: FailureKind, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.deployment: str | None = None  # the catalog deployment that failed, if any

    @property
    def transient(self) -> bool:
        return self.kind != "client"


# How vLLM, llama.cpp, Ollama, SGLang and OpenAI word "the prompt does not fit".
CONTEXT_LENGTH = re.compile(
    r"context length|context window|maximum context|too many tokens|exceeds the .*context",
    re.IGNORECASE,
)


def upstream_error(failure: UpstreamFailure, headers: dict[str, str] | None = None) -> APIError:
    """How a failed model call is answered: 4xx -> 400 with the upstream's message, 429 -> 429
    (so the SDK backs off and retries), unreachable, timeout or 5xx -> 502 server_error."""
    if failure.kind == "client":
        # OpenAI's code for it, so clients that handle it (by truncating) recognise it.
        code = "context_length_exceeded" if CONTEXT_LENGTH.search(failure.message) else None
        return InvalidRequest(failure.message, code=code, headers=headers)
    if failure.kind == "rate_limited":
        return RateLimited(failure.message, code="rate_limit_exceeded", headers=headers)
    error = UpstreamError(failure.message, code="upstream_error", headers=headers)
    if failure.kind == "timeout":
        # Retrying a call that ran out its whole timeout only triples the wait.
        error.should_retry = False
    return error


@dataclass(slots=True)
class ChatResult:
    text: str | None
    finish_reason: str | None
    usage: dict[str, Any] | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    refusal: str | None = None
    # The chat logprobs of the text (choices[0].logprobs.content), when asked for.
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    service_tier: str | None = None  # the tier the upstream says it used
    deployment: str | None = None  # the catalog deployment that answered


@dataclass(slots=True)
class ChatDelta:
    """One streamed chunk, reduced to what the Responses events need."""

    text: str = ""
    reasoning: str = ""
    refusal: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    # Tool-call pieces as the upstream streams them: {index, id?, function: {name?, arguments?}}
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)  # of this chunk's text
    service_tier: str | None = None
    deployment: str | None = None  # on the first chunk: the catalog deployment answering

    @property
    def visible(self) -> bool:
        """Whether it carries anything a client would be shown: before the first that does,
        a routed call may still move to another deployment (app/providers/routed.py)."""
        return bool(
            self.text or self.reasoning or self.refusal or self.tool_calls or self.finish_reason
        )


class ModelProvider(Protocol):
    # The catalog deployment that answered this call's last request (a routed call's own
    # view, app/providers/routed.py); None for a provider that is not routed.
    deployment: str | None

    async def reserve(self) -> None:
        """Take the place the next call will use now, waiting for one if the model is at its
        concurrency limit: so that a request beyond it is answered 429 before anything is
        stored or streamed. A no-op where there is no limit."""
        ...

    def release(self) -> None:
        """Give back a place reserve() took that no call used (a no-op otherwise)."""
        ...

    async def complete(self, payload: dict[str, Any]) -> ChatResult: ...

    def stream(self, payload: dict[str, Any]) -> AsyncGenerator[ChatDelta, None]: ...

    # Chat Completions proxied as they are (stored completions): the upstream's own objects.
    async def completion_raw(self, payload: dict[str, Any]) -> dict[str, Any]: ...

    def chunks_raw(self, payload: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]: ...

    async def list_models(self) -> list[dict[str, Any]]: ...

    async def context_window(self, model: str) -> int | None:
        """The model's context window in tokens, where the server publishes it."""
        ...

    async def close(self) -> None: ...
