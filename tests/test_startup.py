"""Starting Tether: a configuration that cannot work is one line on stderr and exit status 2
(never a traceback, never a password); `.env` and WEB_CONCURRENCY are honoured by `tether serve`."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import TEST_DATABASE_URL, free_port, fresh_postgres, wait_until

ROOT = Path(__file__).resolve().parents[1]
TETHER = str(Path(sys.executable).with_name("tether"))


def clean_env(**settings: str) -> dict[str, str]:
    """Only these settings: nothing of the test run's own environment leaks in."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {**keep, **settings}


def run(args: list[str], cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=clean_env(**settings), capture_output=True, text=True, timeout=60
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


class TestConfigurationErrors:
    @pytest.mark.parametrize("command", [["serve"], ["migrate"], ["keys", "list"]])
    def test_a_bad_log_level_names_the_variable_and_the_allowed_values(
        self, tmp_path: Path, command: list[str]
    ) -> None:
        line = one_line_error(run([TETHER, *command], tmp_path, LOG_LEVEL="loud"))
        assert line == (
            "tether: invalid configuration: LOG_LEVEL='loud': Input should be 'critical', "
            "'error', 'warning', 'info' or 'debug'"
        )

    def test_an_unknown_database_scheme(self, tmp_path: Path) -> None:
        line = one_line_error(
            run([TETHER, "migrate"], tmp_path, DATABASE_URL="mysql://u:s3cret@db/x")
        )
        assert line == (
            "tether: invalid configuration: DATABASE_URL: must be postgresql://… or "
            "sqlite://…, not mysql://"
        )

    def test_an_unreachable_database_without_its_password(self, tmp_path: Path) -> None:
        url = f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/x"
        line = one_line_error(run([TETHER, "serve"], tmp_path, DATABASE_URL=url))
        assert line.startswith("tether: cannot use the database at postgresql://postgres:***@")
        assert "s3cret" not in line

    def test_a_database_that_does_not_exist(self, tmp_path: Path) -> None:
        url = TEST_DATABASE_URL.rsplit("/", 1)[0] + "/no_such_database_here"
        line = one_line_error(run([TETHER, "migrate"], tmp_path, DATABASE_URL=url))
        assert line.endswith('database "no_such_database_here" does not exist')

    def test_postgres_scheme_is_accepted(self, tmp_path: Path) -> None:
        # A database of its own: the server's `test` database is shared with other runs,
        # whose checkouts may be at other migrations.
        with fresh_postgres() as url:
            url = url.replace("postgresql://", "postgres://", 1)
            result = run([TETHER, "migrate"], tmp_path, DATABASE_URL=url)
        assert result.returncode == 0, result.stderr

    def test_an_upstream_without_v1_asks_whether_it_was_meant(
        self, tmp_path: Path, fake_upstream: FakeUpstream
    ) -> None:
        line = one_line_error(
            run(
                [TETHER, "serve", "--port", str(free_port())],
                tmp_path,
                DATABASE_URL=f"sqlite:///{tmp_path}/t.db",
                UPSTREAM_BASE_URL=fake_upstream.url,
            )
        )
        assert line == (
            f"tether: UPSTREAM_BASE_URL: GET {fake_upstream.url}/models answered 404; "
            f"did you mean {fake_upstream.url}/v1?"
        )

    def test_uvicorn_and_the_worker_refuse_a_bad_setting_the_same_way(self, tmp_path: Path) -> None:
        uvicorn = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(free_port())]
        worker = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker"]
        for args, program in ((uvicorn, "tether"), (worker, "tether worker")):
            line = one_line_error(run(args, ROOT, LOG_LEVEL="loud", PYTHONPATH=str(ROOT)))
            assert line.startswith(f"{program}: invalid configuration: LOG_LEVEL='loud'")


@contextmanager
def serving(args: list[str], cwd: Path, **settings: str) -> Iterator[subprocess.Popen[str]]:
    log = (cwd / "serve.log").open("w")
    process = subprocess.Popen(
        [TETHER, "serve", *args],
        cwd=cwd,
        env=clean_env(**settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class TestServe:
    def test_host_and_port_come_from_dotenv(self, tmp_path: Path) -> None:
        port = free_port()
        (tmp_path / ".env").write_text(
            f"DATABASE_URL=sqlite:///{tmp_path}/t.db\nHOST=127.0.0.1\nPORT={port}\n"
        )
        with serving([], tmp_path) as process:
            wait_until(
                lambda: answers(f"http://127.0.0.1:{port}/v1/models") or process.poll() is not None,
                timeout=60,
                what="tether serve",
            )
            assert process.poll() is None
        assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal

    @pytest.mark.parametrize(
        ("args", "settings"), [(["--workers", "2"], {}), ([], {"WEB_CONCURRENCY": "2"})]
    )
    def test_workers_serve_from_several_processes(
        self, tmp_path: Path, args: list[str], settings: dict[str, str]
    ) -> None:
        port = free_port()
        db = f"sqlite:///{tmp_path}/t.db"
        with (
            serving([*args, "--port", str(port)], tmp_path, DATABASE_URL=db, **settings) as process,
            httpx.Client(base_url=f"http://127.0.0.1:{port}") as client,
        ):
            # Two serving processes import the app side by side with the suite's others.
            wait_until(lambda: answers(f"http://127.0.0.1:{port}/v1/models"), timeout=60)
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
            # uvicorn's supervisor: two serving processes (and multiprocessing's tracker).
            assert len(children.split()) >= 2
            ids = [
                client.post("/v1/responses", json={"model": "echo", "input": f"hi {n}"}).json()[
                    "id"
                ]
                for n in range(10)
            ]
            for response_id in ids:
                answer = client.get(f"/v1/responses/{response_id}").json()
                assert answer["status"] == "completed"
        assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
