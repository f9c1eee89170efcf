"""A worker lives through its broker restarting under it, with jobs in flight.

With late acks a worker holds the messages of the jobs it runs unacknowledged. When Redis went
away, Celery 5.7 closed the lost connection and kombu, giving those messages back over it,
raised an AttributeError that Celery does not survive: the worker exited (workers/consumer.py).
In the chaos suite that took both workers on most Redis restarts, and a background stream
created once Redis was back got its first two events, then nothing for 20 s.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from app.config import Settings
from tests.background.conftest import JOB_SETTINGS
from tests.background.harness import Worker
from tests.chaos.harness import RestartableRedis
from tests.conftest import SMALL_POOL, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import migrated_database, poll_status, running_server, wait_until

IN_FLIGHT = 4  # jobs running (their messages unacknowledged) when Redis goes away
# Room for more, so that the worker is waiting on Redis for its next message when Redis goes
# away: the case that killed it (with every slot taken it stops asking, and survived by chance).
SLOTS = 2 * IN_FLIGHT


@pytest.fixture
def broker() -> Iterator[RestartableRedis]:
    server = RestartableRedis()  # the test's own: it kills it
    yield server
    server.kill()


@pytest.fixture
def restart_settings(
    broker: RestartableRedis, fake_upstream: FakeUpstream, tmp_path: Path
) -> Iterator[Settings]:
    with migrated_database("postgres", str(tmp_path)) as url:
        yield Settings(
            database_url=url,
            redis_url=broker.url,
            celery_queue=f"tether-restart-{uuid.uuid4().hex[:8]}",
            upstream_base_url=f"{fake_upstream.url}/v1",
            upstream_timeout=60.0,
            **JOB_SETTINGS,
            **SMALL_POOL,
        )


def test_a_worker_survives_redis_restarting_under_running_jobs(
    restart_settings: Settings, broker: RestartableRedis, fake_upstream: FakeUpstream, model: str
) -> None:
    # Long enough that the jobs are still running when Redis goes, and comes back.
    fake_upstream.script(model, reply="ok", delay=8.0)
    worker = Worker(restart_settings, concurrency=SLOTS).start()
    try:
        with running_server(restart_settings) as server, sdk(server.url) as client:
            running = [
                client.responses.create(model=model, input=f"before {n}", background=True).id
                for n in range(IN_FLIGHT)
            ]
            for response_id in running:
                poll_status(client, response_id, until=("in_progress",), timeout=30)

            broker.restart()  # killed, then back on the same port, empty

            # Created once Redis is back, as the chaos suite's stream was: a worker must take it.
            after = client.responses.create(model=model, input="after", background=True).id
            _until_ended_or_gone(client, worker, after)
            # The jobs that ran through the restart end, and their messages are acknowledged
            # over the lost connection; the worker must take new work after that too.
            for response_id in [*running, after]:
                _until_ended_or_gone(client, worker, response_id)
            last = client.responses.create(model=model, input="last", background=True).id
            _until_ended_or_gone(client, worker, last)
            for response_id in [*running, after, last]:
                assert client.responses.retrieve(response_id).status == "completed"
    finally:
        worker.stop()


def _until_ended_or_gone(client: openai.OpenAI, worker: Worker, response_id: str) -> None:
    """Wait until the response ends; fail at once, with the worker's log, if the worker dies."""

    def ended_or_gone() -> bool:
        if worker.process.poll() is not None:
            return True
        return client.responses.retrieve(response_id).status not in ("queued", "in_progress")

    wait_until(ended_or_gone, timeout=60, what=f"{response_id} to end")
    assert worker.process.poll() is None, f"the worker died:\n{worker.output()[-6000:]}"
