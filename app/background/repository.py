"""The SQL of looking after background jobs: leases and lost tasks. Status changes are not
here: app/responses/repository.py is their one writer."""

import time
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.responses.domain import ResponseRecord, ResponseStatus
from app.responses.repository import responses

_r = responses.c


@dataclass(slots=True)
class Claim:
    """A job a worker now owns: its row as claimed, and the attempt it must finish as."""

    row: ResponseRecord

    @property
    def id(self) -> str:
        return self.row["id"]

    @property
    def attempt(self) -> int:
        return self.row.get("attempts", 1)


class JobsRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def cancelled_among(self, claims: list[Claim]) -> list[str]:
        """Which of these running jobs are no longer ours to run: cancelled, finished, deleted
        (gone, or a tombstone), or re-run by another worker after our lease was lost (another
        attempt owns it now). Asked as "which are still ours", so that a deleted row, which
        no longer answers at all, counts as not ours."""
        if not claims:
            return []
        ours = or_(*(and_(_r.id == c.id, _r.attempts == c.attempt) for c in claims))
        result = await self.conn.execute(
            select(_r.id).where(
                _r.id.in_([c.id for c in claims]),
                _r.status == ResponseStatus.IN_PROGRESS,
                _r.deleted_at.is_(None),
                ours,
            )
        )
        still = {row.id for row in result}
        return [c.id for c in claims if c.id not in still]

    async def renew_leases(self, claims: list[Claim], lease_seconds: float) -> None:
        """One UPDATE for every job this process runs."""
        if not claims:
            return
        owned = [and_(_r.id == c.id, _r.attempts == c.attempt) for c in claims]
        await self.conn.execute(
            update(responses)
            .where(_r.status == ResponseStatus.IN_PROGRESS, or_(*owned))
            .values(lease_expires_at=time.time() + lease_seconds)
        )

    async def requeue_lost(self, older_than: float, waiting: int | None = None) -> list[str]:
        """queued rows handed to the queue long ago (or never) whose task may be lost: handed
        again, oldest first (their enqueued_at now).

        `waiting`: how many jobs the broker's messages and the workers' hands hold for the
        queue (app/background/backlog.py). A row queued for long is usually only waiting its
        turn behind others, and re-publishing every such row each time flooded the queue
        exactly under load (issue 14, point 3). As many jobs as there are queued rows are
        waiting, so none is lost: hand none. Fewer: hand again only as many as are missing
        (the broker lost them, or their publish failed). None: no broker to ask (embedded
        mode, whose queue ignores a job it already has), every old row.
        """
        now = time.time()
        stale = and_(
            _r.status == ResponseStatus.QUEUED,
            _r.enqueued_at.is_(None) | (_r.enqueued_at < now - older_than),
        )
        chosen = select(_r.id).where(stale)
        if waiting is not None:
            queued = await self.conn.execute(
                select(func.count()).select_from(responses).where(text("status = 'queued'"))
            )
            missing = int(queued.scalar_one()) - waiting
            if missing <= 0:
                return []
            chosen = chosen.order_by(_r.enqueued_at.asc().nulls_first()).limit(missing)
        result = await self.conn.execute(
            update(responses)
            .where(_r.id.in_(chosen.scalar_subquery()), stale)
            .values(enqueued_at=now)
            .returning(_r.id)
        )
        return [row.id for row in result]

    async def count_unfinished(self) -> dict[str, int]:
        """Jobs queued and in progress, of every project: one scan of the index of unfinished
        rows (ix_responses_unfinished), for /metrics."""
        result = await self.conn.execute(
            select(_r.status, func.count())
            # The index's own predicate, as a literal: a bound parameter would leave a
            # generic plan unable to prove the partial index applies.
            .where(text("status IN ('queued', 'in_progress')"))
            .group_by(_r.status)
        )
        return {str(status): int(count) for status, count in result}
