"""Real Celery workers for the tests: `celery -A workers.celery_app worker` subprocesses."""

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis import Redis

from app.config import Settings
from tests.harness import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a process read these settings (pydantic-settings' names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "UPSTREAM_"))}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[name.upper()] = str(value)
    return env


class Worker:
    """One worker process (threads pool). start() returns once it consumes from its queue."""

    def __init__(self, settings: Settings, concurrency: int = 50) -> None:
        self.settings = settings
        self.log = tempfile.NamedTemporaryFile(prefix="tether-worker-", suffix=".log", delete=False)
        env = settings_env(settings)
        env["WORKER_CONCURRENCY"] = str(concurrency)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery_app",
                "worker",
                "--loglevel=info",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"test-{os.getpid()}-{id(self)}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def start(self, timeout: float = 30.0) -> "Worker":
        deadline = time.monotonic() + timeout
        while " ready." not in self.output():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited at start:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not ready in {timeout}s:\n{self.output()[-3000:]}")
            time.sleep(0.05)
        return self

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (docker stop), then its exit status once it has exited; a worker still
        running after `timeout` fails the test with what it logged (a hung shutdown says
        where it hung)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the worker did not exit {timeout:g}s after SIGTERM:\n{self.output()[-5000:]}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no release of its jobs; as if the machine died."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def queued_tasks(queue: str) -> list[tuple[str, list[Any]]]:
    """(task name, args) of the messages waiting in a queue, oldest first: kombu's Redis
    transport pushes each message's JSON on the left, its body the task's (args, kwargs,
    embed), base64-encoded."""
    redis = Redis.from_url(TEST_REDIS_URL)
    try:
        raw = redis.lrange(queue, 0, -1)
    finally:
        redis.close()
    tasks = []
    for message in (json.loads(m) for m in reversed(raw)):
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, _kwargs, _embed = json.loads(body)
        tasks.append((message["headers"]["task"], args))
    return tasks
