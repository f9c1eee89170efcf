"""Worker heartbeats in Redis: each Celery worker process says it is alive, and anyone with the
broker's Redis can count the live ones (/readyz, the API's startup check, `tether status`).

A heartbeat is the key `tether:worker:{hostname}:{pid}` holding a JSON WorkerBeat, written
every HEARTBEAT_EVERY seconds with a TTL of three periods: a worker that dies (even `kill -9`)
drops out within the TTL; one that stops cleanly deletes its key.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TypedDict

import orjson
from redis.asyncio import Redis

log = logging.getLogger(__name__)

PREFIX = "tether:worker:"


class WorkerBeat(TypedDict):
    pid: int
    hostname: str
    queue: str
    started_at: float  # unix seconds
    in_flight: int  # jobs running in the process at its last beat
    # Jobs it has taken from the queue and not yet started (waiting for a free slot): still
    # queued in the database, no longer in the broker's list (app/background/backlog.py).
    held: int


def heartbeat_key(hostname: str, pid: int) -> str:
    return f"{PREFIX}{hostname}:{pid}"


async def publish(redis: Redis, beat: WorkerBeat, ttl: float) -> None:
    key = heartbeat_key(beat["hostname"], beat["pid"])
    await redis.set(key, orjson.dumps(beat), px=max(1, int(ttl * 1000)))


async def live_workers(redis: Redis, queue: str | None = None) -> list[WorkerBeat]:
    """The workers whose heartbeat has not expired, of `queue` (None: of every queue).

    SCAN, not KEYS: it does not block Redis however many keys it holds.
    """
    keys = [key async for key in redis.scan_iter(match=f"{PREFIX}*", count=500)]
    if not keys:
        return []
    found: list[WorkerBeat] = []
    for raw in await redis.mget(keys):
        if raw is None:  # expired between the SCAN and the MGET
            continue
        try:
            beat: WorkerBeat = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if queue is None or beat.get("queue") == queue:
            found.append(beat)
    return found


class Heartbeat:
    """A worker process's heartbeat: a task on its event loop, started and stopped with it."""

    def __init__(
        self,
        redis: Redis,
        queue: str,
        every: float,
        in_flight: Callable[[], int],
        held: Callable[[], int] = lambda: 0,
    ) -> None:
        self.redis = redis
        self.every = every
        self.in_flight = in_flight
        self.held = held
        self.beat = WorkerBeat(
            pid=os.getpid(),
            hostname=socket.gethostname(),
            queue=queue,
            started_at=time.time(),
            in_flight=0,
            held=0,
        )
        self.task: asyncio.Task[None] | None = None
        self.awake = asyncio.Event()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="tether-heartbeat")

    def wake(self) -> None:
        """Beat now, not at the end of the period: what the process holds has changed."""
        self.awake.set()

    async def _run(self) -> None:
        failing = False
        while True:
            self.beat["in_flight"] = self.in_flight()
            self.beat["held"] = self.held()
            try:
                async with asyncio.timeout(self.every):
                    await publish(self.redis, self.beat, ttl=3 * self.every)
                failing = False
            except Exception as exc:  # Redis away: beat again next period
                if not failing:
                    log.warning("could not publish this worker's heartbeat: %r", exc)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.awake.wait(), self.every)
            self.awake.clear()

    async def stop(self) -> None:
        """Stop beating and say so at once (no wait for the TTL)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.redis.delete(heartbeat_key(self.beat["hostname"], self.beat["pid"]))
