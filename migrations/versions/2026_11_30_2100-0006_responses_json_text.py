"""responses: the request and answer columns as json text, not jsonb

jsonb stores objects with their keys re-ordered (shorter keys first), so on PostgreSQL a
response came back with its output items, tools and JSON schemas in another key order than it
was created with, and than SQLite gives: not byte-identical across databases, and a schema's
`properties` order (which guided decoding follows) changed between a synchronous create and a
background job built from the stored row. These columns are only ever read back whole, so
`json` (the text as written) is also the cheaper type. `metadata` stays jsonb: lists filter it
with `@>` on a GIN index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 21:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("instructions", "input", "params", "output", "usage", "error", "incomplete_details")


def _retype(to: str) -> None:
    # SQLite keeps JSON as text whatever the declared type: nothing to change there.
    if op.get_bind().dialect.name != "postgresql":
        return
    changes = ", ".join(f"ALTER COLUMN {c} TYPE {to} USING {c}::text::{to}" for c in COLUMNS)
    op.execute(f"ALTER TABLE responses {changes}")


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
