"""metadata filters: one GIN index on (project_id, metadata), built without locking writes

A metadata-filtered list that the walk in id order does not fill (app/kit/listing.py) takes its
matches from a GIN index. On metadata alone, that index returns every project's matches, and a
generic plan ANDed it with the project's whole btree range: both grow with the table. With the
project in the same GIN index (btree_gin gives GIN its `=` on varchar), the index returns the
project's matches only. It serves `metadata @>` alone too, so it replaces the old index.

Built CONCURRENTLY, outside the migration's transaction (autocommit_block): on a table of
millions of rows a plain CREATE INDEX blocks every insert for minutes. A concurrent build that
fails leaves an invalid index behind, so the upgrade drops any leftover of its own first and can
simply be run again.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 01:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("responses", "chat_completions")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no GIN indexes: its lists filter with json_extract
    with op.get_context().autocommit_block():
        # A trusted extension (PostgreSQL 13+): the database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
        for table in TABLES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS ix_{table}_project_id_metadata_gin")
            op.execute(
                f"CREATE INDEX CONCURRENTLY ix_{table}_project_id_metadata_gin ON {table}"
                " USING gin (project_id, metadata jsonb_path_ops)"
            )
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS ix_{table}_metadata_gin")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        for table in TABLES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS ix_{table}_metadata_gin")
            op.execute(
                f"CREATE INDEX CONCURRENTLY ix_{table}_metadata_gin ON {table}"
                " USING gin (metadata jsonb_path_ops)"
            )
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS ix_{table}_project_id_metadata_gin")
