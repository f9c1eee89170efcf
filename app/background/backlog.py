"""How many jobs wait for a worker in Celery mode: what the sweeper weighs the queued rows
against, so that it hands again only the jobs whose task is really missing (issue 14).

A message may carry many jobs (app/jobs.py PUBLISH_BATCH), so the queue's length is not the
count. The jobs are those the broker's list holds, each message's count read from its headers
(a message without it, from an earlier version, carries one), plus those live workers took
from the list and hold until a slot frees (their heartbeats say how many). A worker that dies
drops out of the sum with its heartbeat, and what it held is handed again.
"""

from redis.asyncio import Redis

from app.jobs import IDS_HEADER
from app.ops.workers import live_workers

# Kombu's Redis transport keeps a queue's messages, as JSON, in a list named after it. Read in
# slices, so a long backlog never needs one huge reply inside Redis; a pattern, not a JSON
# decode, as the count is all that is needed (the body is base64, so it cannot fake one).
_COUNT = f"""
local total = 0
local length = redis.call('LLEN', KEYS[1])
for first = 0, length - 1, 1000 do
    for _, message in ipairs(redis.call('LRANGE', KEYS[1], first, first + 999)) do
        total = total + (tonumber(string.match(message, '"{IDS_HEADER}":%s*(%d+)')) or 1)
    end
end
return total
"""


async def waiting_jobs(redis: Redis, queue: str) -> int:
    """The jobs waiting in `queue` or held by its live workers, not yet started."""
    listed = int(await redis.eval(_COUNT, 1, queue))
    return listed + sum(beat.get("held", 0) for beat in await live_workers(redis, queue))
