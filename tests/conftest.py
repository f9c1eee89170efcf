"""Fixtures: real PostgreSQL and SQLite, a real server, the official SDK, the fake model.

Every server test runs once per backend. Tests isolate themselves by data, not by transaction:
each gets its own model name, under which the fake upstream records what it received.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import openai
import pytest

from app.config import Settings
from tests.fakes.upstream import FakeUpstream
from tests.harness import (
    TEST_DATABASE_URL,
    TEST_REDIS_URL,
    ServerThread,
    migrated_database,
    reachable,
    running_server,
)

# Short, so the slow-upstream test finishes quickly; no other fake answer comes near it.
UPSTREAM_TIMEOUT = 2.0
# The suite runs many servers and workers against one PostgreSQL (max_connections 100).
SMALL_POOL = {"db_pool_size": 4, "db_max_overflow": 4}


def pytest_sessionstart(session: pytest.Session) -> None:
    # Never skip: a suite that cannot reach its services stops, naming what is missing.
    missing = []
    if not reachable(TEST_DATABASE_URL, 5432):
        missing.append(f"PostgreSQL at {TEST_DATABASE_URL} (TEST_DATABASE_URL)")
    if not reachable(TEST_REDIS_URL, 6379):
        missing.append(f"Redis at {TEST_REDIS_URL} (TEST_REDIS_URL)")
    if missing:
        pytest.exit(
            "not reachable: " + "; ".join(missing) + ". Run `make test`, which starts "
            "them with docker compose when it can.",
            returncode=3,
        )


# The dashboard's browser tests drive Debian's chromium package (never a downloaded browser).
CHROMIUM = "/usr/bin/chromium"


def pytest_collection_finish(session: pytest.Session) -> None:
    # Checked once the tests are known, so that a run without the dashboard's tests does not
    # need a browser; a run with them stops before the first test, naming what is missing.
    browser_tests = Path(__file__).parent / "dashboard"
    wants_browser = any(item.path.is_relative_to(browser_tests) for item in session.items)
    if wants_browser and not os.access(CHROMIUM, os.X_OK):
        pytest.exit(
            f"not installed: {CHROMIUM}, which the dashboard tests (tests/dashboard) drive. "
            "Install Debian's package (`apt-get install chromium`); `make test` does when it "
            "runs as root.",
            returncode=3,
        )


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session", params=["postgres", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_database(backend, str(tmp_path_factory.mktemp(backend))) as url:
        yield url


@pytest.fixture(scope="module")
def private_database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of the module's own, for tests that write rows a real create never makes
    (bare queued ones): on the suite's shared database, a server's sweeper takes such rows and
    runs them as jobs (a KeyError in its log, and a race with the test's own claims)."""
    with migrated_database(backend, str(tmp_path_factory.mktemp(f"private-{backend}"))) as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, fake_upstream: FakeUpstream) -> Settings:
    return Settings(
        database_url=database_url,
        upstream_base_url=f"{fake_upstream.url}/v1",
        upstream_api_key="sk-upstream-test",
        upstream_timeout=UPSTREAM_TIMEOUT,
        **SMALL_POOL,
    )


@pytest.fixture(scope="session")
def server(settings: Settings) -> Iterator[ServerThread]:
    with running_server(settings) as srv:
        yield srv


StartServer = Callable[..., AbstractContextManager[ServerThread]]


@pytest.fixture
def start_server(settings: Settings) -> StartServer:
    """Another server on the same database with some settings changed."""

    def start(**changes: Any) -> AbstractContextManager[ServerThread]:
        return running_server(settings.model_copy(update=changes))

    return start


def sdk(base_url: str) -> openai.OpenAI:
    # No retries: a test must see the first answer, not a retried one.
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test", max_retries=0)


@pytest.fixture
def client(server: ServerThread) -> Iterator[openai.OpenAI]:
    with sdk(server.url) as c:
        yield c


@pytest.fixture
def model() -> str:
    """A model name of this test's own: the fake's scripts and records are kept per model."""
    return f"m-{uuid.uuid4().hex[:12]}"
