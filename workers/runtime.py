"""The asyncio side of a worker process: one event loop thread, shared by every task thread.

Created after the pool exists (per process, never inherited through a fork), as SQLAlchemy's
pooling docs ask: the engine and the upstream client belong to the loop that uses them.

A task thread waits for its job with a deadline. Celery's `task_time_limit` is enforced only
by the prefork pool; on the threads pool it does nothing, so the bound lives here: the job
itself ends `failed` at JOB_TIME_LIMIT (app/background/job.py), and should the loop not even
manage that, the thread stops waiting a little later and the job is left to its lease.
"""

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any

import uvloop
from redis.asyncio import Redis

from app.background.backlog import waiting_jobs
from app.background.runtime import JobRuntime
from app.config import get_settings
from app.db import create_engine
from app.jobs import CeleryEnqueuer, celery_client
from app.kit.eventlog import create_event_log
from app.kit.fair import RedisFairQueue, Ticket
from app.ops.workers import Heartbeat
from app.providers.registry import Providers

log = logging.getLogger(__name__)

# How long past its time limit a task thread still waits for a job to write its end.
TIME_LIMIT_GRACE = 30.0
# Starting and stopping the runtime: a few queries, the sweeper's last pass.
LIFECYCLE_TIMEOUT = 30.0


class WorkerRuntime:
    def __init__(self) -> None:
        settings = get_settings()
        self.time_limit = settings.job_time_limit_seconds
        # uvloop, as the API runs on (uvicorn[standard]): the loop carries every job's I/O.
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="tether-jobs", daemon=True
        )
        self.thread.start()
        self.engine = create_engine(settings)
        self.providers = Providers(settings)
        self.log = create_event_log(settings, self.engine)
        # A sending client of its own, configured like the app's: the sweeper's re-enqueues.
        self.enqueuer = CeleryEnqueuer(celery_client(settings))
        self.redis: Redis | None = None  # made on the loop, in _start
        self.fair: RedisFairQueue | None = None  # new jobs' turns (app/kit/fair.py)
        self.jobs = JobRuntime(
            self.engine,
            self.providers,
            settings,
            self.log,
            requeue=self.enqueuer.enqueue,
            backlog=self._backlog if settings.redis_url else None,
        )
        self.heartbeat: Heartbeat | None = None
        self.call(self._start(), LIFECYCLE_TIMEOUT)

    async def _start(self) -> None:
        settings = self.jobs.settings
        if settings.redis_url:
            self.redis = Redis.from_url(
                settings.redis_url, socket_connect_timeout=2, socket_timeout=2
            )
            self.fair = RedisFairQueue(self.redis, settings.celery_queue)
            # Alive, for /readyz and `tether status`: beats as often as leases are renewed.
            every = settings.job_lease_seconds / 3
            self.heartbeat = Heartbeat(
                self.redis,
                settings.celery_queue,
                every,
                in_flight=lambda: len(self.jobs.running),
                held=lambda: self.jobs.held,
            )
            self.heartbeat.start()
            self.jobs.on_hold = self.heartbeat.wake
        self.jobs.start()  # after the Redis client: its first sweep asks the backlog

    async def _backlog(self) -> int:
        """The jobs waiting for a worker of this queue (app/background/backlog.py)."""
        if self.redis is None:
            raise RuntimeError("not started")
        return await waiting_jobs(self.redis, self.jobs.settings.celery_queue)

    def call(self, coro: Coroutine[Any, Any, None], timeout: float) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, response_ids: list[str], fair: bool = False) -> None:
        """Run jobs to their ends; called from a task thread, which waits (bounded). A job
        waits for a free slot of WORKER_CONCURRENCY before it is claimed. `fair`: the ids are
        tickets, each running the fairest job waiting (its own if none is filed)."""
        tickets = [Ticket(response_id) for response_id in response_ids]
        queue = self.fair if fair else None
        future = asyncio.run_coroutine_threadsafe(self.jobs.run_many(tickets, queue), self.loop)
        try:
            # A job may wait for a slot as long as another runs: two time limits, then grace.
            future.result(2 * self.time_limit + TIME_LIMIT_GRACE)
        except concurrent.futures.CancelledError:
            pass  # given back at shutdown (release_after): the task is done with it
        except concurrent.futures.TimeoutError:
            log.error(
                "responses %s: no end %.0fs past their time limit; leaving them to their leases",
                ", ".join(t.running or t.own for t in tickets),
                TIME_LIMIT_GRACE,
            )
            for ticket in tickets:
                self.loop.call_soon_threadsafe(self.jobs.abandon, ticket.running or ticket.own)

    def release(self) -> None:
        """Give back every job still running (they end `queued`, for another worker); the
        runtime itself keeps going until stop()."""
        try:
            self.call(self.jobs.stop(), LIFECYCLE_TIMEOUT)
        except concurrent.futures.TimeoutError:
            log.error("running jobs were not released within %.0fs", LIFECYCLE_TIMEOUT)

    def stop(self) -> None:
        try:
            self.call(self._stop(), LIFECYCLE_TIMEOUT)
        except concurrent.futures.TimeoutError:
            log.error("worker runtime did not stop within %.0fs", LIFECYCLE_TIMEOUT)
        self.enqueuer.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _stop(self) -> None:
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        await self.jobs.stop()
        if self.redis is not None:
            await self.redis.aclose()
        await self.log.close()
        await self.providers.close()
        await self.engine.dispose()


_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def get_runtime() -> WorkerRuntime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = WorkerRuntime()
        return _runtime


def stop_runtime() -> None:
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.stop()
            _runtime = None


def release_after(seconds: float) -> None:
    """A worker told to stop: let its jobs run `seconds` more, then give back the rest."""

    def release() -> None:
        with _lock:
            if _runtime is not None:
                _runtime.release()

    timer = threading.Timer(seconds, release)
    timer.daemon = True
    timer.start()
