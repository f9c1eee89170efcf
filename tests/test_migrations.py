"""The schema can be built, torn down and built again on both databases."""

import pytest

from app import migrate
from tests.harness import execute, fresh_database, query

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
            assert ("ix_responses_project_id_metadata_gin",) in indexes


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_items_stored_before_the_index_are_indexed(backend: str, tmp_path: object) -> None:
    """Revision 0007 backfills response_items, so an item_reference to a response stored
    before the upgrade is still found."""
    with fresh_database(backend, str(tmp_path)) as url:
        migrate.upgrade(url, "0006")
        execute(
            url,
            "INSERT INTO responses (id, project_id, status, model, background, created_at, "
            "input, messages, params, output, metadata, attempts) VALUES ('resp_old', 'p', "
            "'completed', 'm', false, 1, :input, '[]', '{}', :output, '{}', 0)",
            input='[{"id": "msg_in", "type": "message"}]',
            output='[{"id": "msg_out", "type": "message"}, {"type": "message"}]',
        )
        migrate.upgrade(url)
        rows = query(url, "SELECT project_id, item_id, response_id FROM response_items")
        assert sorted(rows) == [("p", "msg_in", "resp_old"), ("p", "msg_out", "resp_old")]
