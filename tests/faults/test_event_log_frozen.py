"""A Redis that stops answering without closing its connections (a network partition, a host
frozen) must not hang the event log's callers for good: a job appending its stream's events, a
client following them. Each call fails, in bounded time, with Redis' own error, which its
caller already handles as it handles a restart. Frozen here with SIGSTOP, on a redis-server
of the test's own."""

import asyncio
import signal
from typing import Any

import pytest
from redis.exceptions import RedisError

from app.kit.eventlog import SOCKET_TIMEOUT, RedisEventLog
from tests.ops.harness import RedisServer

# Well past the log's socket timeout: a call still waiting by then is waiting on defaults
# (redis-py 8 gave up after 20.7 s, four tries of 5 s; earlier releases never).
DEADLINE = 3 * SOCKET_TIMEOUT


def event(sequence_number: int) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "sequence_number": sequence_number, "delta": "x"}


def test_a_frozen_redis_fails_the_event_logs_calls_instead_of_hanging() -> None:
    server = RedisServer()
    events = RedisEventLog(server.url, retention=60, max_connections=10, max_bytes=1_000_000)

    async def go() -> None:
        await events.append("resp_frozen", [event(0)])
        assert [e["sequence_number"] for e in await events.read("resp_frozen", -1, 0)] == [0]
        server.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(RedisError):  # not asyncio's TimeoutError: that is a hang
                await asyncio.wait_for(events.read("resp_frozen", 0, block=1.0), DEADLINE)
            with pytest.raises(RedisError):
                await asyncio.wait_for(events.append("resp_frozen", [event(1)]), DEADLINE)
        finally:
            server.process.send_signal(signal.SIGCONT)
        # Answering again, the same log works again.
        await events.append("resp_frozen", [event(1)])
        assert [e["sequence_number"] for e in await events.read("resp_frozen", 0, 0)] == [1]
        await events.redis.aclose()

    try:
        asyncio.run(go())
    finally:
        server.kill()
