"""The engine the app makes (app/db.py), as PostgreSQL sees its sessions."""

import asyncio
from pathlib import Path

from sqlalchemy import text

from app.config import Settings
from app.db import create_engine
from tests.harness import fresh_database


def test_postgres_sessions_run_without_jit(tmp_path: Path) -> None:
    """JIT compiling cost tens of ms on plans whose estimates pass jit_above_cost (bench/README.md
    §9): off for every connection, and still off after a transaction was rolled back."""

    async def settings_seen(url: str) -> list[str]:
        engine = create_engine(Settings(database_url=url, db_pool_size=1, db_max_overflow=0))
        try:
            seen = []
            for _ in range(2):  # the second checkout gets the same connection back
                async with engine.connect() as conn:
                    seen.append(str((await conn.execute(text("SHOW jit"))).scalar_one()))
                    await conn.rollback()
            return seen
        finally:
            await engine.dispose()

    with fresh_database("postgres", str(tmp_path)) as url:
        assert asyncio.run(settings_seen(url)) == ["off", "off"]
