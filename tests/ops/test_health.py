"""/healthz (alive), /readyz (database migrated; in Celery mode Redis and a live worker), worker
heartbeats, and the startup banner. Real parts: PostgreSQL or SQLite, redis-server, Celery."""

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from alembic.script import ScriptDirectory
from redis.asyncio import Redis

from app import migrate
from app.config import Settings
from app.ops import health
from app.ops.workers import WorkerBeat, live_workers, publish
from tests.background.harness import Worker
from tests.conftest import SMALL_POOL, StartServer
from tests.harness import TEST_REDIS_URL, free_port, running_server, wait_until
from tests.ops.harness import RedisServer, poll


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ops')}/ops.db"
    migrate.upgrade(url)
    return url


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.kill()


def celery_settings(database_url: str, redis_url: str) -> Settings:
    """Celery mode on a queue of the test's own: no other run's worker counts."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        celery_queue=f"ops-{uuid.uuid4().hex[:8]}",
        job_lease_seconds=3.0,  # heartbeats every second, live for three
        **SMALL_POOL,
    )


def readyz(url: str) -> httpx.Response:
    return httpx.get(f"{url}/readyz", timeout=10)


class TestHealthz:
    def test_alive_without_asking_the_database(self, start_server: StartServer) -> None:
        nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
        with start_server(database_url=nowhere) as srv:
            alive = httpx.get(f"{srv.url}/healthz")
            ready = readyz(srv.url)
        assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert ready.json()["reasons"][0].startswith("database unreachable")


class TestReadyzDatabase:
    def test_ready_on_a_migrated_database(self, start_server: StartServer) -> None:
        with start_server() as srv:
            answer = readyz(srv.url)
        assert (answer.status_code, answer.json()) == (200, {"status": "ok"})

    def test_503_while_a_migration_is_pending(self, tmp_path: os.PathLike[str]) -> None:
        url = f"sqlite:///{tmp_path}/behind.db"
        (head,) = migrate.heads()
        script = ScriptDirectory.from_config(migrate.alembic_config(url))
        previous = script.get_revision(head).down_revision
        assert isinstance(previous, str)
        migrate.upgrade(url, previous)
        with running_server(Settings(database_url=url)) as srv:
            behind = readyz(srv.url)
            migrate.upgrade(url)
            caught_up = readyz(srv.url)
        assert behind.status_code == 503
        (reason,) = behind.json()["reasons"]
        assert f"at migration {previous}" in reason
        assert f"needs {head}" in reason
        assert "tether migrate" in reason
        assert caught_up.status_code == 200


def beat(queue: str) -> WorkerBeat:
    return WorkerBeat(
        pid=os.getpid(),
        hostname=f"test-{uuid.uuid4().hex[:6]}",
        queue=queue,
        started_at=time.time(),
        in_flight=0,
        held=0,
    )


async def _publish(redis_url: str, heartbeat: WorkerBeat, ttl: float) -> None:
    async with Redis.from_url(redis_url) as redis:
        await publish(redis, heartbeat, ttl)


async def _live(redis_url: str, queue: str) -> list[WorkerBeat]:
    async with Redis.from_url(redis_url) as redis:
        return await live_workers(redis, queue)


class TestReadyzCelery:
    def test_503_when_redis_stops(self, sqlite_url: str, redis_server: RedisServer) -> None:
        settings = celery_settings(sqlite_url, redis_server.url)
        asyncio.run(_publish(redis_server.url, beat(settings.celery_queue), ttl=60))
        with running_server(settings) as srv:
            ready = readyz(srv.url)
            redis_server.kill()
            gone = poll(lambda: readyz(srv.url), 503)
        assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
        assert gone.status_code == 503
        assert gone.json()["reasons"] == ["redis unreachable: ConnectionError"]

    def test_503_without_a_live_worker_200_once_one_beats(self, sqlite_url: str) -> None:
        settings = celery_settings(sqlite_url, TEST_REDIS_URL)
        with running_server(settings) as srv:
            alone = readyz(srv.url)
            worker = Worker(settings, concurrency=2).start()
            try:
                ready = poll(lambda: readyz(srv.url), 200)
                (live,) = asyncio.run(_live(TEST_REDIS_URL, settings.celery_queue))
            finally:
                worker.stop()
            # A worker that stops cleanly deletes its heartbeat; one the harness had to kill
            # (a slow warm shutdown on a loaded machine) is gone when the heartbeat expires.
            after = poll(lambda: readyz(srv.url), 503)
        assert alone.status_code == 503
        assert alone.json()["reasons"] == [
            f"no live worker on queue {settings.celery_queue!r} (no heartbeat in Redis)"
        ]
        assert ready.status_code == 200, ready.text
        assert live["pid"] == worker.process.pid
        assert live["hostname"] == socket.gethostname()
        assert live["in_flight"] == 0
        assert after.status_code == 503

    def test_a_heartbeat_expires(self, redis_server: RedisServer) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        other = beat(f"{queue}-other")
        asyncio.run(_publish(redis_server.url, beat(queue), ttl=0.2))
        asyncio.run(_publish(redis_server.url, other, ttl=60))
        assert len(asyncio.run(_live(redis_server.url, queue))) == 1
        wait_until(lambda: not asyncio.run(_live(redis_server.url, queue)), what="expiry")
        assert asyncio.run(_live(redis_server.url, other["queue"])) == [other]


class TestStartupBanner:
    def test_embedded_mode(self, sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="tether")
        with running_server(Settings(database_url=sqlite_url)):
            pass
        assert "Embedded mode (no REDIS_URL)" in caplog.text

    def test_celery_mode_warns_when_no_worker_beats(
        self, sqlite_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(health, "STARTUP_WORKER_CHECK", 0.05)
        caplog.set_level(logging.INFO, logger="tether")
        settings = celery_settings(sqlite_url, TEST_REDIS_URL)
        with running_server(settings):
            wait_until(lambda: "no live worker" in caplog.text, what="the warning")
        assert f"Celery mode: background jobs go to queue {settings.celery_queue!r}" in caplog.text
