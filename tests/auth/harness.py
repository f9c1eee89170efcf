"""Helpers for the tenancy, key and limit tests: keys made by the service (or the CLI), raw
HTTP with a chosen key and Host, and OpenAI's error shape.

Every test that makes a key runs on a database of its own: the suite's shared servers run in
keyless mode, which a single key in their database would end.
"""

import asyncio
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from app.config import Settings
from app.db import create_engine
from app.keys import service as keys
from app.kit.ids import new_id
from tests.background.harness import settings_env
from tests.conftest import SMALL_POOL
from tests.fakes.upstream import FakeUpstream

# How long the servers here trust a key lookup: revocation and a first key show quickly.
AUTH_TTL = 0.2
# The fixed window of the requests-per-minute limit (app/limits/ratelimit.py).
WINDOW = 60
# The console script installed next to the interpreter running the tests (the venv's).
TETHER = Path(sys.executable).parent / "tether"

T = TypeVar("T")


def own_settings(database_url: str, fake_upstream: FakeUpstream, **changes: Any) -> Settings:
    return Settings(
        database_url=database_url,
        upstream_base_url=f"{fake_upstream.url}/v1",
        auth_cache_seconds=AUTH_TTL,
        db_pool_size=SMALL_POOL["db_pool_size"],
        db_max_overflow=SMALL_POOL["db_max_overflow"],
        **changes,
    )


def make_key(settings: Settings, project: str, label: str | None = None) -> tuple[str, str]:
    """A new key for `project` (made on first use), by the service: (key id, key)."""

    async def run() -> tuple[str, str]:
        engine = create_engine(settings)
        try:
            row, key = await keys.create_key(
                engine,
                project,
                label,
                pepper=settings.api_key_pepper,
                default_project_id=settings.default_project_id,
            )
        finally:
            await engine.dispose()
        return str(row["id"]), key

    return asyncio.run(run())


def set_limits(settings: Settings, project: str, **limits: int | None) -> None:
    async def run() -> None:
        engine = create_engine(settings)
        try:
            await keys.set_limits(engine, project, dict(limits), settings.default_project_id)
        finally:
            await engine.dispose()

    asyncio.run(run())


def revoke(settings: Settings, key_id: str) -> None:
    async def run() -> None:
        engine = create_engine(settings)
        try:
            await keys.revoke_key(engine, key_id)
        finally:
            await engine.dispose()

    asyncio.run(run())


def project_name() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def http(base_url: str, key: str | None = None, **headers: str) -> httpx.Client:
    """Raw HTTP to the API, with this key as a Bearer (or none)."""
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


def assert_error(answer: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    """OpenAI's error shape, exactly: {"error": {"message", "type", "param", "code"}}."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    assert isinstance(error["type"], str), error
    assert error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] == code, error
    return dict(error)


def poll(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float, what: str) -> T:
    """fetch() until done(value) (a poll with a deadline, never a sleep standing in for it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout}s waiting for {what}; last: {value!r}")
        time.sleep(0.02)


def window_now() -> int:
    return int(time.time() // WINDOW)


def room_in_window(seconds: float = 10.0) -> int:
    """Wait (reading the clock, with a deadline) until at least `seconds` are left in the
    current one-minute rate-limit window, so a short burst counts in one window; its number."""
    poll(
        time.time,
        lambda now: WINDOW - now % WINDOW >= seconds,
        timeout=seconds + 5,
        what="a fresh rate-limit window",
    )
    return window_now()


class Cli:
    """`tether` as an operator runs it: a subprocess, in a directory of its own, configured
    only by the environment these settings give."""

    def __init__(self, settings: Settings, cwd: Path) -> None:
        self.env = settings_env(settings)
        self.cwd = cwd

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TETHER), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout


def keys_table(stdout: str) -> list[dict[str, str]]:
    """`tether keys list` as rows keyed by its header."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def replace_ids(text: str, ids: dict[str, str]) -> str:
    """The text with each id replaced by its placeholder (longest first)."""
    for value in sorted(ids, key=len, reverse=True):
        text = text.replace(value, ids[value])
    return text


ID_BODY = re.compile(r"[0-9a-f]{48}$")


def twin(existing: str) -> str:
    """An id of the same shape (prefix, length) that was never stored: a fresh id body."""
    assert ID_BODY.search(existing), existing
    return existing[:-48] + new_id("x")[2:]
