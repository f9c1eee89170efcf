"""Helpers of the metrics and health tests: a scrape of /metrics, a private Redis, polling."""

import shutil
import subprocess
import time
from collections.abc import Callable

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import free_port, wait_until

ADMIN_KEY = "tether-admin-test-key"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, key: str | None = ADMIN_KEY) -> Samples:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = httpx.get(f"{url}/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a label set not seen yet (a counter that has not moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


class RedisServer:
    """A redis-server of the test's own on a free port, which the test may kill (never the
    machine's shared one)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, what=f"redis-server on {self.port}")

    def _answers(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_timeout=1) as client:
                return bool(client.ping())
        except redis.ConnectionError:
            if self.process.poll() is not None:
                raise RuntimeError("redis-server exited at start") from None
            return False

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def poll(fetch: Callable[[], httpx.Response], status: int, timeout: float = 20.0) -> httpx.Response:
    """Fetch until the answer has `status`, or the deadline passed (returns the last answer)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = fetch()
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)
