"""Engine, sessions and the declarative base.

Users write `postgresql://…` (or `postgres://…`) or `sqlite:///…`; we pick the async drivers.
SQLite is tuned for concurrent use (WAL, a busy timeout, foreign keys) because the embedded mode
must stay correct under load, not just work for one request at a time.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from sqlalchemy import JSON, MetaData, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from app.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (containment queries, GIN indexes), plain JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def async_url(database_url: str) -> URL:
    """Map the URL a user writes to the async driver we ship."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):  # postgres://: Heroku's and libpq's spelling
        return url.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"DATABASE_URL must be postgresql:// or sqlite://, got {backend}://")


def create_engine(settings: Settings) -> AsyncEngine:
    url = async_url(settings.database_url)
    # orjson for JSON columns: the stdlib codec was a visible share of a retrieve.
    json_codec: dict[str, Any] = {
        "json_serializer": lambda obj: orjson.dumps(obj).decode(),
        "json_deserializer": orjson.loads,
    }
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30}, **json_codec)
        _tune_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,  # asyncpg reports a dead connection on use; pre-ping costs a trip
        **json_codec,
    )
    _tune_postgres(engine)
    return engine


def _tune_postgres(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # No JIT: it compiles a plan whose estimated cost passes jit_above_cost, which on
        # tables of millions of rows our short statements' estimates do (a list page's never-run
        # fallback counts), and the compiling took 70-80 ms of a 10 ms query (bench/README.md
        # §9). A SET, not a startup parameter, which PgBouncer would refuse; on the driver's
        # own connection, outside the transaction SQLAlchemy begins, whose rollback undoes it.
        dbapi_conn.run_async(lambda conn: conn.execute("SET jit = off"))


def _tune_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_engine(request: Request) -> AsyncEngine:
    """For reads and for create, which open short connections of their own.

    A read needs no Session: measured on retrieve, the session dependency (a generator with a
    shielded exit, plus the ORM session) halved throughput and put 100 ms stalls into p99.
    """
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the answer is sent (scope="function")."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
