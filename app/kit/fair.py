"""Fair scheduling of background jobs: which queued job a free worker takes next.

A Celery queue is first in, first out, and a message cannot be reordered once published: one
project's 10,000 jobs published first would all run before another project's 10. So a create
publishes a *ticket* (`tether.run_next`, carrying its own id) and files its job in Redis: a list
of job ids per (tier, project), and per tier a ring of the projects that have jobs waiting. A
worker that takes a ticket pops the next job in one Lua script: the first tier with a job
(`priority`, then `default`, then `flex`, app/kit/tiers.py), and in it the project at the head of
the ring, which goes to the back (round robin). Tickets and jobs are as many as each other, so
every ticket finds a job; which one is decided when a worker has room for it, not when it was
published. `flex` jobs therefore run only on capacity that no `priority` or `default` job is
waiting for (and, at a model at its concurrency limit, they wait behind the others:
app/providers/router.py).

Celery still does what it does well: delivery, acks after the job, redelivery, prefetch and
the worker's concurrency; the database stays the truth (the claim is a compare-and-set). A job
popped that is no longer queued (cancelled, or already run from a duplicate) is skipped and the
next one popped; a ticket that finds nothing runs its own job (which is how a job survives the
fair lists being lost). The sweeper's re-enqueues and `tether jobs requeue` send the job itself
(`tether.run_response`), as before: a rescue does not wait for its turn.

Embedded mode does the same in process (LocalFairQueue): each create's ticket waits for a free
place of WORKER_CONCURRENCY, then pops the fairest job.
"""

import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from redis import Redis as SyncRedis
from redis.asyncio import Redis

from app.kit.tiers import Tier

log = logging.getLogger(__name__)

TIERS = (Tier.PRIORITY, Tier.DEFAULT, Tier.FLEX)

# KEYS: the tier's ring of projects, its set of projects in the ring, the project's job list.
# ARGV: the project, then the job ids.
_PUSH = """
for i = 2, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then redis.call('RPUSH', KEYS[1], ARGV[1]) end
return 1
"""

# ARGV[1]: the key prefix; ARGV[2..]: the tiers, first served first.
_POP = """
local prefix = ARGV[1]
for t = 2, #ARGV do
  local ring = prefix .. ARGV[t] .. ':ring'
  while true do
    local project = redis.call('LPOP', ring)
    if not project then break end
    local jobs = prefix .. ARGV[t] .. ':jobs:' .. project
    local id = redis.call('LPOP', jobs)
    if redis.call('LLEN', jobs) > 0 then
      redis.call('RPUSH', ring, project)
    else
      redis.call('SREM', prefix .. ARGV[t] .. ':active', project)
    end
    if id then return id end
  end
end
return false
"""


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A background response handed to the queue, with what decides its turn."""

    id: str
    project_id: str
    tier: Tier


class FairQueue(Protocol):
    async def pop(self) -> str | None:
        """The id of the next job to run, or None if none is filed."""
        ...


def key_prefix(queue: str) -> str:
    return f"tether:fair:{queue}:"


def _groups(jobs: list[QueuedJob]) -> dict[tuple[Tier, str], list[str]]:
    groups: dict[tuple[Tier, str], list[str]] = {}
    for job in jobs:
        groups.setdefault((job.tier, job.project_id), []).append(job.id)
    return groups


class RedisFairFiler:
    """Files jobs in Redis, from the enqueuer's publishing thread (synchronous, like kombu)."""

    def __init__(self, redis_url: str, queue: str) -> None:
        self.redis = SyncRedis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        self.prefix = key_prefix(queue)
        self._push = self.redis.register_script(_PUSH)

    def file(self, jobs: list[QueuedJob]) -> None:
        """One round trip, however many jobs."""
        with self.redis.pipeline(transaction=False) as pipe:
            for (tier, project), ids in _groups(jobs).items():
                base = f"{self.prefix}{tier}:"
                keys = [base + "ring", base + "active", f"{base}jobs:{project}"]
                self._push(keys=keys, args=[project, *ids], client=pipe)
            pipe.execute()

    def close(self) -> None:
        self.redis.close()


class RedisFairQueue:
    """Pops the next job for a worker (on its event loop)."""

    def __init__(self, redis: Redis, queue: str) -> None:
        self.prefix = key_prefix(queue)
        self._pop = redis.register_script(_POP)

    async def pop(self) -> str | None:
        found = await self._pop(keys=[], args=[self.prefix, *TIERS])
        return found.decode() if isinstance(found, bytes) else found


class LocalFairQueue:
    """The same order in one process (embedded mode)."""

    def __init__(self) -> None:
        self.tiers: dict[Tier, OrderedDict[str, deque[str]]] = {t: OrderedDict() for t in TIERS}

    def file(self, jobs: list[QueuedJob]) -> None:
        for (tier, project), ids in _groups(jobs).items():
            self.tiers[tier].setdefault(project, deque()).extend(ids)

    async def pop(self) -> str | None:
        for ring in self.tiers.values():
            while ring:
                project, jobs = next(iter(ring.items()))
                found = jobs.popleft() if jobs else None
                if jobs:
                    ring.move_to_end(project)  # its next job waits for the others' turns
                else:
                    del ring[project]
                if found is not None:
                    return found
        return None


@dataclass(slots=True)
class Ticket:
    """A worker's turn, taken for the job `own` (a create's, or a redelivery's)."""

    own: str
    running: str | None = None  # the job it runs now


async def run_fairly(
    ticket: Ticket, run: Callable[[str], Awaitable[bool]], jobs: FairQueue
) -> None:
    """Run the next fair job on this ticket. `run` claims and runs one job, False if it was
    no longer queued: then the next is popped. A ticket that finds none runs its own job
    (a no-op if someone ran it already)."""
    while True:
        try:
            picked = await jobs.pop()
        except Exception as exc:  # Redis away: the ticket's own job, in publishing order
            log.warning("could not take the next fair job (%r); running the ticket's own", exc)
            picked = None
        ticket.running = picked or ticket.own
        if await run(ticket.running) or picked is None:
            return
