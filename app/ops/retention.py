"""Retention: stored responses and chat completions older than RETENTION_DAYS are purged, as
OpenAI keeps them 30 days. Conversations and their items are exempt.

The rule, and the order it is applied in:
- a response past retention that nothing chains from is removed, with what hangs on its row
  (its event log rows, its item index: ON DELETE CASCADE; its idempotency key is a column).
  Removing it may leave its parent a leaf: the loop goes on until a batch finds nothing, so a
  whole expired thread goes, newest turn first (the FK is RESTRICT: never a parent first);
- a tombstone whose last child was just removed is removed too, as a delete does it;
- a response past retention that a kept (newer) turn still chains through becomes a tombstone,
  exactly as `ResponsesRepository.delete` makes one: the API no longer shows it, and the later
  turns keep their whole context;
- a job still queued or running is kept until it ends;
- webhook deliveries delivered or failed are removed; those still pending stay until they
  settle (their own retry window ends them).

Every batch (BATCH rows) is a transaction of its own, so a purge never holds a lock for long
and the API keeps writing meanwhile. Batches walk the rows past the cutoff newest first by a
keyset on (created_at, id): each row is read once, whatever the purge's size (a scan from the
cutoff read every row earlier batches had removed again, as they stay dead until VACUUM, so
that purging 1M rows took quadratic time), and a thread's later turns come before its
earlier ones. Each statement is atomic, so two purges at once are only wasted work; still,
with REDIS_URL only one worker purges per RETENTION_INTERVAL (a Redis SET NX EX), not every
worker. What a purge removes leaves dead rows that autovacuum makes reusable; the space of the
files is not given back (bench/README.md §9 says why time partitions were not worth it).
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.chat.repository import ChatCompletionsRepository
from app.config import Settings
from app.responses.housekeeping import HousekeepingRepository
from app.webhooks.repository import DeliveriesRepository

log = logging.getLogger(__name__)

BATCH = 500
DAY = 86_400
# The first purge of a process comes this long after it starts (or after one interval, if
# that is shorter): not in the middle of startup.
FIRST_RUN_AFTER = 30.0
# Per queue: deployments sharing one Redis (each with its queue and database) purge apart.
LOCK_KEY = "tether:retention:{queue}"


@dataclass(slots=True)
class Purged:
    responses: int = 0
    tombstoned: int = 0
    chat_completions: int = 0


def cutoff(days: float, now: float | None = None) -> int:
    """The created_at (unix seconds) before which a row is past retention."""
    return int((time.time() if now is None else now) - days * DAY)


async def purge(engine: AsyncEngine, days: float, batch: int = BATCH) -> Purged:
    """Apply the retention rule once to everything older than `days`; logs one line."""
    started = time.monotonic()
    before = cutoff(days)
    done = Purged()
    position: tuple[int, str] | None = None
    while True:
        async with engine.begin() as conn:
            repo = HousekeepingRepository(conn)
            page = await repo.expired_page(before, position, batch)
            if not page:
                break
            removed, tombstoned, parents = await repo.purge_expired([i for _, i in page])
        done.responses += removed + await _purge_tombstones_above(engine, parents)
        done.tombstoned += tombstoned
        if len(page) < batch:
            break
        position = page[-1]
    position = None
    while True:
        async with engine.begin() as conn:
            chat = ChatCompletionsRepository(conn)
            removed, position = await chat.purge_older(before, position, batch)
        done.chat_completions += removed
        if removed < batch:
            break
    deliveries = 0
    while True:  # settled webhook deliveries; pending ones are kept until they settle
        async with engine.begin() as conn:
            removed = await DeliveriesRepository(conn).purge_settled(before, batch)
        deliveries += removed
        if removed < batch:
            break
    log.info(
        "retention: removed %d responses, tombstoned %d, removed %d chat completions and %d "
        "webhook deliveries (older than %g days) in %d ms",
        done.responses,
        done.tombstoned,
        done.chat_completions,
        deliveries,
        days,
        round((time.monotonic() - started) * 1000),
        extra={
            "purged_responses": done.responses,
            "tombstoned_responses": done.tombstoned,
            "purged_chat_completions": done.chat_completions,
        },
    )
    return done


async def _purge_tombstones_above(engine: AsyncEngine, parents: list[str | None]) -> int:
    """Tombstones left with nothing hanging from them, up the threads from `parents`."""
    removed = 0
    pending = sorted({p for p in parents if p is not None})
    while pending:
        async with engine.begin() as conn:
            above = await HousekeepingRepository(conn).purge_childless_tombstones(pending)
        removed += len(above)
        pending = sorted({p for p in above if p is not None})
    return removed


async def preview(engine: AsyncEngine, days: float) -> Purged:
    """What `purge` would do now (`tether purge --dry-run`), read only."""
    before = cutoff(days)
    async with engine.connect() as conn:
        expired = await HousekeepingRepository(conn).count_expired(before)
        chat = await ChatCompletionsRepository(conn).count_older(before)
    return Purged(expired.remove, expired.tombstone, chat)


class RetentionSchedule:
    """When a job runtime purges: every RETENTION_INTERVAL, the first time shortly after it
    starts; in the background, so that a long purge never delays the supervisor's lease
    renewals. With REDIS_URL, a purge is claimed for the interval across every worker."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.next_at = time.monotonic() + min(FIRST_RUN_AFTER, settings.retention_interval)
        self.task: asyncio.Task[None] | None = None

    def tick(self) -> None:
        """Start a purge if one is due (and none is running here); called by the supervisor."""
        if self.settings.retention_days <= 0 or time.monotonic() < self.next_at:
            return
        if self.task is not None and not self.task.done():
            return
        self.next_at = time.monotonic() + self.settings.retention_interval
        self.task = asyncio.create_task(self._run(), name="tether-retention")

    async def _run(self) -> None:
        try:
            if await self._claim():
                await purge(self.engine, self.settings.retention_days)
        except Exception:  # the next interval tries again
            log.exception("retention: purge failed")

    async def _claim(self) -> bool:
        """Whether this process purges this round: always in embedded mode (one process);
        with REDIS_URL, the first worker to SET the key for the interval."""
        if not self.settings.redis_url:
            return True
        redis = Redis.from_url(self.settings.redis_url)
        try:
            claimed = await redis.set(
                LOCK_KEY.format(queue=self.settings.celery_queue),
                f"{socket.gethostname()}:{os.getpid()}",
                nx=True,
                ex=max(1, int(self.settings.retention_interval)),
            )
        finally:
            await redis.aclose()
        return bool(claimed)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
