"""Per-project limits: requests per minute (shared through Redis by every API process, or kept
in process in embedded mode) and background responses in flight; and the request body's size,
refused without the server's memory growing."""

import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from app.config import Settings
from tests.auth.harness import (
    assert_error,
    http,
    make_key,
    own_settings,
    poll,
    project_name,
    room_in_window,
    set_limits,
    window_now,
)
from tests.background.harness import settings_env
from tests.fakes.upstream import FakeUpstream
from tests.harness import TEST_REDIS_URL, free_port, migrated_database, running_server
from tests.ops.harness import RedisServer

RESET = re.compile(r"(\d+)s")


def limit_headers(answer: httpx.Response) -> tuple[str | None, str | None, str | None]:
    h = answer.headers
    return (
        h.get("x-ratelimit-limit-requests"),
        h.get("x-ratelimit-remaining-requests"),
        h.get("x-ratelimit-reset-requests"),
    )


def assert_burst(answers: list[httpx.Response], limit: int) -> None:
    """`limit` answers counting down to 0, then a 429 with OpenAI's rate-limit headers."""
    assert [a.status_code for a in answers] == [200] * limit + [429], [a.text for a in answers]
    headers = [limit_headers(a) for a in answers]
    assert [h[0] for h in headers] == [str(limit)] * (limit + 1)
    assert [h[1] for h in headers] == [str(n) for n in range(limit - 1, -1, -1)] + ["0"]
    resets = []
    for _, _, reset in headers:
        assert reset is not None
        matched = RESET.fullmatch(reset)
        assert matched, reset
        resets.append(int(matched[1]))
    assert all(1 <= r <= 60 for r in resets), resets
    assert resets == sorted(resets, reverse=True), resets  # one window, counting down
    refused = answers[-1]
    assert_error(refused, 429, "rate_limit_exceeded")
    assert int(refused.headers["retry-after"]) == resets[-1]


def test_rpm_is_shared_by_two_api_processes(
    own_database_url: str, fake_upstream: FakeUpstream, model: str
) -> None:
    settings = own_settings(
        own_database_url,
        fake_upstream,
        redis_url=TEST_REDIS_URL,
        celery_queue=f"tether-test-{uuid.uuid4().hex[:8]}",  # only synchronous creates here
    )
    limited = project_name()
    _, key = make_key(settings, limited)
    set_limits(settings, limited, rpm=5)
    _, free_key = make_key(settings, project_name())
    with (
        running_server(settings) as one,
        running_server(settings) as two,
        http(one.url, key) as via_one,
        http(two.url, key) as via_two,
    ):
        window = room_in_window()
        answers = [
            (via_one, via_two)[n % 2].post("/v1/responses", json={"model": model, "input": str(n)})
            for n in range(6)
        ]
        assert window_now() == window
        assert_burst(answers, 5)
        assert len(fake_upstream.requests(model)) == 5  # the refused one never reached it

        with openai.OpenAI(base_url=f"{one.url}/v1", api_key=key, max_retries=0) as client:
            with pytest.raises(openai.RateLimitError) as refused:
                client.responses.create(model=model, input="again")
        assert refused.value.code == "rate_limit_exceeded"

        # Another project on the same servers: not limited, not counted, no headers.
        for base in (one.url, two.url):
            with http(base, free_key) as free:
                answer = free.get("/v1/responses")
                assert answer.status_code == 200
                assert limit_headers(answer) == (None, None, None)


def test_rpm_in_embedded_mode_with_defaults(
    own_database_url: str, fake_upstream: FakeUpstream
) -> None:
    settings = own_settings(own_database_url, fake_upstream, default_project_rpm=2)
    by_default, own, unlimited = project_name(), project_name(), project_name()
    keys = {name: make_key(settings, name)[1] for name in (by_default, own, unlimited)}
    set_limits(settings, own, rpm=3)
    set_limits(settings, unlimited, rpm=0)  # 0: no limit, whatever the default
    with running_server(settings) as srv:
        window = room_in_window()
        for name, limit in ((by_default, 2), (own, 3)):
            with http(srv.url, keys[name]) as api:
                assert_burst([api.get("/v1/responses") for _ in range(limit + 1)], limit)
        with http(srv.url, keys[unlimited]) as api:
            answers = [api.get("/v1/responses") for _ in range(5)]
        assert window_now() == window
        assert [a.status_code for a in answers] == [200] * 5
        assert {limit_headers(a) for a in answers} == {(None, None, None)}


