"""Hot statements run on the driver's own connection, under SQLAlchemy's pool and transaction.

SQLAlchemy's execution layer costs more than an indexed lookup itself: measured here, a retrieve
ran at ~1,000 req/s through it and ~2,700 req/s with the same SQL on asyncpg directly. So the
few statements on the hot paths are Core statements compiled once per dialect and executed on
the driver connection the SQLAlchemy connection holds; everything else stays plain SQLAlchemy.

The fast path is sealed: it must be indistinguishable from the slow one.
- Values go through the columns' own types both ways (a SQLite boolean comes back `True`, not
  `1`; JSON is encoded and decoded by the engine's codec), with the processors SQLAlchemy
  itself would use, resolved once per statement and dialect.
- A statement joins the caller's transaction: SQLAlchemy's asyncpg adapter only sends BEGIN
  with its first statement, so a statement sent straight to asyncpg would run (and commit) on
  its own. Inside a transaction we make the adapter begin first.
- Driver exceptions leave as SQLAlchemy's (`IntegrityError`, `DBAPIError`, ...), exactly as the
  slow path raises them; `violated()` tells which kind of constraint an IntegrityError broke.
"""

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import asyncpg
from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import ClauseElement

Db = AsyncSession | AsyncConnection
Processor = Callable[[Any], Any]


def dialect_name(db: Db) -> str:
    if isinstance(db, AsyncConnection):
        return str(db.dialect.name)
    bind = db.bind
    assert bind is not None
    return str(bind.dialect.name)


Constraint = Literal["unique", "foreign_key", "other"]
# PostgreSQL's SQLSTATEs and SQLite's extended result codes for the constraints we rely on.
_PG_STATES: dict[str, Constraint] = {"23505": "unique", "23503": "foreign_key"}
_SQLITE_NAMES: dict[str, Constraint] = {
    "SQLITE_CONSTRAINT_UNIQUE": "unique",
    "SQLITE_CONSTRAINT_PRIMARYKEY": "unique",
    "SQLITE_CONSTRAINT_FOREIGNKEY": "foreign_key",
}


def violated(exc: IntegrityError) -> Constraint:
    """Which kind of constraint an IntegrityError (from either path, either database) broke."""
    orig: Any = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state is not None:
        return _PG_STATES.get(str(state), "other")
    if isinstance(orig, sqlite3.Error):
        return _SQLITE_NAMES.get(getattr(orig, "sqlite_errorname", ""), "other")
    return "other"


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    order: list[str]
    defaults: dict[str, Any]
    binds: list[tuple[int, Processor]]  # (position, processor) for parameters that have one
    results: list[tuple[str, Processor]]  # (column, processor) for columns that have one


def _result_processor(type_: Any, dialect: Dialect) -> Processor | None:
    impl = type_.dialect_impl(dialect)
    try:
        processor: Processor | None = impl.result_processor(dialect, None)
    except (TypeError, InvalidRequestError):
        # asyncpg's numeric types pick a processor by the wire type (which we do not know
        # before running): a double precision column, as our Float columns are, needs none.
        return None
    return processor


def _result_columns(stmt: ClauseElement) -> list[Any]:
    if isinstance(stmt, Select):
        return list(stmt.selected_columns)
    if isinstance(stmt, UpdateBase):
        return list(stmt.exported_columns)
    return []


class DriverStatement:
    """A Core statement compiled once per dialect, run with named parameters on the driver."""

    def __init__(self, stmt: ClauseElement) -> None:
        self.stmt = stmt
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = cast(SQLCompiler, self.stmt.compile(dialect=dialect))
            order = list(compiled.positiontup or [])
            binds: list[tuple[int, Processor]] = []
            for n, name in enumerate(order):
                impl = compiled.binds[name].type.dialect_impl(dialect)
                if (bind := impl.bind_processor(dialect)) is not None:
                    binds.append((n, bind))
            results: list[tuple[str, Processor]] = []
            for column in _result_columns(self.stmt):
                if (result := _result_processor(column.type, dialect)) is not None:
                    results.append((column.name, result))
            found = _Compiled(compiled.string, order, dict(compiled.params), binds, results)
            self._compiled[dialect.name] = found
        return found

    async def _prepare(
        self, db: Db, params: dict[str, Any]
    ) -> tuple[AsyncConnection, _Compiled, Any, list[Any]]:
        conn = db if isinstance(db, AsyncConnection) else await db.connection()
        compiled = self._compile(conn.dialect)
        # Literals in the statement (a CTE's depth 0, say) are parameters with defaults.
        args = [
            params[name] if name in params else compiled.defaults[name] for name in compiled.order
        ]
        for n, bind in compiled.binds:
            args[n] = bind(args[n])
        sync = conn.sync_connection
        if sync is not None and sync.dispatch.before_cursor_execute:
            # Statement logging, metrics and the tests' query counts still see the statement.
            sync.dispatch.before_cursor_execute(sync, None, compiled.sql, args, None, False)
        raw = await conn.get_raw_connection()
        if conn.in_transaction() and conn.dialect.name == "postgresql":
            await _begin(raw.dbapi_connection)
        return conn, compiled, raw, args

    async def fetch(self, db: Db, **params: Any) -> list[dict[str, Any]]:
        conn, compiled, raw, args = await self._prepare(db, params)
        driver = raw.driver_connection
        try:
            if conn.dialect.name == "postgresql":
                rows = [dict(record) for record in await driver.fetch(compiled.sql, *args)]
            else:
                async with driver.execute(compiled.sql, args) as cursor:
                    names = [column[0] for column in cursor.description]
                    rows = [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
        except Exception as exc:
            raise _translate(conn, raw, compiled.sql, args, exc) from exc
        for name, result in compiled.results:
            for row in rows:
                row[name] = result(row[name])
        return rows

    async def execute(self, db: Db, **params: Any) -> None:
        conn, compiled, raw, args = await self._prepare(db, params)
        driver = raw.driver_connection
        try:
            if conn.dialect.name == "postgresql":
                await driver.execute(compiled.sql, *args)
            else:
                await driver.execute(compiled.sql, args)
        except Exception as exc:
            raise _translate(conn, raw, compiled.sql, args, exc) from exc


async def _begin(adapter: Any) -> None:
    """Make SQLAlchemy's asyncpg adapter send its BEGIN now, as its own cursor would before a
    first statement (sqlalchemy/dialects/postgresql/asyncpg.py, _prepare_and_execute); its
    commit or rollback then ends what we ran too. SQLite needs nothing: the driver itself
    begins before the first write, on the one connection both paths use."""
    if adapter._transaction is None and not adapter.autocommit:
        async with adapter._execute_mutex:
            if adapter._transaction is None:
                await adapter._start_transaction()


def _translate(
    conn: AsyncConnection, raw: Any, sql: str, args: list[Any], exc: Exception
) -> Exception:
    """A driver exception as SQLAlchemy raises it on the slow path."""
    dbapi = conn.dialect.loaded_dbapi
    orig: Exception = exc
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        try:
            raw.dbapi_connection._handle_exception(exc)  # raises the DBAPI-level translation
        except dbapi.Error as translated:
            orig = translated
    if not isinstance(orig, dbapi.Error | sqlite3.Error):
        return exc  # not a database error (a bug of ours, a cancellation): as it is
    return DBAPIError.instance(sql, args, orig, dbapi.Error, dialect=conn.dialect)
