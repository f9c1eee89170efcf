"""Runs background jobs in one process's event loop, and looks after them.

One supervisor loop serves every job in flight, so hundreds of jobs cost one query per tick, not
one each: it asks which running jobs were cancelled (and stops their model calls), renews all
leases in one UPDATE, and sweeps for jobs whose task or worker was lost (DESIGN §6.3). It also
starts the periodic retention purge (app/ops/retention.py), and runs the webhook dispatcher
(app/webhooks/delivery.py), which sends the events the jobs' ends wrote to the outbox.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.background import job
from app.background.batching import Claims, Ends
from app.background.repository import Claim, JobsRepository
from app.config import Settings
from app.kit.eventlog import EventLog, JobEvents
from app.kit.fair import FairQueue, LocalFairQueue, QueuedJob, Ticket, run_fairly
from app.kit.sealing import Keyring
from app.ops import metrics
from app.ops.retention import RetentionSchedule
from app.providers.registry import Providers
from app.responses.domain import FinalValues, ResponseStatus
from app.responses.repository import ResponsesRepository
from app.webhooks.delivery import Dispatcher

log = logging.getLogger(__name__)

Requeue = Callable[[list[str]], Awaitable[None]]
Backlog = Callable[[], Awaitable[int]]


def _log_end(response_id: str, values: FinalValues, fields: dict[str, Any]) -> None:
    status = values["status"]
    error = values.get("error") or {}
    if status == ResponseStatus.FAILED:
        log.warning(
            "response %s failed: %s",
            response_id,
            error.get("message"),
            extra={**fields, "status": status, "error_code": error.get("code")},
        )
    else:
        log.info("response %s %s", response_id, status, extra={**fields, "status": status})


class JobRuntime:
    def __init__(
        self,
        engine: AsyncEngine,
        providers: Providers,
        settings: Settings,
        log: EventLog,
        requeue: Requeue | None = None,
        backlog: Backlog | None = None,
    ) -> None:
        self.engine = engine
        self.log = log
        self.providers = providers
        self.settings = settings
        # Where the sweeper sends jobs to run again: the Celery queue in a worker; in embedded
        # mode, this process itself.
        self.requeue = requeue or self.enqueue
        # How many tasks the broker holds for the queue (Celery mode): the sweeper hands again
        # only what is missing, not every job that waits its turn.
        self.backlog = backlog
        self.running: dict[str, tuple[Claim, asyncio.Task[Any]]] = {}
        self.revoked: set[str] = set()  # stopped on purpose: cancelled, or no longer ours
        self.local: dict[str, asyncio.Task[None]] = {}  # embedded mode: started here
        self.fair = LocalFairQueue()  # embedded mode: new jobs' turns (app/kit/fair.py)
        self.capacity = asyncio.Semaphore(settings.worker_concurrency)
        # Jobs handed to this process by the queue that wait for a slot (a message may carry
        # many), and who to tell when more arrive (the worker's heartbeat).
        self.held = 0
        self.on_hold: Callable[[], None] | None = None
        self.waiting_before = 0  # the sweeper's previous reading of the broker's backlog
        self.supervisor: asyncio.Task[None] | None = None
        self.keyring = Keyring(engine, settings.encryption_keys)  # a job's encrypted reasoning
        self.retention = RetentionSchedule(engine, settings)
        self.webhooks = Dispatcher(engine, settings)
        # Claims and ends of jobs that happen together share a transaction (batching.py).
        self.claims = Claims(engine, settings.job_lease_seconds)
        self.ends = Ends(engine)

    def start(self) -> None:
        self.supervisor = asyncio.create_task(self._supervise(), name="tether-job-supervisor")
        self.webhooks.start()

    async def stop(self) -> None:
        """Stop supervising; jobs still running are given back to the queue, not lost."""
        if self.supervisor is not None:
            self.supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.supervisor
        await self.retention.stop()
        tasks = [task for _, task in self.running.values()] + list(self.local.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.webhooks.stop()

    async def run(self, response_id: str) -> bool:
        """Run one job to its end here; a no-op if it is not queued (a duplicate delivery):
        then False."""
        claimed = await self.claims.claim(response_id)
        if claimed is None:
            return False
        started = time.monotonic()
        fields = {"response_id": claimed.id, "attempt": claimed.attempt}
        log.info("response %s in_progress", claimed.id, extra=fields)
        task = asyncio.current_task()
        assert task is not None
        self.running[claimed.id] = (claimed, task)
        events = JobEvents(self.log, claimed.id)
        try:
            values, closing = await job.execute(
                self.engine, self.providers, self.keyring, self.settings, events, claimed
            )
        except asyncio.CancelledError:
            if claimed.id in self.revoked:
                log.info(
                    "response %s stopped: cancelled or no longer ours", claimed.id, extra=fields
                )
                metrics.observe_job("stopped", time.monotonic() - started)
                return True  # the database already says what happened; nothing to write
            metrics.observe_job("released", time.monotonic() - started)
            await asyncio.shield(job.release(self.engine, claimed))  # shutting down
            log.info("response %s released to the queue (shutting down)", claimed.id, extra=fields)
            raise
        finally:
            # Out of the supervisor's sight before the final write, so it cannot take the
            # job's own finished status for a cancellation and interrupt the commit.
            self.running.pop(claimed.id, None)
            self.revoked.discard(claimed.id)
        seconds = time.monotonic() - started
        fields["duration_ms"] = round(seconds * 1000)
        if await self.ends.end(claimed, values):
            events.add(closing)
            self.webhooks.wake()  # the end may owe events
            _log_end(claimed.id, values, fields)
            metrics.observe_job(values["status"], seconds)
        else:
            log.info("response %s was cancelled or re-run meanwhile; result dropped", claimed.id)
            metrics.observe_job("dropped", seconds)
        await events.drain()
        return True

    async def run_many(self, tickets: list[Ticket], fair: FairQueue | None = None) -> None:
        """Jobs handed over together (one Celery message), each in a task of its own within
        this process's capacity: with `fair`, each ticket runs the fairest job waiting
        (app/kit/fair.py), else its own. Returns when all have ended; one failing on our side
        does not stop the others (its lease runs out and the sweeper re-runs it)."""
        self.held += len(tickets)
        if self.on_hold is not None:
            self.on_hold()
        results = await asyncio.gather(
            *(self._bounded(ticket, fair, held=True) for ticket in tickets),
            return_exceptions=True,
        )
        for ticket, result in zip(tickets, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, Exception):
                log.error("response %s: job failed", ticket.running or ticket.own, exc_info=result)

    async def _bounded(self, ticket: Ticket, fair: FairQueue | None, held: bool = False) -> None:
        try:
            await self.capacity.acquire()
        finally:
            if held:
                self.held -= 1
        try:
            if fair is None:
                ticket.running = ticket.own
                await self.run(ticket.own)
            else:
                await run_fairly(ticket, self.run, fair)
        finally:
            self.capacity.release()

    def abandon(self, response_id: str) -> None:
        """Stop running a job without writing anything: its lease runs out and the sweeper
        re-runs it (counting the attempt) or fails it. For a job whose waiter gave up on it
        (workers/runtime.py), not for shutdown, which gives jobs back at once."""
        entry = self.running.get(response_id)
        if entry is not None:
            self.revoked.add(response_id)
            entry[1].cancel()

    async def enqueue(self, ids: list[str]) -> None:
        """Embedded mode's queue (app.jobs.Enqueuer): run the jobs here, within capacity."""
        for response_id in ids:
            if response_id not in self.local:
                self.local[response_id] = asyncio.create_task(self._run_local(response_id))

    async def submit(self, jobs: list[QueuedJob]) -> None:
        """New jobs (app.jobs.Enqueuer): each a ticket for the fairest job once there is room."""
        self.fair.file(jobs)
        for queued in jobs:
            if queued.id not in self.local:
                ticket = Ticket(queued.id)
                self.local[queued.id] = asyncio.create_task(self._run_local(queued.id, ticket))

    async def _run_local(self, response_id: str, ticket: Ticket | None = None) -> None:
        try:
            await self._bounded(ticket or Ticket(response_id), self.fair if ticket else None)
        except Exception:  # the lease runs out and the sweeper re-runs it
            log.exception("response %s: job failed", response_id)
        finally:
            self.local.pop(response_id, None)

    async def _supervise(self) -> None:
        renew_every = self.settings.job_lease_seconds / 3
        last_renew = last_sweep = 0.0
        while True:
            now = time.monotonic()
            try:
                await self._stop_revoked()
                if now - last_renew >= renew_every:
                    await self._renew_leases()
                    last_renew = now
                if now - last_sweep >= self.settings.job_sweep_interval:
                    await self._sweep()
                    last_sweep = now
                self.retention.tick()  # a purge of its own, in the background
            except Exception:  # a database hiccup must not end supervision
                log.exception("job supervisor pass failed")
            await asyncio.sleep(self.settings.job_cancel_poll)

    async def _stop_revoked(self) -> None:
        if not self.running:
            return
        async with self.engine.connect() as conn:
            claims = [claim for claim, _ in self.running.values()]
            gone = await JobsRepository(conn).cancelled_among(claims)
        for response_id in gone:
            entry = self.running.get(response_id)
            if entry is not None:
                self.revoked.add(response_id)
                entry[1].cancel()  # closes the upstream request

    async def _renew_leases(self) -> None:
        claims = [claim for claim, _ in self.running.values()]
        if claims:
            async with self.engine.begin() as conn:
                await JobsRepository(conn).renew_leases(claims, self.settings.job_lease_seconds)

    async def _sweep(self) -> None:
        settings = self.settings
        waiting: int | None = None
        if self.backlog is not None:
            try:
                reading = await self.backlog()
            except Exception as exc:  # the broker is away: publishing would fail too
                log.warning("sweep: could not read the queue's length (%r); not re-enqueuing", exc)
                reading = 1 << 62
            # A job a worker has just taken from the list is in neither count until its
            # heartbeat says so: a job is waiting if either of two sweeps counted it, and one
            # really lost is handed again a sweep later.
            waiting = max(reading, self.waiting_before)
            self.waiting_before = reading
        async with self.engine.begin() as conn:
            responses = ResponsesRepository(conn)
            again = await responses.requeue_expired(settings.job_max_attempts)
            failed = await responses.fail_expired(settings.job_max_attempts)
            orphans = await responses.fail_orphaned_turns(settings.job_time_limit_seconds)
            lost = await JobsRepository(conn).requeue_lost(settings.job_requeue_after, waiting)
        await self.log.trim()
        metrics.count_swept(rerun=len(again), failed=len(failed), requeued=len(lost))
        if again:
            log.warning("re-running %d responses whose worker was lost: %s", len(again), again)
        if failed:
            self.webhooks.wake()
            log.warning(
                "failed %d responses whose worker was lost too often: %s", len(failed), failed
            )
        if orphans:
            log.warning(
                "failed %d synchronous responses whose server process stopped mid-answer: %s",
                len(orphans),
                orphans,
            )
        if again or lost:
            await self.requeue(again + lost)
