"""All SQL for webhook endpoints and their deliveries. Endpoint queries are scoped by project;
the delivery queries serve the dispatchers (every project) and the operators' views."""

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select, update

from app.kit.driver import Db
from app.kit.listing import PageQuery, paged
from app.webhooks.outbox import DELIVERED, FAILED, PENDING, deliveries, endpoints

_e, _d = endpoints.c, deliveries.c


def signing_keys(row: Mapping[str, Any], now: float) -> list[str]:
    """The secrets an endpoint's deliveries are signed with now: its own, and the one a
    rotation kept, until that one's window closes."""
    keys = [row["secret"]]
    expires = row["previous_secret_expires_at"]
    if row["previous_secret"] is not None and expires is not None and expires > now:
        keys.append(row["previous_secret"])
    return keys


class EndpointsRepository:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def create(self, row: dict[str, Any]) -> None:
        await self.db.execute(endpoints.insert().values(row))

    async def get(self, project_id: str, endpoint_id: str) -> dict[str, Any] | None:
        found = await self.db.execute(
            select(endpoints).where(_e.id == endpoint_id, _e.project_id == project_id)
        )
        row = found.mappings().first()
        return dict(row) if row is not None else None

    async def get_any(self, endpoint_id: str) -> dict[str, Any] | None:
        """An endpoint whatever its project (operators' tools)."""
        found = await self.db.execute(select(endpoints).where(_e.id == endpoint_id))
        row = found.mappings().first()
        return dict(row) if row is not None else None

    async def list_page(self, project_id: str, page: PageQuery) -> list[dict[str, Any]]:
        query = select(endpoints).where(_e.project_id == project_id)
        found = await self.db.execute(paged(query, _e.id, page))
        return [dict(row) for row in found.mappings()]

    async def update(self, project_id: str, endpoint_id: str, values: dict[str, Any]) -> bool:
        found = await self.db.execute(
            update(endpoints)
            .where(_e.id == endpoint_id, _e.project_id == project_id)
            .values(values)
            .returning(_e.id)
        )
        return found.first() is not None

    async def delete(self, project_id: str, endpoint_id: str) -> bool:
        """Gone with its deliveries (the foreign key cascades)."""
        found = await self.db.execute(
            delete(endpoints)
            .where(_e.id == endpoint_id, _e.project_id == project_id)
            .returning(_e.id)
        )
        return found.first() is not None

    async def signing_secrets(self, ids: list[str], now: float) -> dict[str, dict[str, Any]]:
        """For each endpoint still there: its URL, whether it is disabled, and the secrets a
        delivery is signed with now (the old one too, within its rotation window)."""
        found = await self.db.execute(select(endpoints).where(_e.id.in_(ids)))
        return {
            row["id"]: {
                "url": row["url"],
                "disabled": row["disabled_at"] is not None,
                "secrets": signing_keys(dict(row), now),
            }
            for row in found.mappings()
        }

    async def disable(self, endpoint_id: str, reason: str) -> None:
        """The receiver said 410 Gone: no more deliveries, and those still owed fail."""
        now = time.time()
        await self.db.execute(
            update(endpoints)
            .where(_e.id == endpoint_id, _e.disabled_at.is_(None))
            .values(disabled_at=int(now), disabled_reason=reason)
        )
        await self.db.execute(
            update(deliveries)
            .where(_d.endpoint_id == endpoint_id, _d.state == PENDING)
            .values(state=FAILED, next_attempt_at=None, last_error=f"endpoint disabled: {reason}")
        )


class DeliveriesRepository:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def claim_due(self, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
        """Take up to `limit` deliveries that are due, for one attempt each: their due time
        moves to the end of the attempt's lease, so that another dispatcher takes them only if
        this one dies mid-attempt. The attempt is counted now, for the same reason.

        SKIP LOCKED on PostgreSQL, so that dispatchers in many processes share the work
        without waiting on each other; SQLite has one writer anyway (and ignores it).
        """
        now = time.time()
        due = (
            select(_d.id)
            .where(_d.state == PENDING, _d.next_attempt_at <= now)
            .order_by(_d.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        found = await self.db.execute(
            update(deliveries)
            .where(_d.id.in_(due.scalar_subquery()), _d.state == PENDING)
            .values(next_attempt_at=now + lease_seconds, attempts=_d.attempts + 1)
            .returning(_d.id, _d.endpoint_id, _d.payload, _d.attempts, _d.created_at, _d.type)
        )
        return [dict(row) for row in found.mappings()]

    async def any_due(self) -> bool:
        """A read, before claim_due's write: most looks find nothing, and on SQLite a write
        transaction every second from every process would queue behind the API's writes."""
        found = await self.db.execute(
            select(_d.id).where(_d.state == PENDING, _d.next_attempt_at <= time.time()).limit(1)
        )
        return found.first() is not None

    async def settle(self, delivery_id: str, attempt: int, values: dict[str, Any]) -> bool:
        """Write how an attempt went, if the delivery is still this attempt's (a dispatcher
        that outlived its lease finds it re-claimed and writes nothing)."""
        found = await self.db.execute(
            update(deliveries)
            .where(_d.id == delivery_id, _d.attempts == attempt, _d.state == PENDING)
            .values(values)
            .returning(_d.id)
        )
        return found.first() is not None

    async def list_for_endpoint(self, endpoint_id: str, limit: int) -> list[dict[str, Any]]:
        """The endpoint's most recent deliveries, newest first."""
        found = await self.db.execute(
            select(deliveries)
            .where(_d.endpoint_id == endpoint_id)
            .order_by(_d.id.desc())
            .limit(limit)
        )
        return [dict(row) for row in found.mappings()]

    async def count_pending(self) -> int:
        """On the (state, next_attempt_at) index: delivered rows pile up until retention."""
        found = await self.db.execute(
            select(func.count()).select_from(deliveries).where(_d.state == PENDING)
        )
        return int(found.scalar_one())

    async def purge_settled(self, before: float, batch: int) -> int:
        """Delivered and failed deliveries older than `before` (retention), a batch at a time."""
        old = (
            select(_d.id)
            .where(_d.state.in_((DELIVERED, FAILED)), _d.created_at < before)
            .limit(batch)
        )
        found = await self.db.execute(
            delete(deliveries).where(_d.id.in_(old.scalar_subquery())).returning(_d.id)
        )
        return len(found.all())
