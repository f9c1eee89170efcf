"""`make test-clients`: Tether driven by the Node `openai` SDK, the Vercel AI SDK and Codex CLI.

Checks for node >= 20, installs the pinned packages (`npm ci`) when node_modules is missing or
older than package-lock.json, starts the fake upstream and Tether (embedded mode, a throwaway
SQLite file) on free ports, runs `node --test` on the *.test.mjs files here with TETHER_URL and
FAKE_UPSTREAM_URL set, stops both servers, and exits with node's exit code.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from app import migrate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
NODE_MAJOR = 20
STARTUP_SECONDS = 30.0
TESTS_SECONDS = 300.0


def fail(message: str) -> NoReturn:
    raise SystemExit(f"make test-clients: {message}")  # printed to stderr, exit status 1


def check_node() -> None:
    node = shutil.which("node")
    if node is None:
        fail(f"needs Node.js >= {NODE_MAJOR} (`node` is not on PATH)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < NODE_MAJOR:
        fail(f"needs Node.js >= {NODE_MAJOR}, found {version or 'an unknown version'} at {node}")
    if shutil.which("npm") is None:
        fail("needs npm (it comes with Node.js) to install the client packages")


def install_packages() -> None:
    """`npm ci` unless node_modules was installed from the current package-lock.json."""
    installed = HERE / "node_modules" / ".package-lock.json"  # written by every npm install
    lock = HERE / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started with start_new_session=True, and everything it started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def server(
    name: str, args: list[str], health_url: str, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[None]:
    """Run a server process (its output on ours) while the block runs, which starts once
    `health_url` answers. Its own process group, so stopping it stops all it started."""
    process = subprocess.Popen(args, cwd=cwd, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not answers(health_url):
            if process.poll() is not None or time.monotonic() > deadline:
                fail(f"{name} did not start: {' '.join(args)}")
            time.sleep(0.05)
        yield
    finally:
        stop(process)


def run_node_tests(tether_url: str, fake_url: str) -> int:
    tests = sorted(str(p) for p in HERE.glob("*.test.mjs"))
    env = {**os.environ, "TETHER_URL": tether_url, "FAKE_UPSTREAM_URL": fake_url}
    command = ["node", "--test", "--test-reporter=spec", *tests]
    # Its own process group too: `node --test` runs each file in a child process.
    process = subprocess.Popen(command, cwd=HERE, env=env, start_new_session=True)
    try:
        return process.wait(timeout=TESTS_SECONDS)
    except subprocess.TimeoutExpired:
        fail(f"the client tests did not finish within {TESTS_SECONDS:.0f}s")
    finally:
        stop(process)


def main() -> int:
    check_node()
    install_packages()
    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so the servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    python = sys.executable
    fake_port, tether_port = free_port(), free_port()
    fake_url, tether_url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{tether_port}"
    fake = [python, "-m", "tests.fakes.upstream", "--port", str(fake_port)]
    tether = [python, "-m", "uvicorn", "app.main:app", "--port", str(tether_port)]
    tether += ["--log-level", "warning"]
    with tempfile.TemporaryDirectory(prefix="tether-clients-") as tmp:
        database_url = f"sqlite:///{tmp}/tether.db"
        migrate.upgrade(database_url)
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # embedded mode
        env |= {"DATABASE_URL": database_url, "UPSTREAM_BASE_URL": f"{fake_url}/v1"}
        with (
            server("the fake upstream", fake, f"{fake_url}/v1/models", cwd=ROOT),
            # Tether runs in tmp, away from the repository's .env if there is one.
            server("Tether", tether, f"{tether_url}/healthz", cwd=Path(tmp), env=env),
        ):
            return run_node_tests(tether_url, fake_url)


if __name__ == "__main__":
    sys.exit(main())
