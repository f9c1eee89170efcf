"""The event log of background responses: what a worker streamed, kept so that a client can
connect late, drop, and resume with starting_after (DESIGN §5, issue 4). It lives in kit/
because both sides use it: the API follows it, the job engine writes it.

With REDIS_URL: one Redis stream per response, whose entry ids are the sequence numbers (seq
n is entry `n+1-0`), so "every event after n" is an exclusive XREAD and a duplicate append is
refused by Redis itself; the key expires `stream_retention_seconds` after the last append.
Embedded mode: the response_events table; readers in the writing process are woken at once,
others poll.

Its size is bounded where events are written (JobEvents), the same for both logs. Logged one
event a word, an answer cost the broker 45 times its size (a 400 KB echo answer: 70,009
entries, 18 MB of Redis, seven eighths of it the envelopes of deltas carrying a word each; the
rest is the text repeated by the closing events). So once a response has `max_bytes`
(STREAM_MAX_BYTES) logged, its deltas are logged joined, once a second. What a client
assembles is the same, and the numbering stays contiguous because the writer numbers what it
logs. Below the cap nothing is joined, so the same answer logs the same events whatever the
timing (tests compare streams byte for byte). Not done: trimming the stream (XADD MAXLEN)
drops the start of a stream a client may still replay; and ending the log at the cap would
leave a follower only the final event (what streaming._ending rebuilds for a log that broke),
not the text after the cut.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from typing import Any, Protocol, cast

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.models import ResponseEventRow

log = logging.getLogger(__name__)

events_table = cast(Table, ResponseEventRow.__table__)


class EventLog(Protocol):
    # Bytes of one response's events its writer logs as they come (JobEvents).
    max_bytes: int

    async def append(self, response_id: str, events: list[dict[str, Any]]) -> None: ...

    async def read(self, response_id: str, after: int, block: float) -> list[dict[str, Any]]:
        """Events with sequence_number > after, oldest first; waits up to `block` seconds for
        the first one if there is none yet."""
        ...

    async def last(self, response_id: str) -> dict[str, Any] | None:
        """The last event logged; None for none (never written, or expired)."""
        ...

    async def trim(self) -> None: ...

    async def rewind(self, response_id: str, keep: int) -> None:
        """Forget the events numbered `keep` and after: a job run again from the start
        (`tether jobs requeue`) logs them anew."""
        ...

    async def close(self) -> None: ...


# Longer than the longest blocking read a follower makes (app/responses/streaming.py
# FOLLOW_BLOCK, 1 s), so that only a server that does not answer reaches it.
SOCKET_TIMEOUT = 5.0


def _key(response_id: str) -> str:
    return f"tether:events:{response_id}"


class RedisEventLog:
    def __init__(
        self, redis_url: str, retention: float, max_connections: int, max_bytes: int
    ) -> None:
        # Each waiting follower holds a connection for its XREAD BLOCK, and redis-py's pool
        # raises (rather than waits) past its default of 100: 200 concurrent streams failed.
        # Retried on a connection error: after Redis restarts, every pooled connection is
        # dead, and without a retry the first command on each failed (the chaos suite saw jobs
        # stop logging their streams, long after Redis was back).
        # A Redis that stops answering without closing its connections (a partition, a host
        # frozen) fails a call after SOCKET_TIMEOUT instead of holding a job or a follower for
        # as long as redis-py's defaults say: 20.7 s measured with redis-py 8.1 (a 5 s default,
        # tried four times), and no bound at all in the older releases pyproject admits.
        # Timeouts are not retried: against a frozen server that only multiplies the wait.
        retry = Retry(
            ExponentialBackoff(cap=0.5, base=0.05), 3, supported_errors=(RedisConnectionError,)
        )
        self.redis = Redis.from_url(
            redis_url,
            max_connections=max_connections,
            retry=retry,
            socket_connect_timeout=SOCKET_TIMEOUT,
            socket_timeout=SOCKET_TIMEOUT,
        )
        self.retention = int(retention)
        self.max_bytes = max_bytes

    async def append(self, response_id: str, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        key = _key(response_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(key, {"e": orjson.dumps(event)}, id=f"{event['sequence_number'] + 1}-0")
            pipe.expire(key, self.retention)
            await pipe.execute()

    async def read(self, response_id: str, after: int, block: float) -> list[dict[str, Any]]:
        ms = int(block * 1000)
        found = await self.redis.xread(
            {_key(response_id): f"{after + 1}-0"}, block=ms if ms > 0 else None
        )
        streams = cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], found or [])
        out: list[dict[str, Any]] = []
        for _stream, entries in streams:
            out += [orjson.loads(fields[b"e"]) for _id, fields in entries]
        return out

    async def last(self, response_id: str) -> dict[str, Any] | None:
        found: Any = await self.redis.xrevrange(_key(response_id), count=1)
        return orjson.loads(found[0][1][b"e"]) if found else None

    async def trim(self) -> None:
        return None  # keys expire by themselves

    async def rewind(self, response_id: str, keep: int) -> None:
        # A stream refuses an id at or below its last one, even one deleted since: the kept
        # entries are written again into a new stream.
        key = _key(response_id)
        kept: Any = await self.redis.xrange(key, "-", f"{keep}-0")  # seq keep-1 is `keep-0`
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            for entry_id, fields in kept:
                pipe.xadd(key, fields, id=entry_id)
            if kept:
                pipe.expire(key, self.retention)
            await pipe.execute()

    async def close(self) -> None:
        await self.redis.aclose()


class DbEventLog:
    POLL = 0.05  # seconds, for readers in another process than the writer

    def __init__(self, engine: AsyncEngine, retention: float, max_bytes: int) -> None:
        self.engine = engine
        self.retention = retention
        self.max_bytes = max_bytes
        # Readers waiting in this process, woken by an append here; others poll.
        self.waiting: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    async def append(self, response_id: str, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        now = time.time()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(events_table),
                [
                    {
                        "response_id": response_id,
                        "sequence_number": e["sequence_number"],
                        "event": e,
                        "created_at": now,
                    }
                    for e in events
                ],
            )
        for wake in self.waiting.get(response_id, ()):
            wake.set()

    async def _fetch(self, response_id: str, after: int) -> list[dict[str, Any]]:
        t = events_table.c
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(t.event)
                .where(t.response_id == response_id, t.sequence_number > after)
                .order_by(t.sequence_number)
            )
            return [row.event for row in result]

    async def read(self, response_id: str, after: int, block: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + block
        wake = asyncio.Event()
        self.waiting[response_id].add(wake)
        try:
            while True:
                wake.clear()
                events = await self._fetch(response_id, after)
                left = deadline - time.monotonic()
                if events or left <= 0:
                    return events
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=min(left, self.POLL * 20))
        finally:
            self.waiting[response_id].discard(wake)
            if not self.waiting[response_id]:
                del self.waiting[response_id]

    async def last(self, response_id: str) -> dict[str, Any] | None:
        t = events_table.c
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(t.event)
                .where(t.response_id == response_id)
                .order_by(t.sequence_number.desc())
                .limit(1)
            )
            event: dict[str, Any] | None = result.scalar_one_or_none()
            return event

    async def trim(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(events_table).where(events_table.c.created_at < time.time() - self.retention)
            )

    async def rewind(self, response_id: str, keep: int) -> None:
        t = events_table.c
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(events_table).where(t.response_id == response_id, t.sequence_number >= keep)
            )

    async def close(self) -> None:
        return None


def create_event_log(settings: Settings, engine: AsyncEngine) -> EventLog:
    if settings.redis_url:
        return RedisEventLog(
            settings.redis_url,
            settings.stream_retention_seconds,
            settings.redis_max_connections,
            settings.stream_max_bytes,
        )
    return DbEventLog(engine, settings.stream_retention_seconds, settings.stream_max_bytes)


# Past its max_bytes, a response's deltas are logged joined this often: a follower still sees
# the text grow, for one entry a second rather than one a word.
PAST_CAP_EVERY = 1.0
# A log that refuses appends (Redis restarting) is retried every pause for this long; then the
# job's stream ends early (its stored response is the truth either way).
APPEND_RETRY_FOR = 30.0
APPEND_RETRY_PAUSE = 0.5

# What may differ between deltas joined into one: the rest says which part they belong to.
_JOINED_FIELDS = frozenset({"sequence_number", "delta", "logprobs"})


def _is_delta(event: dict[str, Any]) -> bool:
    return str(event["type"]).endswith(".delta")


def _place(delta: dict[str, Any]) -> dict[str, Any]:
    """Which part a delta extends: its type, item and indexes."""
    return {k: v for k, v in delta.items() if k not in _JOINED_FIELDS}


def _joined(run: list[dict[str, Any]]) -> dict[str, Any]:
    """Consecutive deltas of one part as one event, their texts (and logprobs) in order."""
    if len(run) == 1:
        return run[0]
    # Joined once: pairwise, a 400 KB answer's 70,000 words would copy some 14 GB.
    joined = {**run[0], "delta": "".join(e["delta"] for e in run)}
    if "logprobs" in joined:
        joined["logprobs"] = [p for e in run for p in e["logprobs"]]
    return joined


class JobEvents:
    """A job's writer to the log. Appends batch (events added while one append is in flight go
    out together in the next), and a failing log never fails the job (the stored response is
    the truth; a follower rebuilds the end of a stream from it).

    It numbers the events it logs, on from the job's first one, so that a joined delta takes
    one number and the log stays contiguous (TurnEvents' numbers count every delta). Once the
    log holds `max_bytes` of this response, consecutive deltas of one part are joined: those
    followed by another event in a batch at once, a trailing run held back until
    PAST_CAP_EVERY has passed since the last one logged (or another event comes). So a stream
    stays whole, and its log holds about max_bytes, then an entry a second, then the closing
    events (which repeat the whole output four times).
    """

    def __init__(self, log: EventLog, response_id: str) -> None:
        self.log = log
        self.response_id = response_id
        self.pending: list[dict[str, Any]] = []
        self.held: list[dict[str, Any]] = []  # past the cap: deltas of one part, not logged yet
        self.next_seq = -1  # of the next event logged; -1: the first added one's
        self.logged_bytes = 0
        self.released = -math.inf  # when held deltas were last logged (monotonic)
        self.flushing: asyncio.Task[None] | None = None
        self.unsent: list[dict[str, Any]] = []  # a numbered batch the log refused, to retry
        self.failing_since: float | None = None
        self.broken = False

    def add(self, events: list[dict[str, Any]]) -> None:
        if self.broken or not events:
            return
        if self.next_seq < 0:
            # The job numbers its first event after whatever is logged (job._next_seq).
            self.next_seq = int(events[0]["sequence_number"])
        self.pending += events
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while (self.pending or self.unsent) and not self.broken:
            batch, self.unsent = self.unsent or self._take(), []
            if not batch:
                continue  # all of it held
            try:
                await self.log.append(self.response_id, batch)
            except Exception as exc:
                await self._retry_later(batch, exc)
            else:
                self.failing_since = None

    async def _retry_later(self, batch: list[dict[str, Any]], exc: Exception) -> None:
        """Keep a batch the log refused and try again shortly (a broker restarting, say); give
        up, and let the stream end early, only after APPEND_RETRY_FOR. Events added meanwhile
        wait behind it, in order."""
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
            log.warning("event log of %s: append failed (%r); retrying", self.response_id, exc)
        if now - self.failing_since > APPEND_RETRY_FOR:
            log.error(
                "event log of %s failed for %.0fs (%r); its stream ends early",
                self.response_id,
                APPEND_RETRY_FOR,
                exc,
            )
            self.broken = True
            return
        await asyncio.sleep(APPEND_RETRY_PAUSE)
        try:  # part of the batch may have been written before the failure: not again
            last = await self.log.last(self.response_id)
        except Exception:
            last = None
        done = -1 if last is None else int(last["sequence_number"])
        self.unsent = [event for event in batch if event["sequence_number"] > done]

    def _take(self) -> list[dict[str, Any]]:
        """The pending events to log now, numbered; past the cap, deltas joined, and a trailing
        run of them held back until PAST_CAP_EVERY has passed."""
        events, self.held, self.pending = self.held + self.pending, [], []
        out: list[dict[str, Any]] = []
        run: list[dict[str, Any]] = []
        for event in events:
            if run and not (_is_delta(event) and _place(event) == _place(run[0])):
                out.append(self._numbered(_joined(run)))
                run = []
            if _is_delta(event) and self.logged_bytes >= self.log.max_bytes:
                run.append(event)
            else:
                out.append(self._numbered(event))
        if run and time.monotonic() - self.released < PAST_CAP_EVERY:
            self.held = run
        elif run:
            self.released = time.monotonic()
            out.append(self._numbered(_joined(run)))
        return out

    def _numbered(self, event: dict[str, Any]) -> dict[str, Any]:
        numbered = {**event, "sequence_number": self.next_seq}
        self.next_seq += 1
        self.logged_bytes += len(orjson.dumps(numbered))
        return numbered

    async def drain(self) -> None:
        """Wait until everything added so far is logged (or the log gave up). Deltas held past
        the cap go out with the closing events, which every finished job adds."""
        while self.flushing is not None and not self.flushing.done():
            await asyncio.shield(self.flushing)
