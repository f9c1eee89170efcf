"""Requests per minute per project, shared by every API replica.

A fixed one-minute window per project: with REDIS_URL, one INCR (and EXPIRE) on a key of the
window, so all replicas count together; in embedded mode, a counter in this process (the only
one serving). Past the limit: 429 `rate_limit_exceeded`. Every answer to a limited project
carries OpenAI's `x-ratelimit-*-requests` headers, which the SDK reads to back off.

A project without a limit (the default) costs nothing: no counter is kept.
With Redis away (or not answering within 2 s) a request is counted nowhere and served, with
a log line that says so: a limit guards against abuse, and must not turn an outage of the
counter into one of the API (it was a 500).
"""

import logging
import time
from collections import defaultdict
from typing import Protocol

from redis.asyncio import Redis
from starlette.requests import Request

from app.errors import RateLimited

log = logging.getLogger(__name__)

WINDOW = 60


class Counter(Protocol):
    async def hit(self, project_id: str, window: int) -> int:
        """Count one request in this window; the count so far, this one included."""
        ...

    async def close(self) -> None: ...


class RedisCounter:
    def __init__(self, redis_url: str) -> None:
        # Asked on every request of a limited project: a Redis that does not answer costs a
        # request at most this, then it is served uncounted (RateLimiter.admit).
        self.redis = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)

    async def hit(self, project_id: str, window: int) -> int:
        key = f"tether:rpm:{project_id}:{window}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW * 2)
            count, _ = await pipe.execute()
        return int(count)

    async def close(self) -> None:
        await self.redis.aclose()


class LocalCounter:
    def __init__(self) -> None:
        self.counts: defaultdict[tuple[str, int], int] = defaultdict(int)

    async def hit(self, project_id: str, window: int) -> int:
        if len(self.counts) > 10_000:  # drop finished windows
            self.counts = defaultdict(int, {k: v for k, v in self.counts.items() if k[1] >= window})
        self.counts[project_id, window] += 1
        return self.counts[project_id, window]

    async def close(self) -> None:
        return None


class RateLimiter:
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    async def admit(self, request: Request, project_id: str, rpm: int) -> None:
        """Count this request against the project's limit: 429 past it. The headers go on
        the answer either way (app/kit/request_id.py adds what request.state holds)."""
        if rpm <= 0:
            return
        now = time.time()
        window = int(now // WINDOW)
        try:
            count = await self.counter.hit(project_id, window)
        except Exception as exc:  # Redis away: a limit guards against abuse, it is no outage
            log.warning(
                "could not count a request of project %s against its rate limit (%r): served "
                "uncounted",
                project_id,
                exc,
                extra={"project": project_id},
            )
            return
        reset = max(1, int((window + 1) * WINDOW - now))
        headers = {
            "x-ratelimit-limit-requests": str(rpm),
            "x-ratelimit-remaining-requests": str(max(0, rpm - count)),
            "x-ratelimit-reset-requests": f"{reset}s",
        }
        request.state.headers = headers
        if count > rpm:
            raise RateLimited(
                f"Rate limit reached for requests: this project may make {rpm} requests per "
                f"minute. Try again in {reset}s.",
                code="rate_limit_exceeded",
                headers={**headers, "retry-after": str(reset)},
            )

    async def close(self) -> None:
        await self.counter.close()


def create_rate_limiter(redis_url: str | None) -> RateLimiter:
    return RateLimiter(RedisCounter(redis_url) if redis_url else LocalCounter())
