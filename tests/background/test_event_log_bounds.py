"""The event log of a background response stays small (issue 14, point 5), and its stream stays
whole: replayed from the start it gives the stored text, and resumed from the middle it goes on
with the next number, to the terminal event.

Before the bound, every word was an entry: the 400 KB echo answer below made 70,009 entries
and 18.0 MB of Redis (45 times its text), and 70,009 rows (15 MB) in embedded mode; the
1,575-word answer streamed at a model's pace made 1,584 entries, 1,519 deltas of them past the
cap, in under 4 seconds.
"""

import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from openai.types.responses import ResponseStreamEvent, ResponseTextDeltaEvent
from redis import Redis

from app.config import Settings
from app.kit.eventlog import PAST_CAP_EVERY
from app.responses.events import TERMINAL_EVENTS
from tests.background.harness import Worker
from tests.conftest import SMALL_POOL, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import (
    TEST_REDIS_URL,
    migrated_database,
    poll_status,
    query,
    running_server,
    streamed_background,
    wait_until,
)

TEXT_DELTA = "response.output_text.delta"
ECHO_BYTES = 400_000  # the size of the request in the issue
DEFAULT_CAP: int = Settings.model_fields["stream_max_bytes"].default  # STREAM_MAX_BYTES
CAP = 16 * 1024  # STREAM_MAX_BYTES of the capped worker: small, so a short answer passes it
# The smallest delta event logged (a one-letter word, its ids and indexes): no more entries
# than the cap divided by this are logged a word each.
SMALLEST_DELTA = 150


def words(size: int) -> str:
    """`size` characters of words of varied length, a piece of the stream each."""
    vocabulary = itertools.cycle(["lorem", "ipsum", "a", "dolor", "consectetur", "of", "elit"])
    out = ""
    while len(out) < size:
        out += next(vocabulary) + " "
    return out[:size]


def replay(client: openai.OpenAI, response_id: str, after: int = -1) -> list[ResponseStreamEvent]:
    with client.responses.retrieve(response_id, stream=True, starting_after=after) as stream:
        return list(stream)


def deltas(events: list[ResponseStreamEvent]) -> list[ResponseTextDeltaEvent]:
    return [e for e in events if isinstance(e, ResponseTextDeltaEvent)]


def text_of(events: list[ResponseStreamEvent]) -> str:
    return "".join(e.delta for e in deltas(events))


def assert_well_formed(events: list[ResponseStreamEvent], after: int = -1) -> None:
    """Every number after `after` once, in order, and the stream ends with its terminal event."""
    assert [e.sequence_number for e in events] == list(range(after + 1, after + 1 + len(events)))
    assert events[-1].type == "response.completed"


def assert_resumes_from_the_middle(
    client: openai.OpenAI, response_id: str, whole: list[ResponseStreamEvent], after: int
) -> None:
    rest = replay(client, response_id, after=after)
    assert_well_formed(rest, after=after)
    assert text_of(whole[: after + 1]) + text_of(rest) == text_of(whole)


# -- Redis (Celery workers) ------------------------------------------------------------------


def logged(redis: Redis, response_id: str) -> list[dict[str, Any]]:
    entries: Any = redis.xrange(f"tether:events:{response_id}")
    return [orjson.loads(fields[b"e"]) for _id, fields in entries]


def wait_for_the_logged_end(redis: Redis, response_id: str) -> None:
    """The row says `completed` before the worker logs its closing events."""

    def ended() -> bool:
        last: Any = redis.xrevrange(f"tether:events:{response_id}", count=1)
        return bool(last) and orjson.loads(last[0][1][b"e"])["type"] in TERMINAL_EVENTS

    wait_until(ended, timeout=30, what=f"the end of {response_id}'s log")


@pytest.fixture
def redis() -> Iterator[Redis]:
    client = Redis.from_url(TEST_REDIS_URL)
    yield client
    client.close()


def own_worker(settings: Settings, **changes: Any) -> Iterator[openai.OpenAI]:
    """A worker and an API of their own queue, with these settings changed."""
    own = settings.model_copy(update={"celery_queue": f"q-{uuid.uuid4().hex[:8]}", **changes})
    worker = Worker(own).start()
    try:
        with running_server(own) as srv, sdk(srv.url) as client:
            yield client
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def echo_client(celery_settings: Settings) -> Iterator[openai.OpenAI]:
    """No upstream: the built-in echo model, which answers the input back a word at a time.
    Its answer never waits, so the job holds the worker's loop for as long as it takes to turn
    400 KB into events: seconds on a busy machine, past the suite's 3-second lease."""
    yield from own_worker(
        celery_settings,
        upstream_base_url=None,
        job_lease_seconds=15.0,
        stream_max_bytes=DEFAULT_CAP,
    )


@pytest.fixture(scope="module")
def capped_client(celery_settings: Settings) -> Iterator[openai.OpenAI]:
    yield from own_worker(celery_settings, stream_max_bytes=CAP)


