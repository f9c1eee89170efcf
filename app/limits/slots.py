"""Counting semaphores for model servers, shared by every API process and worker.

With REDIS_URL a semaphore is a sorted set of leases: member = a random token, score = when the
lease ends (Redis's own clock, so the hosts' clocks need not agree). Taking a place first drops
the leases that ran out, then adds one if fewer than `limit` remain, in one Lua script (atomic).
A holder renews its leases every third of their length (one script for all it holds); a process
that dies stops renewing, and its places come back when its leases end (JOB_LEASE_SECONDS, the
time after which a process is presumed dead everywhere else too). Without Redis (embedded mode)
the counts live in this process, which is the only one serving.

If Redis cannot be reached, a place is taken from this process's own counts instead (logged):
the limit then holds per process until Redis is back, rather than every call failing.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY_PREFIX = "tether:slots:"

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
  return 1
end
return 0
"""

# KEYS: the sets; ARGV[1]: lease seconds, ARGV[2..]: the token held in each KEYS[n-1].
# XX: a lease that already ran out (and was dropped) is not brought back. Returns the tokens
# not found (given back meanwhile, or run out).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[1])
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('ZADD', key, 'XX', 'CH', now + lease, ARGV[i + 1]) == 0 then
    table.insert(lost, ARGV[i + 1])
  end
  redis.call('PEXPIRE', key, math.ceil(lease * 1000) + 1000)
end
return lost
"""


@dataclass(eq=False, slots=True)
class Slot:
    """One place held on one semaphore."""

    key: str
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    local: bool = False  # taken from this process's counts (embedded mode, or Redis away)


class SlotStore(Protocol):
    async def take(self, key: str, limit: int) -> Slot | None: ...

    async def give_back(self, slot: Slot) -> None: ...

    async def close(self) -> None: ...


class LocalSlots:
    """This process's counts: embedded mode, and the fallback while Redis is away."""

    def __init__(self) -> None:
        self.counts: defaultdict[str, int] = defaultdict(int)

    async def take(self, key: str, limit: int) -> Slot | None:
        return self.take_now(key, limit)

    def take_now(self, key: str, limit: int) -> Slot | None:
        if self.counts[key] >= limit:
            return None
        self.counts[key] += 1
        return Slot(key, local=True)

    async def give_back(self, slot: Slot) -> None:
        self.counts[slot.key] = max(0, self.counts[slot.key] - 1)

    async def close(self) -> None:
        return None


class RedisSlots:
    """Leases in Redis, renewed for as long as they are held."""

    def __init__(self, redis_url: str, lease_seconds: float) -> None:
        self.redis = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        self.lease = lease_seconds
        self._take = self.redis.register_script(_TAKE)
        self._renew = self.redis.register_script(_RENEW)
        self.held: set[Slot] = set()
        self.fallback = LocalSlots()
        self._renewer: asyncio.Task[None] | None = None
        self._warned = 0.0

    async def take(self, key: str, limit: int) -> Slot | None:
        slot = Slot(KEY_PREFIX + key)
        try:
            taken = await self._take(keys=[slot.key], args=[limit, self.lease, slot.token])
        except (RedisError, OSError) as exc:
            self._warn(exc)
            return self.fallback.take_now(slot.key, limit)
        if not taken:
            return None
        self.held.add(slot)
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_all(), name="tether-slot-leases")
        return slot

    async def give_back(self, slot: Slot) -> None:
        if slot.local:
            await self.fallback.give_back(slot)
            return
        self.held.discard(slot)  # no longer renewed, whatever happens to the call below
        try:
            await self.redis.zrem(slot.key, slot.token)
        except (RedisError, OSError) as exc:  # its lease ends by itself
            self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        if time.monotonic() - self._warned > 10:
            self._warned = time.monotonic()
            log.warning("model concurrency limits counted per process: Redis failed (%r)", exc)

    async def _renew_all(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            held = list(self.held)
            if not held:
                continue
            try:
                lost = await self._renew(
                    keys=[s.key for s in held], args=[self.lease, *(s.token for s in held)]
                )
            except (RedisError, OSError) as exc:
                self._warn(exc)
                continue
            # Those given back while this ran are not lost; the others ran out (this process
            # stalled past a lease, or Redis lost them): for a moment more calls than a limit
            # may run. Said, so that it is not a mystery.
            tokens = {t.decode() if isinstance(t, bytes) else str(t) for t in lost}
            expired = [s for s in held if s.token in tokens and s in self.held]
            if expired:
                log.warning("%d model concurrency leases had run out before renewal", len(expired))

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        held, self.held = list(self.held), set()
        with contextlib.suppress(RedisError, OSError):
            for slot in held:
                await self.redis.zrem(slot.key, slot.token)
        await self.redis.aclose()


def create_slot_store(redis_url: str | None, lease_seconds: float) -> SlotStore:
    return RedisSlots(redis_url, lease_seconds) if redis_url else LocalSlots()
