"""Is this process ready to serve, and what does it run: /readyz's checks and the startup banner.

Ready means: the database answers and is migrated to this version's head; in Celery mode also
Redis answers and at least one worker of our queue has a live heartbeat (app/ops/workers.py).
Every check is bounded by CHECK_TIMEOUT, and they run together.
"""

import asyncio
import logging

from alembic.runtime.migration import MigrationContext
from redis.asyncio import Redis
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app import migrate
from app.config import Settings
from app.ops.workers import live_workers

log = logging.getLogger("tether")

CHECK_TIMEOUT = 2.0
# The API's look for a live worker, this long after startup (workers often start alongside).
STARTUP_WORKER_CHECK = 5.0


def _current_revisions(conn: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(conn).get_current_heads())


async def database_reasons(engine: AsyncEngine) -> list[str]:
    try:
        heads = await asyncio.to_thread(migrate.heads)  # files, read once per process
    except Exception as exc:
        return [f"cannot read the migrations (alembic.ini, migrations/): {exc!r}"]
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), engine.connect() as conn:
            current = await conn.run_sync(_current_revisions)
    except Exception as exc:
        return [f"database unreachable: {type(exc).__name__}"]
    if not current:
        return ["database not migrated: run `tether migrate`"]
    if set(current) != heads:
        return [
            f"database at migration {', '.join(sorted(current))}, this version needs "
            f"{', '.join(sorted(heads))}: run `tether migrate`"
        ]
    return []


async def broker_reasons(redis: Redis, queue: str) -> list[str]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await redis.ping()
            workers = await live_workers(redis, queue)
    except Exception as exc:
        return [f"redis unreachable: {type(exc).__name__}"]
    if not workers:
        return [f"no live worker on queue {queue!r} (no heartbeat in Redis)"]
    return []


async def not_ready(engine: AsyncEngine, settings: Settings, redis: Redis | None) -> list[str]:
    """Why this process is not ready; empty when it is."""
    checks = [database_reasons(engine)]
    if redis is not None:
        checks.append(broker_reasons(redis, settings.celery_queue))
    return [reason for reasons in await asyncio.gather(*checks) for reason in reasons]


def announce_mode(settings: Settings, redis: Redis | None) -> asyncio.Task[None] | None:
    """Say at startup how background jobs run; in Celery mode, look for a live worker a little
    later (startup does not wait for it). Returns that look, for shutdown to cancel."""
    if redis is None:
        log.info("Embedded mode (no REDIS_URL): background jobs run in this process.")
        return None
    log.info(
        "Celery mode: background jobs go to queue %r on Redis, for `celery -A workers.celery_app "
        "worker` processes.",
        settings.celery_queue,
    )
    return asyncio.create_task(_look_for_workers(redis, settings.celery_queue))


async def _look_for_workers(redis: Redis, queue: str) -> None:
    await asyncio.sleep(STARTUP_WORKER_CHECK)
    reasons = await broker_reasons(redis, queue)
    if reasons:
        log.warning(
            "%s: background responses stay queued until a worker consumes queue %r.",
            reasons[0],
            queue,
        )
