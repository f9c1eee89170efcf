"""Claims and ends that happen together are written together (app/background/batching.py),
without changing what is written: each queued job claimed once, each end its own
compare-and-set, and one end that cannot be written never takes the others down with it."""

import asyncio
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.background.batching import Claims, Ends
from app.background.repository import Claim
from app.responses.domain import FinalValues
from app.responses.repository import ResponsesRepository
from tests.responses.test_repository import new_row, run_engine

DONE: FinalValues = {"status": "completed", "output": [], "completed_at": 1}


@pytest.fixture(scope="module")
def database_url(private_database_url: str) -> str:
    return private_database_url


async def queued_rows(engine: AsyncEngine, count: int) -> list[str]:
    rows = [new_row(params={"conversation_id": None}) for _ in range(count)]
    async with engine.begin() as conn:
        for row in rows:
            await ResponsesRepository(conn).create(row, [])
    return [row["id"] for row in rows]


def counting_updates(engine: AsyncEngine) -> list[str]:
    """The UPDATE statements the engine runs from now on (the driver fast path reports its
    statements to the same event)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    return seen


def test_jobs_handed_over_together_are_claimed_once_each_in_few_statements(
    database_url: str,
) -> None:
    async def work(engine: AsyncEngine) -> None:
        ids = await queued_rows(engine, 40)
        claims = Claims(engine, lease_seconds=30)
        updates = counting_updates(engine)
        # Every job handed over at once, one of them twice (a redelivered task).
        got = await asyncio.gather(*(claims.claim(i) for i in [*ids, ids[7]]))
        claimed = [c for c in got if c is not None]
        assert sorted(c.id for c in claimed) == sorted(ids)
        assert {c.attempt for c in claimed} == {1}
        assert len(updates) < len(ids) / 4  # the first alone, then the rest together
        # Claimed means claimed: a second hand-over of the same jobs finds none queued.
        assert await asyncio.gather(*(claims.claim(i) for i in ids[:5])) == [None] * 5

    run_engine(database_url, work)


def test_ends_written_together_keep_each_its_own_compare_and_set(database_url: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        ids = await queued_rows(engine, 12)
        claims, ends = Claims(engine, lease_seconds=30), Ends(engine)
        jobs = [c for c in await asyncio.gather(*(claims.claim(i) for i in ids)) if c]
        # One of them was cancelled meanwhile: its end must find nothing to write.
        async with engine.begin() as conn:
            await ResponsesRepository(conn).cancel("p", jobs[3].id)
        written = await asyncio.gather(*(ends.end(job, DONE) for job in jobs))
        assert written == [n != 3 for n in range(len(jobs))]
        async with engine.connect() as conn:
            repo = ResponsesRepository(conn)
            statuses = [(await repo.get("p", job.id) or {}).get("status") for job in jobs]
        assert statuses == ["cancelled" if n == 3 else "completed" for n in range(len(jobs))]

    run_engine(database_url, work)


def test_an_end_that_cannot_be_written_fails_alone(database_url: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        ids = await queued_rows(engine, 6)
        claims, ends = Claims(engine, lease_seconds=30), Ends(engine)
        jobs: list[Claim] = [c for c in await asyncio.gather(*(claims.claim(i) for i in ids)) if c]
        # Not JSON: the database driver refuses this end's row, and with it the batch's
        # transaction; the others are written again on their own.
        broken: FinalValues = {**DONE, "usage": {"not json": {1, 2}}}  # type: ignore[dict-item]
        outcomes = await asyncio.gather(
            *(ends.end(job, broken if n == 2 else DONE) for n, job in enumerate(jobs)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[2], Exception)
        assert [o for n, o in enumerate(outcomes) if n != 2] == [True] * (len(jobs) - 1)
        async with engine.connect() as conn:
            repo = ResponsesRepository(conn)
            broken_row = await repo.get("p", jobs[2].id)
        assert broken_row is not None
        assert broken_row["status"] == "in_progress"

    run_engine(database_url, work)
