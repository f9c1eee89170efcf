"""Which deployment of a catalog model takes a call (app/catalog/spec.py).

A call goes to the usable deployment (its circuit closed, or half-open with no probe out: a
half-open one first, as the probe) with the fewest calls in flight for its weight; ties are
broken by smooth weighted round robin (nginx's), so that an idle model still spreads by weight
and the order is deterministic. In-flight counts are this process's: every process balances
its own calls, at no cost on the hot path.

A deployment with `max_concurrency` is entered only with a place on its semaphore
(app/limits/slots.py: across every process with Redis). When every usable deployment is full the
call waits its turn in this process's queue of the model, ordered by tier then arrival
(app/kit/tiers.py): one task serves the queue, woken by every place given back here and polling
(5 to 50 ms) for places given back elsewhere. Past its wait the call is a `rate_limited` failure
(the API answers 429); a background job waits as long as it may run.
"""

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from app.catalog.spec import DeploymentSpec, ModelSpec
from app.config import Settings
from app.limits.slots import Slot, SlotStore
from app.ops.metrics import MODEL_QUEUE_REJECTED, UPSTREAM_CIRCUIT_OPEN
from app.providers.base import UpstreamFailure
from app.providers.breaker import Breaker, Circuit
from app.providers.openai_compatible import OpenAICompatibleProvider

log = logging.getLogger(__name__)

# How often a queue whose places are all held elsewhere looks again (doubling up to the max).
POLL_MIN = 0.005
POLL_MAX = 0.05


class NoDeployment(Exception):
    """Every deployment not yet tried by this call is skipped (its circuit open)."""


class Deployment:
    """One deployment of one model, as this process sees it."""

    def __init__(self, model: str, spec: DeploymentSpec, settings: Settings) -> None:
        self.model = model
        self.spec = spec
        self.label = spec.label
        self.upstream_model = spec.model or model
        self.limit = spec.max_concurrency
        self.slot_key = f"{model}:{self.label}"
        self.client = OpenAICompatibleProvider(
            settings, base_url=spec.base_url, api_key=spec.api_key
        )
        self.breaker = Breaker(settings.circuit_failures, settings.circuit_open_seconds)
        self.in_flight = 0
        self.current = 0.0  # smooth weighted round robin

    def payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The call as this deployment is sent it: its own model name, its max-tokens style."""
        out = {**payload, "model": self.upstream_model}
        wanted = self.spec.max_tokens_param
        if wanted is not None:
            other = "max_completion_tokens" if wanted == "max_tokens" else "max_tokens"
            if other in out:
                out[wanted] = out.pop(other)
        return out

    def circuit_changed(self) -> None:
        gauge = UPSTREAM_CIRCUIT_OPEN.labels(self.model, self.label)
        gauge.set(0 if self.breaker.state() == Circuit.CLOSED else 1)


@dataclass(eq=False, slots=True)
class Pick:
    """A call's hold on one deployment: its place in flight (and on its semaphore)."""

    deployment: Deployment
    slot: Slot | None
    probe: bool
    done: bool = False


@dataclass(order=True, slots=True)
class _Waiter:
    rank: int
    seq: int
    future: "asyncio.Future[Pick]" = field(compare=False)
    tried: frozenset[Deployment] = field(compare=False)


