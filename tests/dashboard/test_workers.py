"""The jobs page in Celery mode: the live workers it lists are the heartbeats in Redis (the
ones `tether status` and /readyz count), with their jobs in flight; none is said plainly."""

import os
import socket
import time
import uuid
from collections.abc import Callable

import openai
import orjson
import redis

from app.config import Settings
from app.ops.workers import WorkerBeat, heartbeat_key
from tests.dashboard.conftest import Project
from tests.dashboard.harness import Dashboard
from tests.harness import TEST_REDIS_URL, running_server


def test_jobs_page_lists_the_live_workers_and_a_job_none_takes(
    dash_settings: Settings, alpha: Project, dashboard: Callable[..., Dashboard]
) -> None:
    queue = f"dash-{uuid.uuid4().hex[:8]}"  # no worker consumes it: a job stays queued
    settings = dash_settings.model_copy(update={"redis_url": TEST_REDIS_URL, "celery_queue": queue})
    with (
        running_server(settings) as server,
        openai.OpenAI(base_url=f"{server.url}/v1", api_key=alpha.key, max_retries=0) as client,
        redis.Redis.from_url(TEST_REDIS_URL) as broker,
    ):
        admin = dashboard(server.url)
        admin.login()
        admin.select(alpha.id)
        page = admin.get("/dashboard/jobs").text
        assert f"No live worker consumes the queue <code>{queue}</code>" in page

        job = client.responses.create(model="any", input="waits", background=True)
        beat = WorkerBeat(
            pid=os.getpid(),
            hostname=f"{socket.gethostname()}-dash",
            queue=queue,
            started_at=time.time(),
            in_flight=7,
            held=0,
        )
        key = heartbeat_key(beat["hostname"], beat["pid"])
        broker.set(key, orjson.dumps(beat), px=30_000)
        try:
            page = admin.get("/dashboard/jobs").text
        finally:
            broker.delete(key)
        assert f"<td>{beat['hostname']}:{beat['pid']}</td><td>7</td>" in page
        assert f'href="/dashboard/responses/{job.id}"' in page  # the oldest queued
        assert client.responses.cancel(job.id).status == "cancelled"
