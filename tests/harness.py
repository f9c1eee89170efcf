"""Real servers for the tests: Tether under uvicorn on a real port, and fresh databases.

The API runs in a thread of the test process so that tests can look at its engine (to count
queries), but it is reached only over HTTP, by the official SDK.
"""

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import openai
import uvicorn
from fastapi import FastAPI
from openai.types.responses import Response
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app import migrate
from app.config import Settings
from app.db import async_url
from app.main import create_app

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what or predicate}")
        time.sleep(0.02)


class ServerThread:
    """uvicorn serving create_app(settings) in a daemon thread with its own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.app: FastAPI = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            loop="asyncio",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def start(self) -> "ServerThread":
        self.thread.start()
        wait_until(lambda: self.server.started, what="uvicorn to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def running_server(settings: Settings) -> Iterator[ServerThread]:
    server = ServerThread(settings).start()
    try:
        yield server
    finally:
        server.stop()


def _admin(sql: str) -> None:
    """CREATE/DROP DATABASE, on the test server, outside any transaction."""

    async def run() -> None:
        engine = create_async_engine(async_url(TEST_DATABASE_URL), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(run())


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    name = f"tether_test_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(backend: str, tmp_dir: str) -> Iterator[str]:
    """An empty database of either kind."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir}/tether-{uuid.uuid4().hex[:8]}.db"
    else:
        with fresh_postgres() as url:
            yield url


@contextmanager
def migrated_database(backend: str, tmp_dir: str) -> Iterator[str]:
    with fresh_database(backend, tmp_dir) as url:
        migrate.upgrade(url)
        yield url


def query(database_url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    """Look into the database directly, for facts the API rightly hides (tombstones)."""

    async def run() -> list[tuple[object, ...]]:
        engine = create_async_engine(async_url(database_url))
        try:
            async with engine.connect() as conn:
                return [tuple(row) for row in (await conn.execute(text(sql), params)).all()]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def execute(database_url: str, sql: str, **params: object) -> None:
    """Change the database behind the API's back (to simulate an expired log, say)."""

    async def run() -> None:
        engine = create_async_engine(async_url(database_url))
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql), params)
        finally:
            await engine.dispose()

    asyncio.run(run())


TERMINAL = ("completed", "failed", "incomplete", "cancelled")


def poll_status(
    client: openai.OpenAI,
    response_id: str,
    until: tuple[str, ...] = TERMINAL,
    timeout: float = 20.0,
) -> Response:
    """Retrieve until the status is one of `until` (a poll with a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.responses.retrieve(response_id)
        if response.status in until:
            return response
        if time.monotonic() > deadline:
            raise TimeoutError(f"{response_id} still {response.status} after {timeout}s")
        time.sleep(0.02)


def streamed_background(client: openai.OpenAI, **params: object) -> Response:
    """A background response created with stream=true, as a client that means to follow it
    creates one (only such a one is logged as it runs, as on OpenAI). The stream is left after
    its first event; the job goes on. Returns the response as that event showed it."""
    with client.responses.create(background=True, stream=True, **params) as stream:  # type: ignore[call-overload]
        for event in stream:
            return event.response  # type: ignore[no-any-return]
    raise AssertionError("the stream ended before its first event")
