"""Background jobs on real Celery workers, real Redis and real PostgreSQL.

They get a database of their own: the suite's other servers run in embedded mode, and their job
runtimes would otherwise share (and sweep) these rows.
"""

import uuid
from collections.abc import Callable, Iterator

import openai
import pytest

from app.config import Settings
from tests.background.harness import Worker
from tests.conftest import SMALL_POOL, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import TEST_REDIS_URL, ServerThread, migrated_database, running_server

# Short enough that lost-worker tests take seconds, long enough for a loaded CI machine.
JOB_SETTINGS = {
    "job_lease_seconds": 3.0,
    "job_sweep_interval": 0.5,
    "job_requeue_after": 3.0,
    "job_cancel_poll": 0.2,
    "job_retry_backoff": 0.05,
    "job_upstream_retries": 2,
}


@pytest.fixture(scope="session")
def celery_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_database("postgres", str(tmp_path_factory.mktemp("celery"))) as url:
        yield url


@pytest.fixture(scope="session")
def celery_settings(celery_database_url: str, fake_upstream: FakeUpstream) -> Settings:
    return Settings(
        database_url=celery_database_url,
        redis_url=TEST_REDIS_URL,
        # A queue of this run's own: another run on the same Redis never takes its jobs.
        celery_queue=f"tether-test-{uuid.uuid4().hex[:8]}",
        upstream_base_url=f"{fake_upstream.url}/v1",
        upstream_timeout=60.0,
        **JOB_SETTINGS,
        **SMALL_POOL,
    )


@pytest.fixture(scope="session")
def celery_worker(celery_settings: Settings) -> Iterator[Worker]:
    worker = Worker(celery_settings).start()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def celery_server(celery_settings: Settings, celery_worker: Worker) -> Iterator[ServerThread]:
    with running_server(celery_settings) as srv:
        yield srv


@pytest.fixture
def bg_client(celery_server: ServerThread) -> Iterator[openai.OpenAI]:
    with sdk(celery_server.url) as client:
        yield client


@pytest.fixture
def private_queue(celery_settings: Settings) -> Callable[[], Settings]:
    """Settings for a queue no worker listens on yet: the test decides who runs its jobs."""

    def make() -> Settings:
        return celery_settings.model_copy(update={"celery_queue": f"q-{uuid.uuid4().hex[:8]}"})

    return make