def test_default_rpm_applies_to_keyless_requests(
    own_database_url: str, fake_upstream: FakeUpstream
) -> None:
    settings = own_settings(own_database_url, fake_upstream, default_project_rpm=2)
    with running_server(settings) as srv, http(srv.url) as api:
        window = room_in_window()
        answers = [api.get("/v1/responses") for _ in range(3)]
        assert window_now() == window
    assert_burst(answers, 2)


def test_background_responses_in_flight_are_limited(
    own_database_url: str, fake_upstream: FakeUpstream, model: str
) -> None:
    settings = own_settings(own_database_url, fake_upstream)
    limited, other = project_name(), project_name()
    _, key = make_key(settings, limited)
    _, other_key = make_key(settings, other)
    set_limits(settings, limited, max_background=1)
    set_limits(settings, other, max_background=1)
    slow = f"{model}-slow"
    fake_upstream.script(slow, delay=120.0)

    def background(api: httpx.Client, which: str, **extra: object) -> httpx.Response:
        return api.post(
            "/v1/responses", json={"model": which, "input": "bg", "background": True, **extra}
        )

    def finished(api: httpx.Client, response_id: str) -> str:
        status: str = poll(
            lambda: api.get(f"/v1/responses/{response_id}").json()["status"],
            lambda status: status not in ("queued", "in_progress"),
            timeout=20,
            what=f"{response_id} to finish",
        )
        return status

    with running_server(settings) as srv, http(srv.url, key) as api:
        first = background(api, slow)
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "queued"

        for extra in ({}, {"stream": True}):
            assert_error(background(api, model, **extra), 429, "rate_limit_exceeded")
        synchronous = api.post("/v1/responses", json={"model": model, "input": "sync"})
        assert synchronous.status_code == 200  # only background responses are counted
        stored = api.get("/v1/responses", params={"model": model}).json()["data"]
        assert [r["id"] for r in stored] == [synchronous.json()["id"]]  # refused: not stored
        assert len(fake_upstream.requests(model)) == 1

        with http(srv.url, other_key) as other_api:  # the limit is per project
            theirs = background(other_api, model)
            assert theirs.status_code == 200
            assert finished(other_api, theirs.json()["id"]) == "completed"

        # The first one ends (cancelled): a new one is accepted; once that one has completed,
        # another.
        assert api.post(f"/v1/responses/{first.json()['id']}/cancel").json()["status"] == (
            "cancelled"
        )
        for _ in range(2):
            accepted = background(api, model)
            assert accepted.status_code == 200, accepted.text
            assert finished(api, accepted.json()["id"]) == "completed"


# -- the request body's size ------------------------------------------------------------------

LIMIT = 1024 * 1024
BIG = 50 * 1024 * 1024
SENDS = 5
MAX_GROWTH_KB = 30 * 1024


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak so far) of a process, in kB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


