"""Each test here has a database of its own, of the session's backend: retention and the
operators' tools look at (and purge) every project's rows, which the shared databases hold for
the rest of the suite."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.conftest import SMALL_POOL
from tests.fakes.upstream import FakeUpstream
from tests.harness import migrated_database


@pytest.fixture
def own_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with migrated_database(backend, str(tmp_path)) as url:
        yield url


@pytest.fixture
def own_settings(own_database_url: str, fake_upstream: FakeUpstream) -> Settings:
    """A server of the test's own: jobs handed back to the queue, and swept, at once."""
    return Settings(
        database_url=own_database_url,
        upstream_base_url=f"{fake_upstream.url}/v1",
        job_requeue_after=0.2,
        job_sweep_interval=0.1,
        job_upstream_retries=0,
        **SMALL_POOL,
    )
