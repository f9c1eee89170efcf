"""The operators' view of background jobs (`tether status`, `tether jobs list|requeue`)."""

import asyncio
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.jobs import RUN_RESPONSES_TASK, Enqueuer, celery_client
from app.kit.eventlog import EventLog, create_event_log
from app.responses.domain import ResponseStatus
from app.responses.housekeeping import HousekeepingRepository, JobRow
from app.responses.repository import ResponsesRepository

# The statuses `tether status` counts and `tether jobs list` lists.
WATCHED = [ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS, ResponseStatus.FAILED]
# A background create logs response.created and response.queued (0 and 1) itself; a job's
# first attempt numbers its events from 2 on (app/background/job.py).
CREATE_EVENTS = 2


@dataclass(slots=True)
class Status:
    counts: dict[str, int]
    oldest_queued: tuple[str, float] | None  # id, seconds waiting
    workers: int | None  # live Celery workers of the queue; None: unknown


async def status(engine: AsyncEngine, settings: Settings) -> Status:
    async with engine.connect() as conn:
        repo = HousekeepingRepository(conn)
        counts = await repo.count_by_status(WATCHED)
        oldest = await repo.oldest_queued()
    waiting = (oldest[0], max(0.0, time.time() - oldest[1])) if oldest else None
    return Status(counts, waiting, await _live_workers(settings))


async def _live_workers(settings: Settings) -> int | None:
    if not settings.redis_url:
        return None
    try:
        from app.ops.workers import live_workers
    except ImportError:
        return None
    redis = Redis.from_url(settings.redis_url)
    try:
        async with asyncio.timeout(5):
            return len(await live_workers(redis, settings.celery_queue))
    except Exception:  # Redis away: unknown, not an error of `status`
        return None
    finally:
        await redis.aclose()


async def list_jobs(engine: AsyncEngine, state: ResponseStatus, limit: int) -> list[JobRow]:
    async with engine.connect() as conn:
        return await HousekeepingRepository(conn).jobs(state, limit)


async def requeue(
    engine: AsyncEngine,
    settings: Settings,
    response_id: str,
    *,
    project_id: str | None = None,
    server: tuple[EventLog, Enqueuer] | None = None,
) -> bool:
    """A failed background response, or one whose worker stopped renewing its lease, queued
    again as new; False if there is no such response (of `project_id`, if given). Then it is
    handed to Celery, or, in embedded mode, left to the server's sweeper (within
    JOB_REQUEUE_AFTER seconds). `server`: the event log and queue of the serving process
    (the dashboard), used instead of connections of this call's own (the CLI)."""
    async with engine.begin() as conn:
        if not await ResponsesRepository(conn).requeue(response_id, project_id):
            return False
    # The last attempt's events (its failure among them) are forgotten: a client following
    # the stream sees the new run as a new job's.
    if server is not None:
        event_log, enqueuer = server
        await event_log.rewind(response_id, CREATE_EVENTS)
        await enqueuer.enqueue([response_id])
        return True
    event_log = create_event_log(settings, engine)
    try:
        await event_log.rewind(response_id, CREATE_EVENTS)
    finally:
        await event_log.close()
    if settings.redis_url:
        await asyncio.to_thread(_send, settings, response_id)
    return True


def _send(settings: Settings, response_id: str) -> None:
    client = celery_client(settings)
    try:
        client.send_task(RUN_RESPONSES_TASK, args=[[response_id]])
    finally:
        client.close()
