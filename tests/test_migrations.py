"""The schema can be built, torn down and built again on both databases."""

import pytest

from app import migrate
from tests.harness import fresh_database, query

TABLES = {"responses", "alembic_version"}


def _tables(url: str, backend: str) -> set[object]:
    if backend == "sqlite":
        rows = query(url, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row[0] for row in rows}


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_upgrade_downgrade_upgrade(backend: str, tmp_path: object) -> None:
    with fresh_database(backend, str(tmp_path)) as url:
        migrate.upgrade(url)
        assert _tables(url, backend) >= TABLES
        migrate.downgrade(url)
        assert _tables(url, backend) <= {"alembic_version"}
        migrate.upgrade(url)
        assert _tables(url, backend) >= TABLES
        if backend == "postgres":
            indexes = query(url, "SELECT indexname FROM pg_indexes WHERE tablename = 'responses'")
            assert ("ix_responses_metadata_gin",) in indexes
