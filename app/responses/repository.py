"""All SQL for responses. Every query is scoped by project_id.

This is the one writer of `responses.status`: every change of state (create, claim, finish,
release, cancel, the sweeper's re-runs and failures) is a method here, each a compare-and-set on
the status it expects, so whoever loses a race finds no row and steps aside. A background
response's terminal status writes the webhook events it owes in the same transaction
(app/webhooks/outbox.py).
"""

import time
from dataclasses import dataclass
from typing import Any, cast

import orjson
from sqlalchemy import (
    Select,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from app.items.repository import index_from, index_items, item_ids
from app.kit.driver import Db, DriverStatement, dialect_name, violated
from app.kit.ids import now_seconds
from app.kit.listing import PageQuery, filtered_page
from app.models import ResponseRow
from app.responses.domain import (
    FINAL_COLUMNS,
    IN_FLIGHT,
    FinalValues,
    ResponseRecord,
    ResponseStatus,
    StoredResponse,
)
from app.webhooks import outbox

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
ROW_DEFAULTS["started_at"] = None
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

# What a claim writes (one job, or several at once): queued -> in_progress, one more attempt.
_CLAIMED = {
    "status": ResponseStatus.IN_PROGRESS,
    "attempts": _r.attempts + 1,
    "lease_expires_at": bindparam("lease"),
    "started_at": bindparam("started"),
}
# A background job's claim and end run once per job on a worker's hot path: on the driver.
CLAIM = DriverStatement(
    update(responses)
    .where(_r.id == bindparam("response_id"), _r.status == ResponseStatus.QUEUED)
    .values(_CLAIMED)
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


def list_query(
    project_id: str,
    page: PageQuery,
    *,
    model: str | None,
    status: ResponseStatus | None,
    metadata: dict[str, str],
    dialect: str,
    since: int | None = None,
    until: int | None = None,
) -> Select[Any]:
    """A page of GET /v1/responses (bench/scale_bench.py EXPLAINs this very query)."""
    r = responses.c
    # The walk goes along (project_id, status, id) or (project_id, model, id); the rest is
    # tested on the rows.
    where: list[ColumnElement[bool]] = [r.deleted_at.is_(None)]
    if since is not None:
        where.append(r.created_at >= since)
    if until is not None:
        where.append(r.created_at < until)
    along = None
    if status is not None:
        along = r.status == status
    if model is not None:
        if along is None:
            along = r.model == model
        else:
            where.append(r.model == model)
    return filtered_page(responses, VISIBLE, project_id, along, where, metadata, page, dialect)


def _owned_turn() -> Any:
    """A synchronous turn still running: its request owns it (attempt 0, never claimed)."""
    return and_(_r.status == ResponseStatus.IN_PROGRESS, _r.background == false(), _r.attempts == 0)


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
        if found and row["background"]:
            await outbox.record(self.db, row["project_id"], row["id"], values["status"])
        return bool(found)

    async def claim(self, response_id: str, lease_seconds: float) -> ResponseRecord | None:
        """queued -> in_progress, or None if it is not queued (running elsewhere, cancelled,
        finished: a redelivered or duplicate task lands here and does nothing)."""
        now = time.time()
        rows = await CLAIM.fetch(
            self.db, response_id=response_id, lease=now + lease_seconds, started=now
        )
        return cast(ResponseRecord, rows[0]) if rows else None

    async def claim_many(self, ids: list[str], lease_seconds: float) -> list[ResponseRecord]:
        """`claim` for several jobs in one statement: the rows of those that were queued."""
        now = time.time()
        result = await self.db.execute(
            update(responses)
            .where(_r.id.in_(ids), _r.status == ResponseStatus.QUEUED)
            .values(_CLAIMED)
            .returning(*responses.c),
            {"lease": now + lease_seconds, "started": now},
        )
        return [cast(ResponseRecord, dict(row._mapping)) for row in result]

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
                started_at=None,
            )
        )

    async def cancel(self, project_id: str, response_id: str) -> None:
        found = await self.db.execute(
            update(responses)
            .where(_r.id == response_id, _r.project_id == project_id, _r.status.in_(IN_FLIGHT))
            .values(status=ResponseStatus.CANCELLED, lease_expires_at=None)
            .returning(_r.background)
        )
        row = found.first()
        if row is not None and row.background:
            await outbox.record(self.db, project_id, response_id, ResponseStatus.CANCELLED)

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
                _r.background == true(),
                _r.lease_expires_at < time.time(),
                _r.attempts < max_attempts,
            )
            .values(
                status=ResponseStatus.QUEUED,
                lease_expires_at=None,
                enqueued_at=time.time(),
                started_at=None,
            )
            .returning(_r.id)
        )
        return [row.id for row in result]

    async def fail_expired(self, max_attempts: int) -> list[str]:
        """in_progress rows whose worker was lost on every attempt: failed, for good."""
        result = await self.db.execute(
            update(responses)
            .where(
                _r.status == ResponseStatus.IN_PROGRESS,
                _r.background == true(),
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
            .returning(_r.id, _r.project_id)
        )
        failed = result.all()
        for row in failed:  # only background jobs have leases
            await outbox.record(self.db, row.project_id, row.id, ResponseStatus.FAILED)
        return [row.id for row in failed]

    # A synchronous turn stored before it ends belongs to its request (attempt 0) while that
    # request's process renews its lease (app/responses/leases.py).

    async def renew_turn_leases(self, response_ids: list[str], until: float) -> None:
        if response_ids:
            await self.db.execute(
                update(responses)
                .where(_r.id.in_(response_ids), _owned_turn())
                .values(lease_expires_at=until)
            )

    async def checkpoint_turn(
        self, response_id: str, output: list[dict[str, Any]], until: float
    ) -> None:
        """The output so far, kept with the lease: what an orphan is failed with."""
        await self.db.execute(
            update(responses)
            .where(_r.id == response_id, _owned_turn())
            .values(lease_expires_at=until, output=output)
        )

    async def fail_orphaned_turns(self, longest: float) -> list[str]:
        """in_progress synchronous turns whose request's process stopped renewing their lease
        (it was killed): failed, with the output of their last checkpoint. A row with no lease
        at all (stored before leases existed) is an orphan once it is older than the `longest`
        a turn may run."""
        now = time.time()
        orphaned = (_r.lease_expires_at < now) | (
            _r.lease_expires_at.is_(None) & (_r.created_at < now - longest)
        )
        result = await self.db.execute(
            update(responses)
            .where(_owned_turn(), orphaned)
            .values(
                status=ResponseStatus.FAILED,
                lease_expires_at=None,
                error={
                    "code": "server_lost",
                    "message": "The server process answering this response stopped before it "
                    "ended (killed or crashed); its output is what had been generated by then.",
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
        since: int | None = None,
        until: int | None = None,
    ) -> list[StoredResponse]:
        """A page of the project's responses; `since` and `until` (the dashboard's date range)
        bound created_at, inclusive and exclusive."""
        query = list_query(
            project_id,
            page,
            model=model,
            status=status,
            metadata=metadata,
            dialect=dialect_name(self.db),
            since=since,
            until=until,
        )
        result = await self.db.execute(query)
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
            # A tombstone of a job still queued or running is cancelled too: its worker stops
            # (it asks which of its jobs are still its own), and nothing runs it again.
            in_flight = _r.status.in_(IN_FLIGHT)
            await self.db.execute(
                update(responses)
                .where(responses.c.id == response_id)
                .values(
                    deleted_at=now_seconds(),
                    status=case((in_flight, literal(ResponseStatus.CANCELLED)), else_=_r.status),
                    lease_expires_at=None,
                )
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

    async def requeue(self, response_id: str, project_id: str | None = None) -> bool:
        """failed, or in_progress with its lease run out -> queued, the last attempt's ending
        cleared. `attempts` keeps counting: it is also the token every write of a running job
        is matched on, and a worker still holding an old attempt must find its writes refused.
        Background responses only (of `project_id`, if given: the dashboard's). `enqueued_at`
        is now: the caller hands it to the queue (or the embedded sweeper does,
        JOB_REQUEUE_AFTER later). False if it is not such a response (any more)."""
        stuck = and_(_r.status == ResponseStatus.IN_PROGRESS, _r.lease_expires_at < time.time())
        owner = true() if project_id is None else _r.project_id == project_id
        found = await self.db.execute(
            update(responses)
            .where(
                _r.id == response_id,
                owner,
                _r.background == true(),
                _r.deleted_at.is_(None),
                (_r.status == ResponseStatus.FAILED) | stuck,
            )
            .values(
                status=ResponseStatus.QUEUED,
                lease_expires_at=None,
                enqueued_at=time.time(),
                started_at=None,
                output=[],
                usage=None,
                error=None,
                incomplete_details=None,
                completed_at=None,
            )
            .returning(_r.id)
        )
        return found.first() is not None