class TestRedisLog:
    def test_a_large_echo_answer_is_logged_in_a_few_entries(
        self, echo_client: openai.OpenAI, redis: Redis
    ) -> None:
        text = words(ECHO_BYTES)
        created = streamed_background(echo_client, model="echo", input=text)
        done = poll_status(echo_client, created.id, timeout=60)
        assert (done.status, done.output_text) == ("completed", text)
        wait_for_the_logged_end(redis, created.id)

        # A delta a word until the cap, then the rest of the text in one (the answer never
        # waits, so it reaches the writer at once), and the closing events: the cap, as Redis
        # holds small entries (a quarter more), and the text five times (the joined delta,
        # the three `.done` events and the final response), large allocations rounded up by
        # at most a quarter.
        entries = redis.xlen(f"tether:events:{created.id}")
        memory = redis.memory_usage(f"tether:events:{created.id}", samples=0)
        assert entries <= DEFAULT_CAP / SMALLEST_DELTA + 20  # before: 70,009 (now 11,001)
        assert memory is not None
        # Before: 18.0 MB, 45 times the text (now 4.8 MB).
        assert memory <= 1.5 * DEFAULT_CAP + 8 * len(text)

        whole = replay(echo_client, created.id)
        assert_well_formed(whole)
        assert text_of(whole) == done.output_text
        delta = deltas(whole)[0]
        assert_resumes_from_the_middle(echo_client, created.id, whole, delta.sequence_number - 1)
        assert_resumes_from_the_middle(echo_client, created.id, whole, delta.sequence_number)

    def test_past_the_cap_a_slow_answer_is_logged_once_a_second(
        self,
        capped_client: openai.OpenAI,
        fake_upstream: FakeUpstream,
        model: str,
        redis: Redis,
    ) -> None:
        text = words(9_000)  # some 1,500 pieces, one every 2 ms: a fast model's pace
        fake_upstream.script(model, reply=text, chunk_delay=0.002)
        started = time.monotonic()
        with capped_client.responses.create(
            model=model,
            input="x",
            background=True,
            stream=True,
            include=["message.output_text.logprobs"],
        ) as stream:
            live = list(stream)  # followed live while the worker logs
        seconds = time.monotonic() - started
        response_id = live[0].response.id  # type: ignore[union-attr]
        done = capped_client.responses.retrieve(response_id)
        assert done.output_text == text
        wait_for_the_logged_end(redis, response_id)

        # Per-word deltas until the writer has logged CAP bytes (counted from its first event,
        # response.in_progress), then at most one delta a second.
        events = logged(redis, response_id)
        first = next(i for i, e in enumerate(events) if e["type"] == "response.in_progress")
        written, past_cap = 0, 0
        for event in events[first:]:
            if written >= CAP and event["type"] == TEXT_DELTA:
                past_cap += 1
            written += len(orjson.dumps(event))
        assert past_cap <= seconds / PAST_CAP_EVERY + 2  # before: 1,519 in 3.9 s (now 5)
        assert len(events) < len(text.split()) / 5  # before: 1,584, one a word (now 70)

        assert_well_formed(live)
        assert text_of(live) == text
        whole = replay(capped_client, response_id)
        assert [e.model_dump() for e in whole] == [e.model_dump() for e in live]
        # The joined deltas carry every piece's logprob, as the stored output does.
        logprobs = [p.model_dump() for e in deltas(whole) for p in e.logprobs]
        message = done.output[0]
        assert message.type == "message"
        part = message.content[0]
        assert part.type == "output_text"
        assert logprobs == [p.model_dump() for p in part.logprobs or []]
        assert len(logprobs) == len(text.split())
        last_delta = deltas(whole)[-1].sequence_number
        assert_resumes_from_the_middle(capped_client, response_id, whole, len(whole) // 2)
        assert_resumes_from_the_middle(capped_client, response_id, whole, last_delta - 1)


# -- Embedded mode (the response_events table) -----------------------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, openai.OpenAI]]:
    with migrated_database("sqlite", str(tmp_path_factory.mktemp("bounds"))) as url:
        settings = Settings(database_url=url, upstream_base_url=None, **SMALL_POOL)
        with running_server(settings) as srv, sdk(srv.url) as client:
            yield url, client


class TestEmbeddedLog:
    def test_a_large_echo_answer_is_logged_in_a_few_rows(
        self, embedded: tuple[str, openai.OpenAI]
    ) -> None:
        database_url, client = embedded
        text = words(ECHO_BYTES)
        created = streamed_background(client, model="echo", input=text)
        done = poll_status(client, created.id, timeout=60)
        assert done.output_text == text

        def rows() -> list[tuple[object, ...]]:
            return query(
                database_url,
                "SELECT event FROM response_events WHERE response_id = :id "
                "ORDER BY sequence_number",
                id=created.id,
            )

        def ended() -> bool:
            last = rows()[-1][0]
            return orjson.loads(str(last))["type"] in TERMINAL_EVENTS

        wait_until(ended, timeout=30, what="the end of the log")
        logged_rows = rows()
        # As in Redis: the cap's worth of a delta a word, then the text five times.
        assert len(logged_rows) <= DEFAULT_CAP / SMALLEST_DELTA + 20  # before: 70,009
        logged_bytes = sum(len(str(row[0])) for row in logged_rows)
        assert logged_bytes <= DEFAULT_CAP + 6 * len(text)  # before: 15 MB (now 4.0 MB)

        whole = replay(client, created.id)
        assert_well_formed(whole)
        assert text_of(whole) == text
        delta = deltas(whole)[0]
        assert_resumes_from_the_middle(client, created.id, whole, delta.sequence_number - 1)
