"""All SQL for responses. Every query is scoped by project_id.

This is the one writer of `responses.status`: every change of state (create, claim, finish,
release, cancel, the sweeper's re-runs and failures) is a method here, each a compare-and-set on
the status it expects, so whoever loses a race finds no row and steps aside.
"""

import time
from dataclasses import dataclass
from typing import Any, cast

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import BindParameter

from app.items.repository import index_from, index_items, item_ids
from app.kit.driver import Db, DriverStatement, dialect_name, violated
from app.kit.ids import now_seconds
from app.kit.listing import PageQuery, metadata_matches, paged
from app.models import ResponseRow
from app.responses.domain import (
    FINAL_COLUMNS,
    IN_FLIGHT,
    FinalValues,
    ResponseRecord,
    ResponseStatus,
    StoredResponse,
)

responses = cast(Table, ResponseRow.__table__)

# What the Response object shows: not the input (input_items has it), not the replay form, not
# the job and bookkeeping columns.
HIDDEN = {
    "input",
    "messages",
    "deleted_at",
    "attempts",
    "lease_expires_at",
    "enqueued_at",
    "idempotency_key",
    "request_hash",
}
VISIBLE = [c for c in responses.c if c.name not in HIDDEN]
# What a new row holds unless the caller says otherwise.
ROW_DEFAULTS: dict[str, Any] = dict.fromkeys(HIDDEN - {"input", "messages"})
ROW_DEFAULTS["attempts"] = 0
_r = responses.c

GET = DriverStatement(
    select(*VISIBLE).where(
        responses.c.id == bindparam("response_id"),
        responses.c.project_id == bindparam("project_id"),
        responses.c.deleted_at.is_(None),
    ),
)

GET_INPUT = DriverStatement(
    select(responses.c.input).where(
        responses.c.id == bindparam("response_id"),
        responses.c.project_id == bindparam("project_id"),
        responses.c.deleted_at.is_(None),
    ),
)

BY_KEY = DriverStatement(
    select(*VISIBLE, responses.c.request_hash).where(
        responses.c.project_id == bindparam("project_id"),
        responses.c.idempotency_key == bindparam("key"),
    ),
)

_insert = insert(responses).values({c.name: bindparam(c.name) for c in responses.c})
CREATE = DriverStatement(_insert)
# On PostgreSQL the row and the index of its items (app/items/) go in one statement, which is
# atomic by itself: a write that is only this needs no BEGIN and COMMIT (two round trips, a
# third of a create's database time).
_created = _insert.returning(_r.id, _r.project_id).cte("created")
CREATE_INDEXED = DriverStatement(index_from("postgresql", _created.c.project_id, _created.c.id))

# A background job's claim and end run once per job on a worker's hot path: on the driver.
CLAIM = DriverStatement(
    update(responses)
    .where(_r.id == bindparam("response_id"), _r.status == ResponseStatus.QUEUED)
    .values(
        status=ResponseStatus.IN_PROGRESS,
        attempts=_r.attempts + 1,
        lease_expires_at=bindparam("lease"),
    )
    .returning(*responses.c)
)
# The end of a turn, for whoever owns it: the request streaming it (attempt 0, never claimed)
# or the worker that claimed that attempt. A cancel, or a re-run after a lost lease, changed
# the status or the attempt, and this write then finds nothing.
FINISH = DriverStatement(
    update(responses)
    .where(
        _r.id == bindparam("response_id"),
        _r.status == ResponseStatus.IN_PROGRESS,
        _r.attempts == bindparam("attempt"),
    )
    .values(lease_expires_at=None, **{name: bindparam(name) for name in FINAL_COLUMNS})
    .returning(_r.id)
)


def _chain_query() -> Select[Any]:
    """Walk up previous_response_id from the head, one primary-key lookup per turn, carrying
    each turn's replay messages along; oldest turn first.

    The messages come back as text: decoding them with orjson beats the driver's JSON codec.
    """
    r, parent = responses, responses.alias("parent")
    project: BindParameter[str] = bindparam("project_id")
    chain = (
        select(
            r.c.previous_response_id,
            r.c.deleted_at,
            r.c.status,
            cast_(r.c.messages, Text).label("messages"),
            literal(0).label("depth"),
        )
        .where(r.c.id == bindparam("response_id"), r.c.project_id == project)
        .cte("chain", recursive=True)
    )
    chain = chain.union_all(
        select(
            parent.c.previous_response_id,
            parent.c.deleted_at,
            parent.c.status,
            cast_(parent.c.messages, Text),
            chain.c.depth + 1,
        ).where(parent.c.id == chain.c.previous_response_id, parent.c.project_id == project)
    )
    return select(chain.c.depth, chain.c.deleted_at, chain.c.status, chain.c.messages).order_by(
        chain.c.depth.desc()
    )


