"""Sending the outbox (app/webhooks/outbox.py) to the receivers.

A dispatcher runs beside the job supervisor in every process that runs jobs: the API process in
embedded mode, each Celery worker in Celery mode. It takes what is due from the database (one
query for many), sends each with a short timeout in a task of its own, so that a slow receiver
holds up neither the jobs nor the other deliveries, and writes the outcome back.

At least once: a delivery is taken with a lease (its due time moved past the attempt), so if the
process dies mid-attempt another dispatcher sends it again when the lease ends, with the same
`webhook-id`. Receivers deduplicate on that id, as Standard Webhooks asks them to.
"""

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.ops import metrics
from app.webhooks import signing
from app.webhooks.outbox import DELIVERED, FAILED
from app.webhooks.repository import DeliveriesRepository, EndpointsRepository
from app.webhooks.transport import Sender, Sent

log = logging.getLogger(__name__)

# Attempts in flight per process: each holds a connection to a receiver for at most
# WEBHOOK_TIMEOUT.
MAX_IN_FLIGHT = 100
# How often the outbox is looked at when nothing woke the dispatcher: the longest a delivery
# written by another process (a cancel in the API, a job on another worker) waits.
POLL_SECONDS = 1.0
# Retries double from WEBHOOK_RETRY_BASE up to this far apart.
MAX_RETRY_INTERVAL = 3600.0


# A delivery taken for an attempt is another dispatcher's again this long after, should the
# process that took it die: past the attempt's own timeout (twice it, and some seconds to
# write the outcome), so a live attempt is never sent twice at once.
def lease_seconds(timeout: float) -> float:
    return 2 * timeout + 5


def retry_delay(base: float, attempts: int) -> float:
    """Exponential, with jitter so that the retries of many deliveries to a receiver that was
    down do not all arrive at the same moment when it comes back."""
    delay = min(base * 2.0 ** (attempts - 1), MAX_RETRY_INTERVAL)
    return delay * random.uniform(0.75, 1.25)


def _why(sent: Sent) -> str:
    if sent.status is None:
        return sent.error or "no answer"
    text = sent.body[:200].decode("utf-8", "replace").strip()
    return f"HTTP {sent.status}" + (f": {text}" if text else "")


