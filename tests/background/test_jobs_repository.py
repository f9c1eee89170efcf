"""The compare-and-set rules every job relies on, against the real databases."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.background.repository import JobsRepository
from app.db import async_url
from app.kit.ids import new_id, now_seconds
from app.responses.repository import ResponsesRepository

DONE = {"status": "completed", "output": [], "completed_at": 1}


def run(database_url: str, work: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        engine = create_async_engine(async_url(database_url))
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def queued(conn: AsyncConnection) -> str:
    rid = new_id("resp")
    await ResponsesRepository(conn).create(
        {
            "id": rid,
            "project_id": "p",
            "status": "queued",
            "model": "m",
            "background": True,
            "created_at": now_seconds(),
            "completed_at": None,
            "previous_response_id": None,
            "instructions": None,
            "input": [],
            "messages": [],
            "params": {},
            "output": [],
            "usage": None,
            "error": None,
            "incomplete_details": None,
            "metadata": {},
        }
    )
    return rid


async def status(conn: AsyncConnection, rid: str) -> str:
    row = await ResponsesRepository(conn).get("p", rid)
    assert row is not None
    return str(row["status"])


def test_a_response_is_claimed_once(database_url: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        rid = await queued(conn)
        jobs = JobsRepository(conn)
        first = await jobs.claim(rid, lease_seconds=30)
        assert first is not None
        assert first.attempt == 1
        assert await jobs.claim(rid, lease_seconds=30) is None

    run(database_url, work)


def test_a_cancelled_response_never_turns_completed(database_url: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        rid = await queued(conn)
        jobs = JobsRepository(conn)
        claim = await jobs.claim(rid, lease_seconds=30)
        assert claim is not None
        await jobs.cancel("p", rid)
        assert await jobs.finish(claim, DONE) is False  # the worker's late result
        assert await status(conn, rid) == "cancelled"
        assert await jobs.cancelled_among([rid]) == [rid]

    run(database_url, work)


def test_a_worker_presumed_dead_cannot_overwrite_the_rerun(database_url: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        rid = await queued(conn)
        jobs = JobsRepository(conn)
        stale = await jobs.claim(rid, lease_seconds=-1)  # its lease is already over
        assert stale is not None
        assert await jobs.requeue_expired(max_attempts=3) == [rid]
        rerun = await jobs.claim(rid, lease_seconds=30)
        assert rerun is not None
        assert rerun.attempt == 2
        assert await jobs.finish(stale, DONE) is False
        assert await jobs.finish(rerun, DONE) is True
        assert await status(conn, rid) == "completed"

    run(database_url, work)


@pytest.mark.parametrize("attempts_left", [True, False])
def test_expired_leases_are_rerun_then_failed(database_url: str, attempts_left: bool) -> None:
    async def work(conn: AsyncConnection) -> None:
        rid = await queued(conn)
        jobs = JobsRepository(conn)
        assert await jobs.claim(rid, lease_seconds=-1) is not None
        max_attempts = 2 if attempts_left else 1
        assert await jobs.requeue_expired(max_attempts) == ([rid] if attempts_left else [])
        assert await jobs.fail_expired(max_attempts) == ([] if attempts_left else [rid])
        row = await ResponsesRepository(conn).get("p", rid)
        assert row is not None
        if attempts_left:
            assert row["status"] == "queued"
        else:
            assert row["status"] == "failed"
            assert row["error"]["code"] == "worker_lost"

    run(database_url, work)


def test_lost_queued_rows_are_handed_to_the_queue_again(database_url: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        rid = await queued(conn)  # never enqueued: enqueued_at is null
        jobs = JobsRepository(conn)
        assert rid in await jobs.requeue_lost(older_than=60)
        assert rid not in await jobs.requeue_lost(older_than=60)  # not again so soon
        assert rid in await jobs.requeue_lost(older_than=-1)  # i.e. enqueued before "now + 1 s"

    run(database_url, work)
