"""A synchronous turn stored before it ends belongs to its request; when the request's process
dies (kill -9), nothing else could end it, so it carries a lease and the job sweeper fails it
once the lease runs out, with the output of its last checkpoint (app/responses/leases.py).
Before leases such a row stayed `in_progress` forever (issue 14, point 1)."""

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from app.config import Settings
from tests.background.harness import settings_env
from tests.conftest import SMALL_POOL, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import (
    execute,
    free_port,
    migrated_database,
    poll_status,
    query,
    running_server,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
# Short, so an orphan is found in seconds.
LEASES = {"job_lease_seconds": 1.5, "job_sweep_interval": 0.3}


@pytest.fixture
def orphan_settings(
    backend: str, fake_upstream: FakeUpstream, tmp_path: Path
) -> Iterator[Settings]:
    with migrated_database(backend, str(tmp_path)) as url:
        yield Settings(
            database_url=url,
            upstream_base_url=f"{fake_upstream.url}/v1",
            upstream_timeout=60.0,
            **LEASES,
            **SMALL_POOL,
        )


@contextmanager
def api_process(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The API in a process of its own, so that it can be killed outright."""
    port = free_port()
    log = (tmp_path / "api.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
        cwd=ROOT,
        env={**settings_env(settings), "LOG_LEVEL": "info"},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None  # exited: the wait below says so

    try:
        wait_until(up, timeout=30, what="the API process")
        assert process.poll() is None, (tmp_path / "api.log").read_text()
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


def stored(database_url: str, response_id: str) -> tuple[Any, ...]:
    rows = query(
        database_url, "SELECT status, output FROM responses WHERE id = :id", id=response_id
    )
    assert rows, response_id
    return rows[0]


class TestKilledMidAnswer:
    def test_a_stored_stream_is_failed_with_its_output_so_far(
        self, orphan_settings: Settings, fake_upstream: FakeUpstream, model: str, tmp_path: Path
    ) -> None:
        reply = " ".join(f"word{n}" for n in range(200))
        fake_upstream.script(model, reply=reply, chunks=200, chunk_delay=0.05)
        url = orphan_settings.database_url
        with api_process(orphan_settings, tmp_path) as (api, process), sdk(api) as client:
            stream = client.responses.create(model=model, input="go", stream=True, store=True)
            response_id = ""
            for event in stream:
                if event.type == "response.created":
                    response_id = event.response.id
                if event.type == "response.output_text.delta":
                    break
            # The lease's renewal checkpoints the output: wait for one, then kill the process.
            wait_until(lambda: stored(url, response_id)[1] not in ([], "[]"), timeout=10)
            process.send_signal(signal.SIGKILL)
            process.wait()
        status, _ = stored(url, response_id)
        assert status == "in_progress"  # nobody is left to end it
        # Any process that runs jobs sweeps: here, a server on the same database.
        with running_server(orphan_settings) as server, sdk(server.url) as client:
            ended = poll_status(client, response_id, timeout=20)
        assert ended.status == "failed"
        assert ended.error is not None
        assert ended.error.code == "server_lost"
        assert ended.output_text
        assert reply.startswith(ended.output_text)

    def test_a_create_with_an_idempotency_key_is_failed(
        self, orphan_settings: Settings, fake_upstream: FakeUpstream, model: str, tmp_path: Path
    ) -> None:
        """Stored first so that a retry finds it, it is in_progress while the model answers."""
        fake_upstream.script(model, delay=60)
        url = orphan_settings.database_url
        with api_process(orphan_settings, tmp_path) as (api, process):
            client = openai.OpenAI(base_url=f"{api}/v1", api_key="sk-test", max_retries=0)
            # Kill the process once the model has the request, while it waits.
            killer = _kill_when(lambda: bool(fake_upstream.requests(model)), process)
            with client, pytest.raises(openai.APIConnectionError):
                client.with_options(timeout=60).responses.create(
                    model=model, input="go", extra_headers={"Idempotency-Key": f"k-{model}"}
                )
            killer.join()
        rows = query(
            url, "SELECT id, status FROM responses WHERE idempotency_key = :k", k=f"k-{model}"
        )
        assert [status for _, status in rows] == ["in_progress"]
        with running_server(orphan_settings) as server, sdk(server.url) as client:
            ended = poll_status(client, str(rows[0][0]), timeout=20)
        assert ended.status == "failed"
        assert ended.error is not None
        assert ended.error.code == "server_lost"

    def test_a_row_stored_before_leases_is_failed_once_too_old(
        self, orphan_settings: Settings, fake_upstream: FakeUpstream, model: str
    ) -> None:
        """An in_progress synchronous row with no lease at all (written by a version without
        leases) is an orphan once older than the longest a turn may run."""
        fake_upstream.script(model, reply="done")
        url = orphan_settings.database_url
        with running_server(orphan_settings) as server, sdk(server.url) as client:
            made = client.responses.create(model=model, input="go", store=True)
            old = int(time.time() - orphan_settings.job_time_limit_seconds - 60)
            execute(
                url,
                "UPDATE responses SET status = 'in_progress', lease_expires_at = NULL, "
                "created_at = :old WHERE id = :id",
                old=old,
                id=made.id,
            )
            ended = poll_status(client, made.id, timeout=20)
        assert ended.status == "failed"
        assert ended.error is not None
        assert ended.error.code == "server_lost"


def _kill_when(ready: Callable[[], bool], process: subprocess.Popen[str]) -> threading.Thread:
    """SIGKILL `process` from another thread once `ready()`, while the test's call waits."""

    def run() -> None:
        wait_until(ready, timeout=20, what="the model to have the request")
        process.send_signal(signal.SIGKILL)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
