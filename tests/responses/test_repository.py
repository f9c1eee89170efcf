"""The responses repository against the real databases: the compare-and-set rules every
status change relies on, and the driver fast path sealed (types, transactions, exceptions)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.background.repository import Claim, JobsRepository
from app.config import Settings
from app.db import async_url, create_engine
from app.kit.driver import violated
from app.kit.ids import new_id, now_seconds
from app.responses.domain import FinalValues, ResponseRecord
from app.responses.repository import DuplicateKey, ResponsesRepository

DONE: FinalValues = {"status": "completed", "output": [], "completed_at": 1}


@pytest.fixture(scope="module")
def database_url(private_database_url: str) -> str:
    return private_database_url  # the rows here are bare: never where a sweeper runs


def run(database_url: str, work: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        engine = create_async_engine(async_url(database_url))
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def run_engine(database_url: str, work: Callable[[AsyncEngine], Awaitable[Any]]) -> Any:
    """With the app's own engine (its JSON codec), for work that opens its own transactions."""

    async def go() -> Any:
        engine = create_engine(Settings(database_url=database_url))
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def new_row(**changes: Any) -> ResponseRecord:
    row: ResponseRecord = {
        "id": new_id("resp"),
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
        "params": {},  # type: ignore[typeddict-item]
        "output": [],
        "usage": None,
        "error": None,
        "incomplete_details": None,
        "metadata": {},
        "idempotency_key": None,
        "request_hash": None,
        "enqueued_at": None,
    }
    return {**row, **changes}  # type: ignore[typeddict-item]


async def queued(conn: AsyncConnection) -> str:
    row = new_row()
    await ResponsesRepository(conn).create(row, [])
    return row["id"]


async def claim(conn: AsyncConnection, rid: str, lease_seconds: float) -> Claim | None:
    row = await ResponsesRepository(conn).claim(rid, lease_seconds)
    return Claim(row) if row is not None else None


async def finish(conn: AsyncConnection, job: Claim, values: FinalValues) -> bool:
    return await ResponsesRepository(conn).finish(job.row, values, job.attempt)


async def status(conn: AsyncConnection, rid: str) -> str:
    row = await ResponsesRepository(conn).get("p", rid)
    assert row is not None
    return str(row["status"])


def test_a_response_is_claimed_once(database_url: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        rid = await queued(conn)
        first = await claim(conn, rid, lease_seconds=30)
        assert first is not None
        assert first.attempt == 1
        assert await claim(conn, rid, lease_seconds=30) is None

    run(database_url, work)


def test_a_cancelled_response_never_turns_completed(database_url: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        rid = await queued(conn)
        job = await claim(conn, rid, lease_seconds=30)
        assert job is not None
        await ResponsesRepository(conn).cancel("p", rid)
        assert await finish(conn, job, DONE) is False  # the worker's late result
        assert await status(conn, rid) == "cancelled"
        assert await JobsRepository(conn).cancelled_among([job]) == [rid]

    run(database_url, work)


def test_a_worker_presumed_dead_cannot_overwrite_the_rerun(database_url: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        rid = await queued(conn)
        stale = await claim(conn, rid, lease_seconds=-1)  # its lease is already over
        assert stale is not None
        assert await ResponsesRepository(conn).requeue_expired(max_attempts=3) == [rid]
        rerun = await claim(conn, rid, lease_seconds=30)
        assert rerun is not None
        assert rerun.attempt == 2
        # The presumed-dead worker's supervisor learns the job is no longer its own.
        jobs = JobsRepository(conn)
        assert await jobs.cancelled_among([stale]) == [rid]
        assert await jobs.cancelled_among([rerun]) == []
        assert await finish(conn, stale, DONE) is False
        assert await finish(conn, rerun, DONE) is True
        assert await status(conn, rid) == "completed"

    run(database_url, work)


@pytest.mark.parametrize("attempts_left", [True, False])
def test_expired_leases_are_rerun_then_failed(database_url: str, attempts_left: bool) -> None:
    async def work(conn: AsyncConnection) -> None:
        rid = await queued(conn)
        responses = ResponsesRepository(conn)
        assert await claim(conn, rid, lease_seconds=-1) is not None
        max_attempts = 2 if attempts_left else 1
        assert await responses.requeue_expired(max_attempts) == ([rid] if attempts_left else [])
        assert await responses.fail_expired(max_attempts) == ([] if attempts_left else [rid])
        row = await ResponsesRepository(conn).get("p", rid)
        assert row is not None
        if attempts_left:
            assert row["status"] == "queued"
        else:
            assert row["status"] == "failed"
            assert row["error"] is not None
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


class TestDriverFastPath:
    """The hot statements run on the driver connection; they must behave as SQLAlchemy does."""

    def test_values_come_back_as_their_column_types(self, database_url: str) -> None:
        async def work(engine: AsyncEngine) -> None:
            async with engine.begin() as conn:
                row = new_row(background=False, metadata={"k": "v"})
                await ResponsesRepository(conn).create(row, [])
            async with engine.connect() as conn:
                got = await ResponsesRepository(conn).get("p", row["id"])
            assert got is not None
            # SQLite stores booleans as 0/1: the column type must turn them back.
            assert got["background"] is False
            assert got["metadata"] == {"k": "v"}
            assert got["params"] == {}

        run_engine(database_url, work)

    def test_a_statement_joins_the_callers_transaction(self, database_url: str) -> None:
        """Rolled back with the rest: on PostgreSQL the raw asyncpg statement used to run (and
        commit) on its own, outside SQLAlchemy's lazily begun transaction."""

        class Abort(Exception):
            pass

        async def create_then_abort(engine: AsyncEngine, row: ResponseRecord) -> None:
            async with engine.begin() as conn:
                await ResponsesRepository(conn).create(row, [])
                raise Abort

        async def work(engine: AsyncEngine) -> None:
            row = new_row()
            with pytest.raises(Abort):
                await create_then_abort(engine, row)
            async with engine.connect() as conn:
                found = await conn.execute(
                    text("SELECT count(*) FROM responses WHERE id = :id"), {"id": row["id"]}
                )
                assert found.scalar_one() == 0

        run_engine(database_url, work)

    def test_driver_errors_leave_as_sqlalchemys(self, database_url: str) -> None:
        async def work(engine: AsyncEngine) -> None:
            row = new_row(idempotency_key="k-" + new_id("x"), request_hash="h")
            async with engine.begin() as conn:
                await ResponsesRepository(conn).create(row, [])
            with pytest.raises(DuplicateKey) as caught:
                async with engine.begin() as conn:
                    await ResponsesRepository(conn).create({**row, "id": new_id("resp")}, [])
            cause = caught.value.__cause__
            assert isinstance(cause, IntegrityError)
            assert violated(cause) == "unique"

        run_engine(database_url, work)
