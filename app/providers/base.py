"""What the rest of the app knows about a model: a chat-completions payload in, a result out."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

FailureKind = Literal["client", "rate_limited", "server", "timeout", "unreachable"]


class UpstreamFailure(Exception):
    """The model call failed; `kind` decides how we answer and whether a retry could help."""

    def __init__(self, kind: FailureKind, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status

    @property
    def transient(self) -> bool:
        return self.kind != "client"


@dataclass(slots=True)
class ChatResult:
    text: str | None
    finish_reason: str | None
    usage: dict[str, Any] | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class ChatDelta:
    """One streamed chunk, reduced to what the Responses events need."""

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    # Tool-call pieces as the upstream streams them: {index, id?, function: {name?, arguments?}}
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


class ModelProvider(Protocol):
    async def complete(self, payload: dict[str, Any]) -> ChatResult: ...

    def stream(self, payload: dict[str, Any]) -> AsyncIterator[ChatDelta]: ...

    # Chat Completions proxied as they are (stored completions): the upstream's own objects.
    async def completion_raw(self, payload: dict[str, Any]) -> dict[str, Any]: ...

    def chunks_raw(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]: ...

    async def list_models(self) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...
