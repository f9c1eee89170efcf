"""All SQL of background jobs. Every status change is a compare-and-set: whoever loses a race
finds no row and steps aside."""

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.kit.driver import DriverStatement
from app.responses.repository import JSON_COLUMNS, responses

UNFINISHED = ("queued", "in_progress")

# Claim and finish run once per job on a worker's hot path: on the driver connection, as the
# API's hot statements do (app/kit/driver.py).
_r = responses.c
CLAIM = DriverStatement(
    update(responses)
    .where(_r.id == bindparam("response_id"), _r.status == "queued")
    .values(status="in_progress", attempts=_r.attempts + 1, lease_expires_at=bindparam("lease"))
    .returning(*responses.c),
    JSON_COLUMNS,
)
# What a job's end can change; a value the job did not set keeps the claimed row's.
FINAL_COLUMNS = (
    "status",
    "output",
    "usage",
    "error",
    "incomplete_details",
    "completed_at",
    "messages",
)
FINISH = DriverStatement(
    update(responses)
    .where(
        _r.id == bindparam("response_id"),
        _r.status == "in_progress",
        _r.attempts == bindparam("attempt"),
    )
    .values(lease_expires_at=None, **{name: bindparam(name) for name in FINAL_COLUMNS})
    .returning(_r.id),
    JSON_COLUMNS,
)


@dataclass(slots=True)
class Claim:
    """A job a worker now owns: what it needs to run it, and the attempt it must finish as."""

    id: str
    project_id: str
    attempt: int
    model: str
    instructions: str | None
    previous_response_id: str | None
    params: dict[str, Any]
    messages: list[dict[str, Any]]
    row: dict[str, Any]  # the whole row as claimed, to render the response in events


class JobsRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def claim(self, response_id: str, lease_seconds: float) -> Claim | None:
        """queued -> in_progress, or None if it is not queued (running elsewhere, cancelled,
        finished: a redelivered or duplicate task lands here and does nothing)."""
        rows = await CLAIM.fetch(
            self.conn, response_id=response_id, lease=time.time() + lease_seconds
        )
        if not rows:
            return None
        row = rows[0]
        return Claim(
            id=row["id"],
            project_id=row["project_id"],
            attempt=row["attempts"],
            model=row["model"],
            instructions=row["instructions"],
            previous_response_id=row["previous_response_id"],
            params=row["params"],
            messages=row["messages"],
            row=row,
        )

    async def finish(self, claim: Claim, values: dict[str, Any]) -> bool:
        """in_progress -> a terminal status, only if this very claim still owns the job.

        False when the response was cancelled meanwhile, or the lease was lost and the job
        handed to another attempt: a cancelled response never turns `completed`.
        """
        final = {name: values.get(name, claim.row[name]) for name in FINAL_COLUMNS}
        rows = await FINISH.fetch(self.conn, response_id=claim.id, attempt=claim.attempt, **final)
        return bool(rows)

    async def release(self, claim: Claim) -> None:
        """Give an unfinished job back (shutting down): queued again, the attempt not counted."""
        r = responses.c
        await self.conn.execute(
            update(responses)
            .where(r.id == claim.id, r.status == "in_progress", r.attempts == claim.attempt)
            .values(
                status="queued", attempts=r.attempts - 1, lease_expires_at=None, enqueued_at=None
            )
        )

    async def cancel(self, project_id: str, response_id: str) -> None:
        r = responses.c
        await self.conn.execute(
            update(responses)
            .where(r.id == response_id, r.project_id == project_id, r.status.in_(UNFINISHED))
            .values(status="cancelled", lease_expires_at=None)
        )

    async def cancelled_among(self, ids: list[str]) -> list[str]:
        """Which of these running jobs are no longer ours to run (cancelled, or taken away)."""
        if not ids:
            return []
        r = responses.c
        result = await self.conn.execute(
            select(r.id).where(r.id.in_(ids), r.status != "in_progress")
        )
        return [row.id for row in result]

    async def renew_leases(self, claims: list[Claim], lease_seconds: float) -> None:
        """One UPDATE for every job this process runs."""
        if not claims:
            return
        r = responses.c
        owned = [and_(r.id == c.id, r.attempts == c.attempt) for c in claims]
        await self.conn.execute(
            update(responses)
            .where(r.status == "in_progress", or_(*owned))
            .values(lease_expires_at=time.time() + lease_seconds)
        )

    async def requeue_expired(self, max_attempts: int) -> list[str]:
        """in_progress rows whose worker stopped renewing: queued again while attempts remain."""
        r = responses.c
        result = await self.conn.execute(
            update(responses)
            .where(
                r.status == "in_progress",
                r.lease_expires_at < time.time(),
                r.attempts < max_attempts,
            )
            .values(status="queued", lease_expires_at=None, enqueued_at=time.time())
            .returning(r.id)
        )
        return [row.id for row in result]

    async def fail_expired(self, max_attempts: int) -> list[str]:
        """in_progress rows whose worker was lost on every attempt: failed, for good."""
        r = responses.c
        result = await self.conn.execute(
            update(responses)
            .where(
                r.status == "in_progress",
                r.lease_expires_at < time.time(),
                r.attempts >= max_attempts,
            )
            .values(
                status="failed",
                lease_expires_at=None,
                error={
                    "code": "worker_lost",
                    "message": f"The worker running this response was lost {max_attempts} times.",
                },
            )
            .returning(r.id)
        )
        return [row.id for row in result]

    async def requeue_lost(self, older_than: float) -> list[str]:
        """queued rows handed to the queue long ago (or never): their task was lost."""
        r = responses.c
        now = time.time()
        result = await self.conn.execute(
            update(responses)
            .where(
                r.status == "queued", (r.enqueued_at.is_(None)) | (r.enqueued_at < now - older_than)
            )
            .values(enqueued_at=now)
            .returning(r.id)
        )
        return [row.id for row in result]
