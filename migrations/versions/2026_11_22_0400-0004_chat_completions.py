"""stored chat completions; list indexes for responses

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "chat_completions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("completion", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_completions")),
    )
    op.create_index("ix_chat_completions_project_id_id", "chat_completions", ["project_id", "id"])
    op.create_index(
        "ix_chat_completions_project_id_model_id", "chat_completions", ["project_id", "model", "id"]
    )
    op.create_index("ix_responses_project_id_model_id", "responses", ["project_id", "model", "id"])
    op.create_index(
        "ix_responses_project_id_status_id", "responses", ["project_id", "status", "id"]
    )
    if op.get_bind().dialect.name == "postgresql":
        # metadata @> '{"k": "v"}': several filters are one containment test on one index.
        op.create_index(
            "ix_chat_completions_metadata_gin",
            "chat_completions",
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_chat_completions_metadata_gin", table_name="chat_completions")
    op.drop_index("ix_responses_project_id_status_id", table_name="responses")
    op.drop_index("ix_responses_project_id_model_id", table_name="responses")
    op.drop_index("ix_chat_completions_project_id_model_id", table_name="chat_completions")
    op.drop_index("ix_chat_completions_project_id_id", table_name="chat_completions")
    op.drop_table("chat_completions")
