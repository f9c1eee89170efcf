"""item references: where each stored item lives; the service tier a response was served with

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "response_items",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("response_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["responses.id"],
            name=op.f("fk_response_items_response_id_responses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "project_id", "item_id", "response_id", name=op.f("pk_response_items")
        ),
    )
    op.create_index("ix_response_items_response_id", "response_items", ["response_id"])
    _index_existing_items()
    op.create_index("ix_conversation_items_item_id", "conversation_items", ["item_id"])
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("service_tier", sa.String(16), nullable=True))


# Responses stored before this revision: their items indexed too, so that an item_reference
# to one of them (the AI SDK's next turn after an upgrade) is found.
BACKFILL = {
    "postgresql": """
        INSERT INTO response_items (project_id, item_id, response_id)
        SELECT DISTINCT project_id, item_id, response_id FROM (
            SELECT r.project_id, e ->> 'id' AS item_id, r.id AS response_id
            FROM responses r, json_array_elements(r.input::json) e
            UNION
            SELECT r.project_id, e ->> 'id', r.id
            FROM responses r, json_array_elements(r.output::json) e
        ) found
        WHERE item_id IS NOT NULL AND length(item_id) <= 64
        ON CONFLICT DO NOTHING
    """,
    "sqlite": """
        INSERT OR IGNORE INTO response_items (project_id, item_id, response_id)
        SELECT project_id, item_id, response_id FROM (
            SELECT r.project_id, json_extract(e.value, '$.id') AS item_id, r.id AS response_id
            FROM responses r, json_each(r.input) e
            UNION
            SELECT r.project_id, json_extract(e.value, '$.id'), r.id
            FROM responses r, json_each(r.output) e
        )
        WHERE item_id IS NOT NULL AND length(item_id) <= 64
    """,
}


def _index_existing_items() -> None:
    op.execute(BACKFILL[op.get_bind().dialect.name])


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("service_tier")
    op.drop_index("ix_conversation_items_item_id", table_name="conversation_items")
    op.drop_index("ix_response_items_response_id", table_name="response_items")
    op.drop_table("response_items")
