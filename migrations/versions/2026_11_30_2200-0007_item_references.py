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
    op.create_index("ix_conversation_items_item_id", "conversation_items", ["item_id"])
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("service_tier", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("service_tier")
    op.drop_index("ix_conversation_items_item_id", table_name="conversation_items")
    op.drop_index("ix_response_items_response_id", table_name="response_items")
    op.drop_table("response_items")
