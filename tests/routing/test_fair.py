"""Fair scheduling of background jobs: one project's 2,000 queued jobs do not starve another's
20, and `priority` runs before `default` before `flex`; on real Celery workers, and in embedded
mode. Jobs are queued with no worker running, then one starts: what it runs first is the
scheduler's choice alone."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import openai
import pytest
import redis
from sqlalchemy import insert, select

from app.config import Settings
from app.db import create_engine
from app.jobs import celery_enqueuer
from app.kit.fair import QueuedJob, key_prefix
from app.kit.ids import new_id
from app.kit.tiers import tier_of
from app.responses.domain import ResponseRecord
from app.responses.repository import responses
from tests.auth.harness import make_key
from tests.background.conftest import JOB_SETTINGS
from tests.background.harness import Worker, queued_tasks
from tests.conftest import SMALL_POOL, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import (
    TEST_REDIS_URL,
    migrated_database,
    poll_status,
    query,
    running_server,
    wait_until,
)

TIERS = ("flex", "default", "priority")


@pytest.fixture
def celery_settings(fake_upstream: FakeUpstream, tmp_path: Path) -> Iterator[Settings]:
    """A database and a queue of this test's own (its projects have keys)."""
    queue = f"fair-{uuid.uuid4().hex[:8]}"
    with migrated_database("postgres", str(tmp_path)) as url:
        yield Settings(
            database_url=url,
            redis_url=TEST_REDIS_URL,
            celery_queue=queue,
            upstream_base_url=f"{fake_upstream.url}/v1",
            **{**JOB_SETTINGS, **SMALL_POOL},
        )
    store = redis.Redis.from_url(TEST_REDIS_URL)
    store.delete(queue, *store.keys(key_prefix(queue) + "*"))
    store.close()


def create_many(url: str, key: str, model: str, count: int, tag: str) -> list[str]:
    """`count` background creates, 32 at a time, with the SDK."""

    async def run() -> list[str]:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        gate = asyncio.Semaphore(32)

        async def one(n: int) -> str:
            async with gate:
                created = await client.responses.create(
                    model=model, input=f"{tag}{n}", background=True
                )
                return created.id

        try:
            return await asyncio.gather(*(one(n) for n in range(count)))
        finally:
            await client.close()

    return asyncio.run(run())


def copy_jobs(settings: Settings, response_id: str, count: int) -> None:
    """`count` more queued jobs like `response_id`, stored and handed to the queue as a
    create stores and submits its job (2,000 creates over HTTP would take most of a minute of
    CI; the scheduling under test starts at the submit)."""

    async def run() -> None:
        engine = create_engine(settings)
        enqueuer = celery_enqueuer(settings)
        try:
            async with engine.connect() as conn:
                found = await conn.execute(select(responses).where(responses.c.id == response_id))
                row = cast(ResponseRecord, dict(found.mappings().one()))
            copies = [{**row, "id": new_id("resp")} for _ in range(count)]
            async with engine.begin() as conn:  # one statement; items need no index here
                await conn.execute(insert(responses), copies)
            tier = tier_of(row["params"]["service_tier"])
            await enqueuer.submit([QueuedJob(c["id"], c["project_id"], tier) for c in copies])
        finally:
            await asyncio.to_thread(enqueuer.close, 60)
            await engine.dispose()

    asyncio.run(run())


def tickets_waiting(queue: str) -> int:
    """Tickets in the queue's messages (each message carries those published together)."""
    return sum(len(args[0]) for _, args in queued_tasks(queue))


def completed(database_url: str, project: str) -> int:
    rows = query(
        database_url,
        "SELECT count(*) FROM responses WHERE project_id = "
        "(SELECT id FROM projects WHERE name = :project) AND status = 'completed'",
        project=project,
    )
    return int(rows[0][0])  # type: ignore[call-overload]


def started_before_last(database_url: str, project: str) -> int:
    """Jobs of other projects that started before `project`'s last one did."""
    rows = query(
        database_url,
        "WITH mine AS (SELECT id FROM projects WHERE name = :project) "
        "SELECT count(*) FROM responses WHERE project_id <> (SELECT id FROM mine) "
        "AND started_at < (SELECT max(started_at) FROM responses "
        "WHERE project_id = (SELECT id FROM mine))",
        project=project,
    )
    return int(rows[0][0])  # type: ignore[call-overload]


