"""A database of its own for each test that makes keys, of either backend: a key in the
suite's shared databases would end keyless mode for every other test's server."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import migrated_database


@pytest.fixture
def own_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A migrated database for this test alone, of the session's `backend`."""
    with migrated_database(backend, str(tmp_path)) as url:
        yield url