class Dispatcher:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.sender = Sender(
            timeout=settings.webhook_timeout, allow_private=settings.webhook_allow_private
        )
        self.lease = lease_seconds(settings.webhook_timeout)
        self.window = settings.webhook_retry_hours * 3600
        self.attempts: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._outcomes: list[tuple[dict[str, Any], dict[str, Any], asyncio.Future[bool]]] = []
        self._settling: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="tether-webhooks")

    def wake(self) -> None:
        """Something was just written to the outbox: look now, not at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Let the attempts under way finish (they are short); what is left is sent again by
        whichever dispatcher finds its lease run out."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        if self.attempts:
            await asyncio.wait(self.attempts, timeout=self.settings.webhook_timeout + 1)
            for task in self.attempts:
                task.cancel()
            await asyncio.gather(*self.attempts, return_exceptions=True)
        if self._settling is not None:
            await asyncio.gather(self._settling, return_exceptions=True)
        await self.sender.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            room = MAX_IN_FLIGHT - len(self.attempts)
            try:
                taken = await self.send_due()
            except Exception:  # a database hiccup must not end delivery
                log.exception("webhook dispatcher pass failed")
                taken = 0
            if room and taken == room:
                continue  # it took all it had room for: there may be more due
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()

    async def send_due(self) -> int:
        """Start an attempt for each delivery due, within MAX_IN_FLIGHT; how many."""
        room = MAX_IN_FLIGHT - len(self.attempts)
        if room <= 0:
            return 0
        async with self.engine.connect() as conn:
            if not await DeliveriesRepository(conn).any_due():
                return 0
        async with self.engine.begin() as conn:
            due = await DeliveriesRepository(conn).claim_due(room, self.lease)
            if not due:
                return 0
            ids = list({delivery["endpoint_id"] for delivery in due})
            targets = await EndpointsRepository(conn).signing_secrets(ids, time.time())
        for delivery in due:
            task = asyncio.create_task(
                self._attempt(delivery, targets.get(delivery["endpoint_id"]))
            )
            self.attempts.add(task)
            task.add_done_callback(self._attempt_done)
        return len(due)

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        full = len(self.attempts) >= MAX_IN_FLIGHT
        self.attempts.discard(task)
        if full:
            self._wake.set()  # room again, and deliveries were left waiting for it

    async def _attempt(self, delivery: dict[str, Any], target: dict[str, Any] | None) -> None:
        try:
            await self._send(delivery, target)
        except Exception:  # its lease runs out and it is sent again
            log.exception("webhook %s: delivery attempt failed", delivery["id"])

    async def _send(self, delivery: dict[str, Any], target: dict[str, Any] | None) -> None:
        fields = {"webhook_id": delivery["id"], "attempt": delivery["attempts"]}
        if target is None or target["disabled"]:
            reason = "endpoint deleted" if target is None else "endpoint disabled"
            await self._settle(delivery, {"state": FAILED, "next_attempt_at": None}, reason)
            return
        body = delivery["payload"].encode()
        headers = signing.headers(target["secrets"], delivery["id"], int(time.time()), body)
        sent = await self.sender.post(target["url"], body, headers)
        now = time.time()
        values: dict[str, Any] = {"last_attempt_at": now, "last_status": sent.status}
        status = sent.status or 0
        if 200 <= status < 300:
            values.update(state=DELIVERED, delivered_at=now, next_attempt_at=None)
            if await self._settle(delivery, values, None):
                metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
                metrics.WEBHOOK_LATENCY.observe(now - delivery["created_at"])
            return
        why = _why(sent)
        if status == 410:  # Gone: the receiver asks for no more
            values.update(state=FAILED, next_attempt_at=None)
            if await self._settle(delivery, values, why):
                async with self.engine.begin() as conn:
                    await EndpointsRepository(conn).disable(delivery["endpoint_id"], why)
                metrics.WEBHOOK_DELIVERIES.labels("disabled").inc()
                log.warning(
                    "webhook %s to %s: %s; endpoint %s disabled until it is updated",
                    delivery["id"],
                    target["url"],
                    why,
                    delivery["endpoint_id"],
                    extra=fields,
                )
            return
        retry_at = now + retry_delay(self.settings.webhook_retry_base, delivery["attempts"])
        if retry_at > delivery["created_at"] + self.window:
            values.update(state=FAILED, next_attempt_at=None)
            if await self._settle(delivery, values, why):
                metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
                log.error(
                    "webhook %s to %s failed for good after %d attempts: %s",
                    delivery["id"],
                    target["url"],
                    delivery["attempts"],
                    why,
                    extra=fields,
                )
            return
        values["next_attempt_at"] = retry_at
        if await self._settle(delivery, values, why):
            metrics.WEBHOOK_DELIVERIES.labels("retry").inc()
            log.warning(
                "webhook %s to %s: %s; retrying in %.1fs",
                delivery["id"],
                target["url"],
                why,
                retry_at - now,
                extra=fields,
            )

    async def _settle(
        self, delivery: dict[str, Any], values: dict[str, Any], why: str | None
    ) -> bool:
        """Write how an attempt went; whether it was still this attempt's to write. Outcomes
        that arrive while a write is under way go together in the next one: one transaction
        for many deliveries, not one each (the bench's delivery rate was bound by it)."""
        values["last_error"] = why[:512] if why else None
        written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outcomes.append((delivery, values, written))
        if self._settling is None or self._settling.done():
            self._settling = asyncio.create_task(self._write_outcomes())
        return await written

    async def _write_outcomes(self) -> None:
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                async with self.engine.begin() as conn:
                    repo = DeliveriesRepository(conn)
                    found = [
                        await repo.settle(delivery["id"], delivery["attempts"], values)
                        for delivery, values, _ in batch
                    ]
            except Exception as exc:  # their leases run out and they are sent again
                for _, _, written in batch:
                    if not written.done():  # its attempt may have been cancelled (stop)
                        written.set_exception(exc)
                continue
            for (_, _, written), ok in zip(batch, found, strict=True):
                if not written.done():
                    written.set_result(ok)