CHAIN = DriverStatement(_chain_query())  # messages arrive as JSON text on every dialect


def _expired(table: Any, cutoff: int) -> ColumnElement[bool]:
    """Past retention: created before `cutoff`, and over (a job still running is kept)."""
    return and_(table.c.created_at < cutoff, table.c.status.not_in(sorted(IN_FLIGHT)))


def _has_children(table: Any) -> ColumnElement[bool]:
    child = responses.alias("child")
    return exists().where(child.c.previous_response_id == table.c.id)


@dataclass(slots=True)
class Expired:
    """What retention would do with the responses created before a cutoff."""

    remove: int
    tombstone: int  # later, kept turns still chain through these


@dataclass(slots=True)
class JobRow:
    """A background response as `tether jobs list` shows it."""

    id: str
    project_id: str
    model: str
    status: str
    created_at: int
    attempts: int
    error_code: str | None


class PreviousResponseGone(Exception):
    """The parent was deleted for good between reading the thread and writing the new turn."""


class DuplicateKey(Exception):
    """Another create with the same Idempotency-Key was stored first."""


@dataclass(slots=True)
class Chain:
    """A thread up to and including one response: its messages, in the order the model sees
    them (instructions excluded: they are never carried over)."""

    found: bool
    messages: list[dict[str, Any]]
    status: str | None = None  # the head's


