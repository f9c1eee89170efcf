"""Claims and ends of jobs that happen together are written together (group commit).

A worker carries hundreds of jobs in one event loop. Claimed or ended one by one, each is a
transaction of its own: a BEGIN, a statement and a COMMIT (a WAL flush) each time. Here a claim
or an end that arrives while the previous batch is being written waits for the next one, so
the batch grows with the load by itself: one job alone is written at once, as before, and
under load a transaction carries every job that arrived meanwhile.

Batching changes how often we commit, never what is written: a claim is still "queued ->
in_progress" for rows that are queued, an end still the compare-and-set of app/responses/turn.py
for the attempt that owns it. If a batch of ends fails, each end is written again on its own,
so one bad row cannot take the others down with it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.background.repository import Claim
from app.responses import turn
from app.responses.domain import FinalValues
from app.responses.repository import ResponsesRepository

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


class GroupWriter(Generic[In, Out]):
    """Items submitted while a batch is being written are written together in the next one."""

    def __init__(self, write: Callable[[list[In]], Awaitable[list[Out | Exception]]]) -> None:
        self._write = write
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        # A waiter cancelled (shutdown) leaves its item in the batch: written all the same. A
        # claim so written and never run is in_progress under a lease nobody renews: the
        # sweeper runs it again once the lease ends, as for a worker that died.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._write([item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):  # this item's own failure
                    future.set_exception(result)
                else:
                    future.set_result(result)


class Claims:
    """queued -> in_progress for the jobs this process is handed, several in one UPDATE."""

    def __init__(self, engine: AsyncEngine, lease_seconds: float) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds
        self._writer: GroupWriter[str, Claim | None] = GroupWriter(self._claim)

    async def claim(self, response_id: str) -> Claim | None:
        """The job, now this process's; None if it is not queued (a duplicate delivery, a
        cancel, a job running elsewhere)."""
        return await self._writer.submit(response_id)

    async def _claim(self, ids: list[str]) -> list[Claim | Exception | None]:
        async with self.engine.begin() as conn:
            repo = ResponsesRepository(conn)
            if len(ids) == 1:  # the common case at low load: the hot, precompiled statement
                row = await repo.claim(ids[0], self.lease_seconds)
                return [Claim(row) if row is not None else None]
            rows = {row["id"]: row for row in await repo.claim_many(ids, self.lease_seconds)}
        claims: list[Claim | Exception | None] = []
        for response_id in ids:
            # A task delivered twice in one batch: the first gets the job, the second nothing.
            row = rows.pop(response_id, None)
            claims.append(Claim(row) if row is not None else None)
        return claims


@dataclass(frozen=True, slots=True)
class End:
    job: Claim
    values: FinalValues


class Ends:
    """The ends of jobs (app/responses/turn.py's compare-and-set), several in one transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._writer: GroupWriter[End, bool] = GroupWriter(self._end)

    async def end(self, job: Claim, values: FinalValues) -> bool:
        """False if the job was no longer this attempt's to end: nothing was written."""
        return await self._writer.submit(End(job, values))

    async def _end(self, ends: list[End]) -> list[bool | Exception]:
        if len(ends) > 1:
            try:
                async with self.engine.begin() as conn:
                    return [await _end_one(conn, end) for end in ends]
            except Exception:
                log.warning(
                    "writing the ends of %d jobs together failed; writing each on its own",
                    len(ends),
                    exc_info=True,
                )
        outcomes: list[bool | Exception] = []
        for end in ends:
            try:
                async with self.engine.begin() as conn:
                    outcomes.append(await _end_one(conn, end))
            except Exception as exc:  # this end's own failure, for its job to see
                outcomes.append(exc)
        return outcomes


async def _end_one(conn: AsyncConnection, end: End) -> bool:
    return await turn.end_on(conn, end.job.row, end.values, attempt=end.job.attempt)
