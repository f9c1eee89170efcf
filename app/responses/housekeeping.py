"""The SQL of looking after stored responses, apart from serving them: retention (remove what
is past RETENTION_DAYS, tombstone what later turns still chain through), the operators' views
(`tether status`, `jobs list`) and the export's pages. Status changes are not here:
app/responses/repository.py is their one writer (requeue included).
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError

from app.kit.driver import Db, dialect_name
from app.kit.ids import now_seconds
from app.kit.listing import export_page_query
from app.responses.domain import IN_FLIGHT, ResponseStatus
from app.responses.repository import responses

_r = responses.c


def _expired(table: Any, cutoff: int) -> ColumnElement[bool]:
    """Past retention: created before `cutoff`, and over (a job still running is kept)."""
    return and_(table.c.created_at < cutoff, table.c.status.not_in(sorted(IN_FLIGHT)))


def _of(project_id: str | None) -> ColumnElement[bool]:
    """Of one project, or (None) of every project: the operators' tools see them all."""
    return true() if project_id is None else _r.project_id == project_id


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
    error_message: str | None = None


class HousekeepingRepository:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def expired_page(
        self, cutoff: int, below: tuple[int, str] | None, limit: int
    ) -> list[tuple[int, str]]:
        """Up to `limit` responses past the cutoff, newest first, from the keyset position
        `below` (created_at, id) down: (created_at, id) of each.

        Newest first, so that a thread's later turns come before its earlier ones: by the
        time a turn is reached, every turn that chains from it was dealt with. A keyset, not a
        rescan from the cutoff: what earlier batches removed is behind it, never read again.
        """
        query = select(_r.created_at, _r.id).where(_r.created_at < cutoff)
        if below is not None:
            created, last = below
            query = query.where(
                _r.created_at <= created, or_(_r.created_at < created, _r.id < last)
            )
        found = await self.db.execute(
            query.order_by(_r.created_at.desc(), _r.id.desc()).limit(limit)
        )
        return [(int(row.created_at), str(row.id)) for row in found]

    async def purge_expired(self, ids: list[str]) -> tuple[int, int, list[str | None]]:
        """Apply the retention rule to these responses, all past the cutoff and newer ones
        already dealt with: remove those that nothing chains from (their events and item index
        go with them: ON DELETE CASCADE), tombstone those a kept turn still chains through,
        keep those still running. Returns (removed, tombstoned, parents of the removed).

        A turn committed meanwhile on one of them (the FK says RESTRICT) fails the removal;
        then they are removed one by one, and the one that gained a child stays.
        """
        removed: list[str] = []
        parents: list[str | None] = []
        pending = set(ids)
        while pending:
            # Within the batch, a removed turn may leave its parent childless: again, until
            # a round removes nothing (one or two rounds: threads are seldom long in a batch).
            batch = sorted(pending)
            over = _r.status.not_in(sorted(IN_FLIGHT))
            rows = await self._remove_childless(_r.id.in_(batch), over)
            if rows is None:
                rows = []
                for response_id in batch:
                    rows += await self._remove_childless(_r.id == response_id, over) or []
            if not rows:
                break
            removed += [row.id for row in rows]
            parents += [row.previous_response_id for row in rows]
            pending -= {row.id for row in rows}
            if not pending & {row.previous_response_id for row in rows}:
                break
        tombstoned = 0
        if pending:
            found = await self.db.execute(
                update(responses)
                .where(
                    _r.id.in_(sorted(pending)),
                    _r.deleted_at.is_(None),
                    _r.status.not_in(sorted(IN_FLIGHT)),
                    _has_children(responses),
                )
                .values(deleted_at=now_seconds())
            )
            tombstoned = int(getattr(found, "rowcount", 0))
        in_batch = set(ids)  # their parents in the batch were dealt with here
        return len(removed), tombstoned, [p for p in parents if p not in in_batch]

    async def purge_childless_tombstones(self, ids: list[str]) -> list[str | None]:
        """Remove those of these responses that are tombstones with nothing hanging from them
        any more (their last child was just removed). Returns the removed rows' parents."""
        tombstone = _r.deleted_at.is_not(None)
        rows = await self._remove_childless(_r.id.in_(ids), tombstone)
        if rows is None:  # one of them gained a child meanwhile: one by one, it stays
            rows = []
            for response_id in ids:
                rows += await self._remove_childless(_r.id == response_id, tombstone) or []
        return [row.previous_response_id for row in rows]

    async def _remove_childless(self, *where: ColumnElement[bool]) -> list[Any] | None:
        """Remove the rows matching `where` that nothing chains from: their (id, parent); None
        if a child was committed on one of them in between (the FK refused the delete)."""
        stmt = (
            delete(responses)
            .where(*where, ~_has_children(responses))
            .returning(_r.id, _r.previous_response_id)
        )
        try:
            async with self.db.begin_nested():
                return list((await self.db.execute(stmt)).all())
        except IntegrityError:
            return None

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

    async def count_by_status(
        self, statuses: list[ResponseStatus], project_id: str | None = None
    ) -> dict[str, int]:
        """Responses in each of these statuses: of every project, or of one (the dashboard)."""
        found = await self.db.execute(
            select(_r.status, func.count())
            .where(
                _r.status.in_([str(s) for s in statuses]),
                _r.deleted_at.is_(None),
                _of(project_id),
            )
            .group_by(_r.status)
        )
        counts = {str(s): 0 for s in statuses}
        counts.update({str(status): int(n) for status, n in found})
        return counts

    async def oldest_queued(self, project_id: str | None = None) -> tuple[str, int] | None:
        """The queued response waiting longest (of a project, if given): id and created_at."""
        found = await self.db.execute(
            select(_r.id, _r.created_at)
            .where(_r.status == ResponseStatus.QUEUED, _of(project_id))
            .order_by(_r.created_at, _r.id)
            .limit(1)
        )
        row = found.one_or_none()
        return (row.id, int(row.created_at)) if row else None

    async def jobs(
        self, status: ResponseStatus, limit: int, project_id: str | None = None
    ) -> list[JobRow]:
        """Background responses in `status` (of a project, if given), newest first."""
        found = await self.db.execute(
            select(_r.id, _r.project_id, _r.model, _r.status, _r.created_at, _r.attempts, _r.error)
            .where(
                _r.status == status,
                _r.background == true(),
                _r.deleted_at.is_(None),
                _of(project_id),
            )
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
                (row.error or {}).get("message"),
            )
            for row in found
        ]

    async def export_page(
        self,
        project_id: str,
        after: str | None,
        limit: int,
        *,
        since: int | None,
        metadata: dict[str, str],
        until: int | None = None,
        model: str | None = None,
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
        if model is not None:
            query = query.where(_r.model == model)
        page = export_page_query(
            query,
            (_r.id, _r.created_at, _r.metadata),
            dialect_name(self.db),
            after=after,
            since=since,
            metadata=metadata,
            limit=limit,
            until=until,
        )
        found = await self.db.execute(page)
        return [dict(row) for row in found.mappings()]