class ResponsesRepository:
    """Works on a Session (a request's unit of work) or a bare connection (reads, create)."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def create(self, row: ResponseRecord, items: list[dict[str, Any]]) -> None:
        """Insert a response, with `items` (its input, or input and output) indexed:
        PreviousResponseGone if its parent is gone, DuplicateKey if its Idempotency-Key was
        used first by another."""
        values = {**ROW_DEFAULTS, **row}
        try:
            if dialect_name(self.db) == "postgresql":
                await CREATE_INDEXED.execute(self.db, **values, item_ids=item_ids(items))
            else:
                await CREATE.execute(self.db, **values)
                await index_items(self.db, row["project_id"], row["id"], items)
        except IntegrityError as exc:
            if violated(exc) == "unique":
                raise DuplicateKey from exc
            raise PreviousResponseGone from exc

    async def get(self, project_id: str, response_id: str) -> StoredResponse | None:
        rows = await GET.fetch(self.db, response_id=response_id, project_id=project_id)
        return cast(StoredResponse, rows[0]) if rows else None

    async def finish(self, row: ResponseRecord, values: FinalValues, attempt: int) -> bool:
        """in_progress -> the terminal status in `values`, only if `attempt` still owns it.

        False when the response was cancelled meanwhile, or its lease was lost and the job
        handed to another attempt: a cancelled response never turns `completed`.
        """
        final = {name: values.get(name, row.get(name)) for name in FINAL_COLUMNS}
        found = await FINISH.fetch(self.db, response_id=row["id"], attempt=attempt, **final)
        return bool(found)

    async def claim(self, response_id: str, lease_seconds: float) -> ResponseRecord | None:
        """queued -> in_progress, or None if it is not queued (running elsewhere, cancelled,
        finished: a redelivered or duplicate task lands here and does nothing)."""
        rows = await CLAIM.fetch(
            self.db, response_id=response_id, lease=time.time() + lease_seconds
        )
        return cast(ResponseRecord, rows[0]) if rows else None

    async def release(self, response_id: str, attempt: int) -> None:
        """Give an unfinished job back (shutting down): queued again, the attempt not counted.
        Its event log keeps what it streamed; the next attempt numbers on after it."""
        await self.db.execute(
            update(responses)
            .where(
                _r.id == response_id,
                _r.status == ResponseStatus.IN_PROGRESS,
                _r.attempts == attempt,
            )
            .values(
                status=ResponseStatus.QUEUED,
                attempts=_r.attempts - 1,
                lease_expires_at=None,
                enqueued_at=None,
            )
        )

    async def cancel(self, project_id: str, response_id: str) -> None:
        await self.db.execute(
            update(responses)
            .where(_r.id == response_id, _r.project_id == project_id, _r.status.in_(IN_FLIGHT))
            .values(status=ResponseStatus.CANCELLED, lease_expires_at=None)
        )

    async def count_in_flight(self, project_id: str) -> int:
        """The project's responses queued or in progress (on its (project, status) index)."""
        found = await self.db.execute(
            select(func.count())
            .select_from(responses)
            .where(_r.project_id == project_id, _r.status.in_(IN_FLIGHT))
        )
        return int(found.scalar_one())

    async def requeue_expired(self, max_attempts: int) -> list[str]:
        """in_progress rows whose worker stopped renewing: queued again while attempts remain."""
        result = await self.db.execute(
            update(responses)
            .where(
                _r.status == ResponseStatus.IN_PROGRESS,
                _r.lease_expires_at < time.time(),
                _r.attempts < max_attempts,
            )
            .values(status=ResponseStatus.QUEUED, lease_expires_at=None, enqueued_at=time.time())
            .returning(_r.id)
        )
        return [row.id for row in result]

    async def fail_expired(self, max_attempts: int) -> list[str]:
        """in_progress rows whose worker was lost on every attempt: failed, for good."""
        result = await self.db.execute(
            update(responses)
            .where(
                _r.status == ResponseStatus.IN_PROGRESS,
                _r.lease_expires_at < time.time(),
                _r.attempts >= max_attempts,
            )
            .values(
                status=ResponseStatus.FAILED,
                lease_expires_at=None,
                error={
                    "code": "worker_lost",
                    "message": f"The worker running this response was lost {max_attempts} times.",
                },
            )
            .returning(_r.id)
        )
        return [row.id for row in result]

    async def list_page(
        self,
        project_id: str,
        page: PageQuery,
        *,
        model: str | None,
        status: ResponseStatus | None,
        metadata: dict[str, str],
    ) -> list[StoredResponse]:
        r = responses.c
        query = select(*VISIBLE).where(r.project_id == project_id, r.deleted_at.is_(None))
        if model is not None:
            query = query.where(r.model == model)
        if status is not None:
            query = query.where(r.status == status)
        query = query.where(*metadata_matches(r.metadata, metadata, dialect_name(self.db)))
        result = await self.db.execute(paged(query, r.id, page))
        return [cast(StoredResponse, dict(row)) for row in result.mappings()]

    async def get_by_idempotency_key(self, project_id: str, key: str) -> dict[str, Any] | None:
        """The response a create with this key made (with its request_hash), if any."""
        rows = await BY_KEY.fetch(self.db, project_id=project_id, key=key)
        return rows[0] if rows else None

    async def get_input(self, project_id: str, response_id: str) -> list[dict[str, Any]] | None:
        rows = await GET_INPUT.fetch(self.db, response_id=response_id, project_id=project_id)
        return rows[0]["input"] if rows else None

    async def chain(
        self, project_id: str, response_id: str, *, head_may_be_deleted: bool = False
    ) -> Chain:
        """Every turn's messages up the previous_response_id chain, oldest turn first.

        ONE query whatever the depth. Tombstoned ancestors still contribute: deleting a turn
        must not cut it out of the context of later turns. The head must be visible, unless
        the caller is a job accepted while it was (`head_may_be_deleted`).
        """
        rows = await CHAIN.fetch(self.db, response_id=response_id, project_id=project_id)
        head = rows[-1] if rows else None  # depth 0 sorts last
        if head is None or (head["deleted_at"] is not None and not head_may_be_deleted):
            return Chain(found=False, messages=[])
        out: list[dict[str, Any]] = []
        for row in rows:
            out += orjson.loads(row["messages"])
        return Chain(found=True, messages=out, status=head["status"])

    async def delete(self, project_id: str, response_id: str) -> bool:
        """Delete a response; False if there was none to delete.

        A response later turns still chain through becomes a tombstone (404 to the API, its
        items kept for the descendants' context). A leaf is removed for real, and so is every
        tombstoned ancestor that no longer has anything hanging from it.
        """
        found = await self.db.execute(
            select(responses.c.previous_response_id).where(
                responses.c.id == response_id,
                responses.c.project_id == project_id,
                responses.c.deleted_at.is_(None),
            )
        )
        row = found.one_or_none()
        if row is None:
            return False
        if not await self._remove_if_leaf(response_id, tombstoned_only=False):
            await self.db.execute(
                update(responses)
                .where(responses.c.id == response_id)
                .values(deleted_at=now_seconds())
            )
            return True
        parent = row.previous_response_id
        while parent is not None:
            parent_row = (
                await self.db.execute(
                    select(responses.c.previous_response_id).where(responses.c.id == parent)
                )
            ).one_or_none()
            if parent_row is None or not await self._remove_if_leaf(parent, tombstoned_only=True):
                break
            parent = parent_row.previous_response_id
        return True

    async def _remove_if_leaf(self, response_id: str, *, tombstoned_only: bool) -> bool:
        children = exists().where(responses.c.previous_response_id == response_id)
        stmt = delete(responses).where(responses.c.id == response_id, ~children)
        if tombstoned_only:
            stmt = stmt.where(responses.c.deleted_at.is_not(None))
        try:
            # A savepoint, so that a child committed in between (the FK says RESTRICT) turns
            # this into a tombstone instead of failing the request.
            async with self.db.begin_nested():
                result = await self.db.execute(stmt)
        except IntegrityError:
            return False
        return bool(getattr(result, "rowcount", 0))

    # Operators' tools and retention (app/ops/): across every project.

    async def purge_expired_leaves(self, cutoff: int, limit: int) -> list[str | None]:
        """Remove up to `limit` responses past retention that nothing chains from (their events
        and item index go with them: ON DELETE CASCADE). Returns the removed rows' parents.

        A turn committed meanwhile on one of them (the FK says RESTRICT) fails the batch; then
        they are removed one by one, and the one that gained a child stays.
        """
        cand = responses.alias("cand")
        ids = (
            select(cand.c.id)
            .where(_expired(cand, cutoff), ~_has_children(cand))
            .order_by(cand.c.created_at)
            .limit(limit)
        )
        try:
            async with self.db.begin_nested():
                result = await self.db.execute(
                    delete(responses).where(_r.id.in_(ids)).returning(_r.previous_response_id)
                )
                return [row.previous_response_id for row in result]
        except IntegrityError:
            pass
        parents: list[str | None] = []
        for (response_id,) in (await self.db.execute(ids)).all():
            parents += await self._remove_childless(_r.id == response_id)
        return parents

    async def purge_childless_tombstones(self, ids: list[str]) -> list[str | None]:
        """Remove those of these responses that are tombstones with nothing hanging from them
        any more (their last child was just removed). Returns the removed rows' parents."""
        parents: list[str | None] = []
        for response_id in ids:
            parents += await self._remove_childless(
                _r.id == response_id, _r.deleted_at.is_not(None)
            )
        return parents

    async def _remove_childless(self, *where: ColumnElement[bool]) -> list[str | None]:
        stmt = (
            delete(responses)
            .where(*where, ~_has_children(responses))
            .returning(_r.previous_response_id)
        )
        try:
            async with self.db.begin_nested():
                return [row.previous_response_id for row in await self.db.execute(stmt)]
        except IntegrityError:  # a child committed in between: it stays
            return []

    async def tombstone_expired(self, cutoff: int, limit: int) -> int:
        """Up to `limit` responses past retention that later turns still chain through become
        tombstones, exactly as a delete makes them: gone for the API, context for the rest."""
        cand = responses.alias("cand")
        ids = (
            select(cand.c.id)
            .where(_expired(cand, cutoff), cand.c.deleted_at.is_(None), _has_children(cand))
            .limit(limit)
        )
        result = await self.db.execute(
            update(responses).where(_r.id.in_(ids)).values(deleted_at=now_seconds())
        )
        return int(getattr(result, "rowcount", 0))

    async def count_expired(self, cutoff: int) -> Expired:
        """What purging at `cutoff` would do, without doing it: every response past retention
        is removed, except the ancestors of a kept turn, which become (or stay) tombstones."""
        p, c, up = responses.alias("p"), responses.alias("c"), responses.alias("up")
        kept_child = exists().where(c.c.previous_response_id == p.c.id, ~_expired(c, cutoff))
        ancestors = (
            select(p.c.id, p.c.previous_response_id, p.c.deleted_at)
            .where(_expired(p, cutoff), kept_child)
            .cte("ancestors", recursive=True)
        )
        ancestors = ancestors.union(
            select(up.c.id, up.c.previous_response_id, up.c.deleted_at).where(
                up.c.id == ancestors.c.previous_response_id, _expired(up, cutoff)
            )
        )
        found = await self.db.execute(
            select(
                func.count(),
                func.count().filter(ancestors.c.deleted_at.is_(None)),
            ).select_from(ancestors)
        )
        kept, tombstone = found.one()
        expired = await self.db.execute(
            select(func.count()).select_from(responses).where(_expired(responses, cutoff))
        )
        return Expired(remove=int(expired.scalar_one()) - int(kept), tombstone=int(tombstone))

    async def count_by_status(self, statuses: list[ResponseStatus]) -> dict[str, int]:
        found = await self.db.execute(
            select(_r.status, func.count())
            .where(_r.status.in_([str(s) for s in statuses]), _r.deleted_at.is_(None))
            .group_by(_r.status)
        )
        counts = {str(s): 0 for s in statuses}
        counts.update({str(status): int(n) for status, n in found.tuples()})
        return counts

    async def oldest_queued(self) -> tuple[str, int] | None:
        """The queued response waiting longest: its id and created_at."""
        found = await self.db.execute(
            select(_r.id, _r.created_at)
            .where(_r.status == ResponseStatus.QUEUED)
            .order_by(_r.created_at, _r.id)
            .limit(1)
        )
        row = found.one_or_none()
        return (row.id, int(row.created_at)) if row else None

    async def jobs(self, status: ResponseStatus, limit: int) -> list[JobRow]:
        """Background responses in `status`, newest first."""
        found = await self.db.execute(
            select(_r.id, _r.project_id, _r.model, _r.status, _r.created_at, _r.attempts, _r.error)
            .where(_r.status == status, _r.background == true(), _r.deleted_at.is_(None))
            .order_by(_r.id.desc())
            .limit(limit)
        )
        return [
            JobRow(
                row.id,
                row.project_id,
                row.model,
                row.status,
                int(row.created_at),
                int(row.attempts),
                (row.error or {}).get("code"),
            )
            for row in found
        ]

    async def requeue(self, response_id: str) -> bool:
        """failed, or in_progress with its lease run out -> queued, the last attempt's ending
        cleared. `attempts` keeps counting: it is also the token every write of a running job
        is matched on, and a worker still holding an old attempt must find its writes refused.
        Background responses only. `enqueued_at` is now: the
        caller hands it to the queue (or the embedded sweeper does, JOB_REQUEUE_AFTER later).
        False if it is not such a response (any more)."""
        stuck = and_(_r.status == ResponseStatus.IN_PROGRESS, _r.lease_expires_at < time.time())
        found = await self.db.execute(
            update(responses)
            .where(
                _r.id == response_id,
                _r.background == true(),
                _r.deleted_at.is_(None),
                (_r.status == ResponseStatus.FAILED) | stuck,
            )
            .values(
                status=ResponseStatus.QUEUED,
                lease_expires_at=None,
                enqueued_at=time.time(),
                output=[],
                usage=None,
                error=None,
                incomplete_details=None,
                completed_at=None,
            )
            .returning(_r.id)
        )
        return found.first() is not None

    async def export_page(
        self,
        project_id: str,
        after: str | None,
        limit: int,
        *,
        since: int | None,
        metadata: dict[str, str],
    ) -> list[dict[str, Any]]:
        """Completed responses of a project in id order after `after`: a page of an export."""
        query = select(
            _r.id,
            _r.model,
            _r.created_at,
            _r.metadata,
            _r.instructions,
            _r.previous_response_id,
            _r.messages,
        ).where(
            _r.project_id == project_id,
            _r.deleted_at.is_(None),
            _r.status == ResponseStatus.COMPLETED,
        )
        if after is not None:
            query = query.where(_r.id > after)
        if since is not None:
            query = query.where(_r.created_at >= since)
        query = query.where(*metadata_matches(_r.metadata, metadata, dialect_name(self.db)))
        found = await self.db.execute(query.order_by(_r.id).limit(limit))
        return [dict(row) for row in found.mappings()]