class Route:
    """A catalog model: its deployments, and the queue of calls waiting for a place."""

    def __init__(self, spec: ModelSpec, slots: SlotStore | None, settings: Settings) -> None:
        self.spec = spec
        self.name = spec.name
        self.deployments = [Deployment(spec.name, d, settings) for d in spec.deployments]
        self.total_weight = sum(d.spec.weight for d in self.deployments)
        self.slots = slots
        self.waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._freed = asyncio.Event()
        self._server: asyncio.Task[None] | None = None
        self._releases: set[asyncio.Task[None]] = set()

    # -- taking a deployment ------------------------------------------------------------------

    async def pick(self, tried: frozenset[Deployment], wait: float | None, rank: int) -> Pick:
        """A deployment for a call, waiting up to `wait` seconds (None: as long as it takes)
        for a place. NoDeployment if none untried is usable; a `rate_limited` failure when
        the wait runs out."""
        if not self.waiters:  # nobody queued: no need to take a turn
            pick = await self._try(tried)
            if pick is not None:
                return pick
        return await self._wait(tried, wait, rank)

    def _order(self, usable: list[Deployment], now: float) -> list[Deployment]:
        probes = [d for d in usable if d.breaker.state(now) == Circuit.HALF_OPEN]
        rest = sorted(
            (d for d in usable if d not in probes),
            key=lambda d: (d.in_flight / d.spec.weight, -(d.current + d.spec.weight)),
        )
        return probes + rest

    async def _try(self, tried: frozenset[Deployment]) -> Pick | None:
        now = time.monotonic()
        usable = [d for d in self.deployments if d not in tried and d.breaker.usable(now)]
        if not usable:
            raise NoDeployment
        for deployment in self._order(usable, now):
            slot = None
            if deployment.limit is not None and self.slots is not None:
                slot = await self.slots.take(deployment.slot_key, deployment.limit)
                if slot is None:
                    continue
                if not deployment.breaker.usable(time.monotonic()):  # a probe went out meanwhile
                    self._give_back(slot)
                    continue
            return self._take(deployment, slot, usable)
        return None

    def _take(self, deployment: Deployment, slot: Slot | None, usable: list[Deployment]) -> Pick:
        for other in usable:
            other.current += other.spec.weight
        deployment.current -= sum(d.spec.weight for d in usable)
        deployment.in_flight += 1
        return Pick(deployment, slot, deployment.breaker.start(time.monotonic()))

    async def _wait(self, tried: frozenset[Deployment], wait: float | None, rank: int) -> Pick:
        future: asyncio.Future[Pick] = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiters, _Waiter(rank, next(self._seq), future, tried))
        if self._server is None or self._server.done():
            self._server = asyncio.create_task(self._serve(), name=f"tether-queue-{self.name}")
        try:
            async with asyncio.timeout(wait):
                await asyncio.wait([future])
        except BaseException as exc:
            if not future.done():
                future.cancel()  # the server skips it
            elif not future.cancelled() and future.exception() is None:
                if isinstance(exc, TimeoutError):
                    return future.result()  # it came as the wait ran out: take it
                self.finish(future.result(), None, abandoned=True)
            if isinstance(exc, TimeoutError):
                MODEL_QUEUE_REJECTED.labels(self.name).inc()
                raise UpstreamFailure(
                    "rate_limited",
                    f"The model '{self.name}' is at its concurrency limit: every deployment "
                    f"is serving its max_concurrency requests and this one waited {wait:g} s "
                    "(MODEL_QUEUE_SECONDS). Retry shortly.",
                ) from None
            raise
        return future.result()

    async def _serve(self) -> None:
        """Hand places to the queue's head as they come free."""
        pause = POLL_MIN
        while self.waiters:
            head = self.waiters[0]
            if head.future.done():
                heapq.heappop(self.waiters)
                continue
            self._freed.clear()
            try:
                pick = await self._try(head.tried)
            except NoDeployment as exc:
                if not head.future.done():
                    head.future.set_exception(exc)
                continue
            except Exception:  # never leave the queue without its server
                log.exception("model %s: taking a place failed", self.name)
                pick = None
            if pick is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._freed.wait()
                pause = min(pause * 2, POLL_MAX)
                continue
            pause = POLL_MIN
            if head.future.done():  # gave up while we took it
                self.finish(pick, None, abandoned=True)
            else:
                head.future.set_result(pick)

    # -- giving it back -----------------------------------------------------------------------

    def finish(self, pick: Pick, failure: UpstreamFailure | None, abandoned: bool = False) -> None:
        """The call on `pick` ended: succeeded, failed with `failure`, or `abandoned` (its
        client went away; no verdict on the deployment)."""
        if pick.done:
            return
        pick.done = True
        deployment = pick.deployment
        deployment.in_flight -= 1
        before = deployment.breaker.state()
        if abandoned:
            deployment.breaker.abandoned(pick.probe)
        elif failure is not None and failure.kind in ("unreachable", "timeout", "server"):
            deployment.breaker.failed(pick.probe)
        else:
            deployment.breaker.succeeded()
        if deployment.breaker.state() != before:
            deployment.circuit_changed()
            if before == Circuit.CLOSED:
                log.warning(
                    "model %s: deployment %s skipped for %g s after %d failures in a row",
                    self.name,
                    deployment.label,
                    deployment.breaker.open_seconds,
                    deployment.breaker.failures,
                )
        if pick.slot is not None:
            self._give_back(pick.slot)
        self._freed.set()

    def _give_back(self, slot: Slot) -> None:
        """In a task of its own: a call being cancelled still gives its place back."""
        assert self.slots is not None
        task = asyncio.create_task(self._given_back(slot))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _given_back(self, slot: Slot) -> None:
        assert self.slots is not None
        await self.slots.give_back(slot)
        self._freed.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.cancel()
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
        for deployment in self.deployments:
            await deployment.client.close()
