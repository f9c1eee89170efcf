"""One call to a catalog model, with failover: a ModelProvider made per request or job.

A deployment that refuses the connection, times out, answers 5xx or 429 is left for another
deployment of the model, each tried at most once. A stream may move only until the first chunk
that carries something a client would be shown (text, reasoning, a tool call, a finish):
chunks before it are held back, and after it a failure ends the call as it ends any stream
(no retry: the client already holds part of an answer). The deployment that answered is
named on the result (ChatResult / the first ChatDelta `deployment`, and `self.deployment`),
and a failure names the last one tried.
"""

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeVar

from app.ops.metrics import UPSTREAM_FAILOVERS
from app.providers.base import ChatDelta, ChatResult, UpstreamFailure
from app.providers.openai_compatible import OpenAICompatibleProvider
from app.providers.router import Deployment, NoDeployment, Pick, Route

log = logging.getLogger(__name__)

T = TypeVar("T")

# A place reserve() took that no call has used after this long is given back: a request that
# failed between reserving and calling must not hold it for good.
RESERVE_TTL = 30.0
# Worth another deployment: it may well answer.
FAILOVER_KINDS = frozenset({"unreachable", "timeout", "server", "rate_limited"})


def _raw_visible(chunk: dict[str, Any]) -> bool:
    """A raw chat.completion.chunk that carries something beyond the opening role."""
    if chunk.get("usage"):
        return True
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if choice.get("finish_reason") or any(
            delta.get(k) for k in ("content", "reasoning_content", "refusal", "tool_calls")
        ):
            return True
    return False


def _unmarked(chunk: Any, label: str) -> None:
    """Nothing to name the deployment on (a raw chunk, or a result named once it returns)."""


class RouteCall:
    """A ModelProvider for one request (or one background job) to a catalog model."""

    def __init__(self, route: Route, wait: float | None, rank: int) -> None:
        self.route = route
        self.wait = wait
        self.rank = rank
        self.deployment: str | None = None
        self._reserved: Pick | None = None
        self._expiry: asyncio.TimerHandle | None = None

    # -- places -------------------------------------------------------------------------------

    async def reserve(self) -> None:
        if self._reserved is None:
            self._reserved = await self._pick(frozenset(), None)
            self._expiry = asyncio.get_running_loop().call_later(RESERVE_TTL, self.release)

    def release(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._reserved is not None:
            self.route.finish(self._reserved, None, abandoned=True)
            self._reserved = None

    async def _pick(self, tried: frozenset[Deployment], last: UpstreamFailure | None) -> Pick:
        reserved, self._reserved = self._reserved, None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if reserved is not None and not reserved.done:
            return reserved
        try:
            return await self.route.pick(tried, self.wait, self.rank)
        except NoDeployment:
            if last is not None:
                raise last from None
            raise UpstreamFailure(
                "unreachable",
                f"No deployment of the model '{self.route.name}' is available: each failed "
                "recently and is skipped for a while (CIRCUIT_OPEN_SECONDS). Retry shortly.",
            ) from None

    def _failed(self, pick: Pick, failure: UpstreamFailure, moved_on: bool) -> bool:
        """Record a failed attempt; True if another deployment should be tried."""
        self.route.finish(pick, failure)
        failure.deployment = pick.deployment.label
        if moved_on or failure.kind not in FAILOVER_KINDS:
            return False
        UPSTREAM_FAILOVERS.labels(self.route.name, pick.deployment.label).inc()
        log.info(
            "model %s: deployment %s failed (%s: %s); trying another",
            self.route.name,
            pick.deployment.label,
            failure.kind,
            failure.message,
        )
        return True

    # -- calls --------------------------------------------------------------------------------

    async def _once(
        self, payload: dict[str, Any], call: Callable[[OpenAICompatibleProvider, Any], Awaitable[T]]
    ) -> T:
        """A one-piece answer: a stream of one chunk, visible, so it takes the same failover."""

        async def whole(client: OpenAICompatibleProvider, body: Any) -> AsyncGenerator[T, None]:
            yield await call(client, body)

        # Read to its end: the attempt is finished (not abandoned) only once the stream ends.
        answers: list[T] = [
            a async for a in self._streamed(payload, whole, lambda _: True, _unmarked)
        ]
        return answers[0]

    async def _streamed(
        self,
        payload: dict[str, Any],
        open_: Callable[[OpenAICompatibleProvider, Any], AsyncGenerator[T, None]],
        visible: Callable[[T], bool],
        mark: Callable[[T, str], None],
    ) -> AsyncIterator[T]:
        tried: frozenset[Deployment] = frozenset()
        last: UpstreamFailure | None = None
        while True:
            pick = await self._pick(tried, last)
            deployment = pick.deployment
            held: list[T] = []  # chunks before the first a client would be shown
            shown = False
            try:
                async with aclosing(open_(deployment.client, deployment.payload(payload))) as it:
                    async for chunk in it:
                        if shown:
                            yield chunk
                            continue
                        held.append(chunk)
                        if visible(chunk):
                            shown = True
                            self.deployment = deployment.label
                            mark(held[0], deployment.label)
                            for early in held:
                                yield early
            except UpstreamFailure as failure:
                if not self._failed(pick, failure, moved_on=shown):
                    raise
                tried, last = tried | {deployment}, failure
                continue
            except BaseException:
                self.route.finish(pick, None, abandoned=True)
                raise
            self.route.finish(pick, None)
            if not shown:  # an answer with nothing in it
                self.deployment = deployment.label
                if held:
                    mark(held[0], deployment.label)
                for early in held:
                    yield early
            return

    async def complete(self, payload: dict[str, Any]) -> ChatResult:
        result = await self._once(payload, lambda client, body: client.complete(body))
        result.deployment = self.deployment
        return result

    async def completion_raw(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._once(payload, lambda client, body: client.completion_raw(body))

    async def stream(self, payload: dict[str, Any]) -> AsyncGenerator[ChatDelta, None]:
        def mark(delta: ChatDelta, label: str) -> None:
            delta.deployment = label

        deltas = self._streamed(
            payload, lambda client, body: client.stream(body), lambda d: d.visible, mark
        )
        async for delta in deltas:
            yield delta

    async def chunks_raw(self, payload: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        chunks = self._streamed(
            payload,
            lambda client, body: client.chunks_raw(body),
            _raw_visible,
            _unmarked,
        )
        async for chunk in chunks:
            yield chunk

    # -- the model itself ---------------------------------------------------------------------

    async def list_models(self) -> list[dict[str, Any]]:
        return [model_entry(self.route, n) for n in [self.route.name, *self.route.spec.aliases]]

    async def context_window(self, model: str) -> int | None:
        """The smallest window a deployment declares; else what the first usable one publishes
        for its own model name."""
        declared = self.route.spec.context_window
        if declared is not None:
            return declared
        for deployment in self.route.deployments:
            if deployment.breaker.usable(time.monotonic()):
                return await deployment.client.context_window(deployment.upstream_model)
        return None

    async def close(self) -> None:
        self.release()


def model_entry(route: Route, name: str) -> dict[str, Any]:
    """A catalog name (or alias) as /v1/models lists it."""
    entry: dict[str, Any] = {"id": name, "object": "model", "created": 0, "owned_by": "tether"}
    if route.spec.context_window is not None:
        entry["max_model_len"] = route.spec.context_window  # as vLLM publishes it
    return entry
