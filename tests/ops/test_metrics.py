"""GET /metrics: who may scrape it, and that real traffic moves the series it should."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.ops import metrics
from tests.conftest import StartServer, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import (
    ServerThread,
    poll_status,
    running_server,
    streamed_background,
    wait_until,
)
from tests.ops.harness import ADMIN_KEY, scrape, value

RESPONSE = "/v1/responses/{response_id}"


@pytest.fixture(scope="module")
def admin_server(settings: Settings) -> Iterator[ServerThread]:
    with running_server(settings.model_copy(update={"admin_api_key": ADMIN_KEY})) as srv:
        yield srv


@pytest.fixture
def admin_client(admin_server: ServerThread) -> Iterator[openai.OpenAI]:
    with sdk(admin_server.url) as client:
        yield client


class TestAccess:
    def test_401_without_the_admin_key_200_with_it(self, admin_server: ServerThread) -> None:
        url = f"{admin_server.url}/metrics"
        for headers in ({}, {"Authorization": "Bearer sk-not-the-admin-key"}):
            answer = httpx.get(url, headers=headers)
            assert answer.status_code == 401
            assert answer.json()["error"]["code"] == "invalid_api_key"
        answer = httpx.get(url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")

    def test_public_when_metrics_public(self, start_server: StartServer) -> None:
        with start_server(metrics_public=True) as srv:
            assert httpx.get(f"{srv.url}/metrics").status_code == 200

    def test_401_naming_the_settings_when_no_admin_key_is_set(
        self, start_server: StartServer
    ) -> None:
        with start_server() as srv:
            answer = httpx.get(f"{srv.url}/metrics")
        assert answer.status_code == 401
        message = answer.json()["error"]["message"]
        assert "ADMIN_API_KEY" in message
        assert "METRICS_PUBLIC" in message


class TestTraffic:
    def test_requests_upstream_calls_and_jobs_are_counted(
        self,
        monkeypatch: pytest.MonkeyPatch,
        admin_server: ServerThread,
        admin_client: openai.OpenAI,
        model: str,
        fake_upstream: FakeUpstream,
    ) -> None:
        # The suite's many models would otherwise have used up this process's model labels.
        monkeypatch.setattr(metrics, "_models", set())
        before = scrape(admin_server.url)
        created = admin_client.responses.create(model=model, input="hi")
        admin_client.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            admin_client.responses.retrieve("resp_" + "0" * 32)
        # The background job's first upstream call fails (5xx) and is retried.
        fake_upstream.script(model, status=500, fail_times=1)
        job = admin_client.responses.create(model=model, input="later", background=True)
        assert poll_status(admin_client, job.id).status == "completed"
        after = scrape(admin_server.url)

        def moved(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        requests = "tether_http_request_duration_seconds_count"
        assert moved(requests, route="/v1/responses", method="POST", status="200") >= 2
        assert moved(requests, route=RESPONSE, method="GET", status="200") >= 1
        assert moved(requests, route=RESPONSE, method="GET", status="404") == 1
        routes = {dict(labels).get("route") for (_, labels) in after}
        assert not any(route and "resp_" in route for route in routes)  # templates only

        # The model's own label: a sync call, then the job's failed call and its retry.
        assert moved("tether_upstream_request_duration_seconds_count", model=model) == 3
        assert moved("tether_upstream_failures_total", model=model, kind="server") == 1
        assert moved("tether_job_upstream_retries_total") >= 1
        assert moved("tether_job_duration_seconds_count", outcome="completed") >= 1

        # Read at scrape time: jobs by status, and this process's pool.
        assert ("tether_jobs", frozenset({("status", "queued")})) in after
        assert value(after, "tether_jobs", status="in_progress") >= 0
        assert value(after, "tether_db_pool_checked_out") >= 0
        assert value(after, "tether_db_pool_size") >= 1

    def test_live_stream_followers(
        self,
        admin_server: ServerThread,
        admin_client: openai.OpenAI,
        model: str,
        fake_upstream: FakeUpstream,
    ) -> None:
        # A job that outlasts the test (30 s), so it is live whenever the follower comes, on
        # however loaded a machine: a short one could end first, its follower gone at once.
        words = " ".join(f"w{n}" for n in range(60))
        fake_upstream.script(model, reply=words, chunks=60, chunk_delay=0.5)
        job = streamed_background(admin_client, model=model, input="x")
        try:
            baseline = value(scrape(admin_server.url), "tether_stream_followers")
            with admin_client.responses.retrieve(job.id, stream=True) as stream:
                next(iter(stream))
                following = value(scrape(admin_server.url), "tether_stream_followers")
            assert following == baseline + 1
            # The client left: the server's follower stops, and the gauge says so.
            wait_until(
                lambda: value(scrape(admin_server.url), "tether_stream_followers") == baseline,
                what="the follower to be gone",
            )
        finally:
            admin_client.responses.cancel(job.id)


def test_model_labels_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_models", set())
    names = [f"model-{n}" for n in range(metrics.MAX_MODELS)]
    assert [metrics.model_label(name) for name in names] == names
    assert metrics.model_label("one-too-many") == "other"
    assert metrics.model_label(names[0]) == names[0]
    assert metrics.model_label("x" * 201) == "other"


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, samples of processes that wrote there are all rendered
    (prometheus-client picks its storage at import, so each process here is a fresh one)."""
    observe = (
        "import sys; from app.ops import metrics; "
        "metrics.observe_request('GET', '/v1/models', 200, 0.01); "
        "metrics.STREAM_FOLLOWERS.inc(); "
        "sys.stdout.buffer.write(metrics.render(metrics.Snapshot({'queued': 2}, None)))"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    stopping = observe + "; metrics.process_exiting()"  # as the API's shutdown does
    for _ in range(2):
        subprocess.run([sys.executable, "-c", stopping], env=env, check=True, capture_output=True)
    text = subprocess.run(
        [sys.executable, "-c", observe], env=env, check=True, capture_output=True
    ).stdout.decode()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    requests = "tether_http_request_duration_seconds_count"
    labels = {"route": "/v1/models", "method": "GET", "status": "200"}
    assert value(samples, requests, **labels) == 3
    assert value(samples, "tether_jobs", status="queued") == 2
    # A live gauge counts the processes that did not stop: the one rendering.
    assert value(samples, "tether_stream_followers") == 1
