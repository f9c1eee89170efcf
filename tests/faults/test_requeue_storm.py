"""The sweeper hands a queued job to the queue again only when its task is really missing
(issue 14, point 3). It used to re-publish every job queued for longer than JOB_REQUEUE_AFTER
on every sweep, so a backlog of waiting jobs multiplied itself in Redis exactly under load.
Tasks the broker did lose (Redis restarted empty) are still handed again, and every job runs."""

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from app.config import Settings
from tests.background.conftest import JOB_SETTINGS
from tests.background.harness import Worker, queued_tasks
from tests.conftest import SMALL_POOL, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import TEST_REDIS_URL, migrated_database, poll_status, running_server

JOBS = 40
SLOTS = 2  # the worker runs two jobs at a time: the rest wait in the queue


@pytest.fixture
def storm_settings(fake_upstream: FakeUpstream, tmp_path: Path) -> Iterator[Settings]:
    # A database and a queue of its own: the suite's other workers sweep theirs.
    with migrated_database("postgres", str(tmp_path)) as url:
        yield Settings(
            database_url=url,
            redis_url=TEST_REDIS_URL,
            celery_queue=f"tether-storm-{uuid.uuid4().hex[:8]}",
            upstream_base_url=f"{fake_upstream.url}/v1",
            upstream_timeout=60.0,
            **{**JOB_SETTINGS, "job_requeue_after": 0.5, "job_sweep_interval": 0.2},
            **SMALL_POOL,
        )


@pytest.fixture
def redis() -> Iterator["Redis[bytes]"]:
    client: Redis[bytes] = Redis.from_url(TEST_REDIS_URL)
    yield client
    client.close()


def test_a_backlog_is_not_published_again(
    storm_settings: Settings, fake_upstream: FakeUpstream, model: str, redis: "Redis[bytes]"
) -> None:
    fake_upstream.script(model, reply="ok", delay=0.3)
    queue = storm_settings.celery_queue
    worker = Worker(storm_settings, concurrency=SLOTS).start()
    try:
        with running_server(storm_settings) as server, sdk(server.url) as client:
            ids = [
                client.responses.create(model=model, input=f"job {n}", background=True).id
                for n in range(JOBS)
            ]
            # Watch the queue while the backlog drains: each sweep (every 0.2 s) finds jobs
            # queued for longer than JOB_REQUEUE_AFTER (0.5 s). The most ids its messages
            # ever carried (a message may carry several) says whether they were published
            # again; 3 s is many sweeps, not a wait for something to happen.
            most = 0
            until = time.monotonic() + 3.0
            while time.monotonic() < until:
                most = max(most, sum(len(args[0]) for _, args in queued_tasks(queue)))
                time.sleep(0.05)
            assert most <= JOBS, f"{most} ids in the queue for {JOBS} jobs"
            for response_id in ids:
                assert poll_status(client, response_id, timeout=60).status == "completed"
    finally:
        worker.stop()
        redis.delete(queue)


def test_tasks_the_broker_lost_are_handed_again(
    storm_settings: Settings, fake_upstream: FakeUpstream, model: str, redis: "Redis[bytes]"
) -> None:
    fake_upstream.script(model, reply="ok")
    queue = storm_settings.celery_queue
    try:
        with running_server(storm_settings) as server, sdk(server.url) as client:
            # No worker yet: the tasks wait in Redis, and then Redis loses them.
            ids = [
                client.responses.create(model=model, input=f"job {n}", background=True).id
                for n in range(10)
            ]
            _wait_until_published(queue, ids)
            redis.delete(queue)
            worker = Worker(storm_settings, concurrency=SLOTS).start()
            try:
                for response_id in ids:
                    assert poll_status(client, response_id, timeout=60).status == "completed"
            finally:
                worker.stop()
    finally:
        redis.delete(queue)


def _wait_until_published(queue: str, ids: list[str]) -> None:
    """Until every id waits in the queue's messages (a message may carry several)."""
    deadline = time.monotonic() + 10
    while True:
        published = [i for _, args in queued_tasks(queue) for i in args[0]]
        if sorted(published) == sorted(ids):
            return
        assert time.monotonic() < deadline, f"{len(published)} of {len(ids)} jobs published"
        time.sleep(0.02)
