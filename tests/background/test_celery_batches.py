"""Jobs handed over together travel as one Celery message (app/jobs.py): what reaches the broker,
and a worker running such a message, duplicates and strangers included."""

import asyncio
import os
import time
from collections.abc import Callable

import orjson
from redis.asyncio import Redis

from app.background.backlog import waiting_jobs
from app.config import Settings
from app.jobs import (
    PUBLISH_BATCH,
    RUN_RESPONSE_TASK,
    RUN_RESPONSES_TASK,
    CeleryEnqueuer,
    celery_client,
)
from app.ops.workers import WorkerBeat, heartbeat_key
from tests.background.harness import Worker, queued_tasks
from tests.conftest import sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import poll_status, running_server


def test_ids_handed_over_together_go_out_as_few_messages(
    private_queue: Callable[[], Settings],
) -> None:
    settings = private_queue()  # no worker: the messages stay in the broker to be looked at
    enqueuer = CeleryEnqueuer(celery_client(settings))
    ids = [f"resp_batch{n:03d}" for n in range(2 * PUBLISH_BATCH + 5)]
    try:
        asyncio.run(enqueuer.enqueue(ids))
    finally:
        enqueuer.close()
    tasks = queued_tasks(settings.celery_queue)
    assert {name for name, _ in tasks} == {RUN_RESPONSES_TASK}
    batches = [args[0] for _, args in tasks]
    assert [i for batch in batches for i in batch] == ids  # each id once, in order
    assert all(1 <= len(batch) <= PUBLISH_BATCH for batch in batches)
    assert len(batches) < len(ids) / 4


def test_the_sweeper_counts_jobs_not_messages(private_queue: Callable[[], Settings]) -> None:
    """What the sweeper weighs queued rows against: every id of every message, one for a
    message of an earlier version, and what live workers hold. Counting messages, it took a
    batch of 32 for one lost job and handed the other 31 again, each sweep."""
    settings = private_queue()
    queue = settings.celery_queue
    enqueuer = CeleryEnqueuer(celery_client(settings))
    try:
        asyncio.run(enqueuer.enqueue([f"resp_count{n:03d}" for n in range(PUBLISH_BATCH + 3)]))
    finally:
        enqueuer.close()
    celery_client(settings).send_task(RUN_RESPONSE_TASK, args=["resp_legacy"])

    async def count() -> int:
        redis = Redis.from_url(str(settings.redis_url))
        beat = WorkerBeat(
            pid=os.getpid(), hostname="counted", queue=queue, started_at=time.time(),
            in_flight=3, held=5,
        )  # fmt: skip
        key = heartbeat_key(beat["hostname"], beat["pid"])
        try:
            await redis.set(key, orjson.dumps(beat), px=30_000)
            return await waiting_jobs(redis, queue)
        finally:
            await redis.delete(key)
            await redis.aclose()

    assert len(queued_tasks(queue)) == 3  # 32 + 3 ids, then the legacy one
    assert asyncio.run(count()) == PUBLISH_BATCH + 3 + 1 + 5


def test_a_worker_runs_every_job_of_a_message_once(
    private_queue: Callable[[], Settings], fake_upstream: FakeUpstream, model: str
) -> None:
    settings = private_queue()
    fake_upstream.script(model, delay=0.2)
    with running_server(settings) as srv, sdk(srv.url) as client:
        created = [
            client.responses.create(model=model, input=f"job {n}", background=True)
            for n in range(5)
        ]
        ids = [c.id for c in created]
        # Also a duplicate and an id that names nothing: neither may stop the others.
        sender = celery_client(settings)
        sender.send_task(RUN_RESPONSES_TASK, args=[[*ids, ids[0], "resp_nothing"]])
        worker = Worker(settings).start()
        try:
            done = [poll_status(client, i, timeout=30) for i in ids]
            assert {d.status for d in done} == {"completed"}
            inputs = sorted(r["messages"][-1]["content"] for r in fake_upstream.requests(model))
            assert inputs == sorted(f"job {n}" for n in range(5))  # no job ran twice
        finally:
            worker.stop()