@pytest.fixture
def tether_process(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Tether as it is deployed: `uvicorn app.main:app` in a process of its own (so its memory
    is its own), on a fresh SQLite database, MAX_REQUEST_BYTES=1 MiB, the built-in echo model.
    """
    with migrated_database("sqlite", str(tmp_path)) as url:
        env = settings_env(Settings(database_url=url, max_request_bytes=LIMIT))
        port = free_port()
        log = (tmp_path / "tether.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app",
                *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            ],
            cwd=tmp_path,  # no stray .env
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:

            def healthy() -> bool:
                assert process.poll() is None, (tmp_path / "tether.log").read_text()
                try:
                    return httpx.get(f"{base_url}/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            poll(healthy, bool, timeout=30, what="tether to serve")
            yield base_url, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()


def chunks(total: int, size: int = 1024 * 1024) -> Iterator[bytes]:
    """A body sent chunked (no Content-Length)."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


def near_limit_body() -> bytes:
    """Valid JSON just under the limit: a create the server must still serve."""
    head, tail = b'{"model": "echo", "store": false, "input": "', b'"}'
    return head + b"x" * (LIMIT - 1000 - len(head) - len(tail)) + tail


def test_oversized_bodies_are_413_and_memory_stays_flat(
    tether_process: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base_url, process = tether_process
    json_headers = {"content-type": "application/json"}
    with httpx.Client(base_url=base_url, timeout=60) as api:
        # Warm up with the largest bodies that are allowed, both ways of sending them.
        for _ in range(3):
            served = api.post("/v1/responses", content=near_limit_body(), headers=json_headers)
            assert served.status_code == 200, served.text
            body = near_limit_body()
            served = api.post(
                "/v1/responses",
                content=iter([body[: len(body) // 2], body[len(body) // 2 :]]),
                headers=json_headers,
            )
            assert served.status_code == 200, served.text
        before = memory_kb(process.pid)

        # A Content-Length over the limit is answered before any of the body is sent.
        port = int(base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(
                b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {BIG}\r\nConnection: close\r\n\r\n".encode()
            )
            head = b""
            while b"\r\n\r\n" not in head:
                got = raw.recv(65536)
                assert got, head
                head += got
        assert head.startswith(b"HTTP/1.1 413 "), head

        payload = b" " * BIG
        for _ in range(SENDS):
            answer = api.post("/v1/responses", content=payload, headers=json_headers)
            assert_error(answer, 413, "request_too_large")
        del payload
        for path in ("/v1/responses", "/v1/chat/completions", "/v1/conversations"):
            for _ in range(SENDS):
                answer = api.post(path, content=chunks(BIG), headers=json_headers)
                assert "content-length" not in answer.request.headers
                assert_error(answer, 413, "request_too_large")
        after = memory_kb(process.pid)

    rss_growth = after["VmRSS"] - before["VmRSS"]
    peak_growth = after["VmHWM"] - before["VmHWM"]
    measured = (
        f"Tether RSS {before['VmRSS']} kB -> {after['VmRSS']} kB (+{rss_growth} kB), peak "
        f"{before['VmHWM']} kB -> {after['VmHWM']} kB (+{peak_growth} kB), after "
        f"{SENDS} x {BIG // 2**20} MB with Content-Length and {3 * SENDS} x {BIG // 2**20} MB "
        "chunked"
    )
    print(measured)  # noqa: T201 - the issue asks for the measurement
    assert rss_growth < MAX_GROWTH_KB, measured
    assert peak_growth < MAX_GROWTH_KB, measured


def test_rpm_with_its_redis_away_admits_and_says_why(
    own_database_url: str,
    fake_upstream: FakeUpstream,
    model: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The counter is shared through Redis. With Redis away, a request is served uncounted
    (a limit is a guard against abuse, not a reason to stop serving) and the log says so."""
    broker = RedisServer()
    try:
        settings = own_settings(
            own_database_url,
            fake_upstream,
            redis_url=broker.url,
            celery_queue=f"tether-test-{uuid.uuid4().hex[:8]}",  # only synchronous creates here
        )
        limited = project_name()
        _, key = make_key(settings, limited)
        set_limits(settings, limited, rpm=5)
        with running_server(settings) as server, http(server.url, key) as client:
            assert (
                client.post("/v1/responses", json={"model": model, "input": "a"}).status_code == 200
            )
            broker.kill()
            answer = client.post("/v1/responses", json={"model": model, "input": "b"})
            assert answer.status_code == 200, answer.text
            assert limit_headers(answer) == (None, None, None)  # nothing counted, none claimed
        assert any(
            "rate limit" in r.getMessage() and "uncounted" in r.getMessage() for r in caplog.records
        )
    finally:
        broker.kill()
