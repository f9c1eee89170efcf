"""All SQL of projects and API keys."""

from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.kit.ids import now_seconds
from app.models import ApiKeyRow, ProjectRow

projects = cast(Table, ProjectRow.__table__)
api_keys = cast(Table, ApiKeyRow.__table__)


class KeysRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def project_by_name(self, name: str) -> dict[str, Any] | None:
        found = await self.conn.execute(select(projects).where(projects.c.name == name))
        row = found.mappings().one_or_none()
        return dict(row) if row else None

    async def project(self, project_id: str) -> dict[str, Any] | None:
        found = await self.conn.execute(select(projects).where(projects.c.id == project_id))
        row = found.mappings().one_or_none()
        return dict(row) if row else None

    async def projects(self) -> list[dict[str, Any]]:
        """Every project, by name (the dashboard's selector)."""
        found = await self.conn.execute(
            select(projects.c.id, projects.c.name).order_by(projects.c.name)
        )
        return [dict(row) for row in found.mappings()]

    async def create_project(self, project_id: str, name: str) -> dict[str, Any]:
        row = {"id": project_id, "name": name, "created_at": now_seconds()}
        await self.conn.execute(insert(projects).values(row))
        return {**row, "rpm": None, "max_background": None}

    async def set_limits(self, project_id: str, limits: dict[str, int | None]) -> None:
        await self.conn.execute(
            update(projects).where(projects.c.id == project_id).values(**limits)
        )

    async def create_key(self, row: dict[str, Any]) -> None:
        await self.conn.execute(insert(api_keys).values(row))

    async def keys(self) -> list[dict[str, Any]]:
        k, p = api_keys.c, projects.c
        found = await self.conn.execute(
            select(k.id, k.name, k.prefix, k.created_at, k.last_used_at, k.revoked_at, p.name)
            .join(projects, p.id == k.project_id)
            .order_by(k.created_at, k.id)
        )
        return [dict(row) | {"project": row.name_1} for row in found.mappings()]

    async def revoke(self, key_id: str) -> bool:
        k = api_keys.c
        found = await self.conn.execute(
            update(api_keys)
            .where(k.id == key_id, k.revoked_at.is_(None))
            .values(revoked_at=now_seconds())
            .returning(k.id)
        )
        return found.first() is not None

    async def by_hash(self, key_hash: str) -> dict[str, Any] | None:
        """A key that is not revoked, with its project's limits."""
        k, p = api_keys.c, projects.c
        found = await self.conn.execute(
            select(k.id, k.project_id, k.last_used_at, p.rpm, p.max_background)
            .join(projects, p.id == k.project_id)
            .where(k.hash == key_hash, k.revoked_at.is_(None))
        )
        row = found.mappings().one_or_none()
        return dict(row) if row else None

    async def touch(self, key_id: str) -> None:
        await self.conn.execute(
            update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now_seconds())
        )

    async def any_key(self) -> bool:
        """Whether any key was ever made (a revoked one counts: keys are in use here)."""
        found = await self.conn.execute(select(func.count()).select_from(api_keys).limit(1))
        return bool(found.scalar_one())