class TestOnCelery:
    def test_a_project_with_20_jobs_is_not_starved_by_one_with_2000(
        self, celery_settings: Settings, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, delay=0.05)
        _, key_a = make_key(celery_settings, "project-a")
        _, key_b = make_key(celery_settings, "project-b")
        with running_server(celery_settings) as server:
            first = create_many(server.url, key_a, model, 1, "a")[0]
            copy_jobs(celery_settings, first, 1999)
            create_many(server.url, key_b, model, 20, "b")
            queue = celery_settings.celery_queue
            wait_until(lambda: tickets_waiting(queue) == 2020, timeout=60, what="every ticket")
            worker = Worker(celery_settings, concurrency=8).start()
            try:
                wait_until(
                    lambda: completed(celery_settings.database_url, "project-b") == 20,
                    timeout=60,
                    what="project B's jobs",
                )
                a_before = started_before_last(celery_settings.database_url, "project-b")
            finally:
                worker.stop()
        # First in, first out, B would have waited for all 2,000 of A's. Taken in turns, B's
        # 20 started among the first ~40 jobs, 8 at a time: ~20 of A's before B's last, and up
        # to 8 more that a worker's slots took together with it. Read from when each job
        # started, not counted once B is done: how fast the machine is does not enter.
        assert a_before <= 40, a_before

    def test_priority_runs_before_default_before_flex(
        self, celery_settings: Settings, fake_upstream: FakeUpstream, model: str
    ) -> None:
        with running_server(celery_settings) as server:
            client = sdk(server.url)
            ids = {
                f"{tier}{n}": client.responses.create(
                    model=model,
                    input=f"{tier}{n}",
                    background=True,
                    service_tier=tier,  # type: ignore[arg-type]
                ).id
                for n in range(3)
                for tier in TIERS
            }
            queue = celery_settings.celery_queue
            wait_until(lambda: tickets_waiting(queue) == 9, what="every ticket")
            worker = Worker(celery_settings, concurrency=1).start()
            try:
                finished = {tag: poll_status(client, rid) for tag, rid in ids.items()}
            finally:
                worker.stop()
        assert {tag: r.service_tier for tag, r in finished.items()} == {
            tag: tag[:-1] for tag in ids
        }
        order = [body["messages"][-1]["content"] for body in fake_upstream.requests(model)]
        assert order == [f"{tier}{n}" for tier in reversed(TIERS) for n in range(3)]


class TestEmbedded:
    def test_turns_by_tier_then_by_project(
        self, fake_upstream: FakeUpstream, model: str, tmp_path: Path
    ) -> None:
        blocker = f"{model}-blocker"
        fake_upstream.script(blocker, hold=True)  # the one place stays taken until released
        with migrated_database("sqlite", str(tmp_path)) as url:
            settings = Settings(
                database_url=url,
                upstream_base_url=f"{fake_upstream.url}/v1",
                worker_concurrency=1,
                **SMALL_POOL,
            )
            _, key_a = make_key(settings, "project-a")
            _, key_b = make_key(settings, "project-b")
            with running_server(settings) as server:
                a, b = (
                    openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
                    for key in (key_a, key_b)
                )
                a.responses.create(model=blocker, input="hold", background=True)
                wait_until(lambda: fake_upstream.in_flight(blocker) == 1, what="the blocker")

                # While the one place is taken: A's flex job and 10 default ones, B's 2
                # default ones and a priority one.
                def job(client: openai.OpenAI, tag: str, tier: str = "default") -> str:
                    created = client.responses.create(
                        model=model,
                        input=tag,
                        background=True,
                        service_tier=tier,  # type: ignore[arg-type]
                    )
                    return created.id

                flex = job(a, "flex", "flex")
                for n in range(10):
                    job(a, f"a{n}")
                for n in range(2):
                    job(b, f"b{n}")
                job(b, "priority", "priority")
                fake_upstream.release(blocker)
                assert poll_status(a, flex).status == "completed"
        order = [body["messages"][-1]["content"] for body in fake_upstream.requests(model)]
        assert order == [
            "priority",
            "a0",
            "b0",
            "a1",
            "b1",
            *(f"a{n}" for n in range(2, 10)),
            "flex",
        ]
