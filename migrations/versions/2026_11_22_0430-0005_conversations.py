"""conversations and their items

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("next_seq", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    op.create_index("ix_conversations_project_id_id", "conversations", ["project_id", "id"])
    op.create_table(
        "conversation_items",
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("item", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_items_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", "seq", name=op.f("pk_conversation_items")),
    )
    op.create_index(
        "ix_conversation_items_conversation_id_item_id",
        "conversation_items",
        ["conversation_id", "item_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_items_conversation_id_item_id", table_name="conversation_items")
    op.drop_table("conversation_items")
    op.drop_index("ix_conversations_project_id_id", table_name="conversations")
    op.drop_table("conversations")
