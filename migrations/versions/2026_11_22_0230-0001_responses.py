"""responses

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("background", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        sa.Column("previous_response_id", sa.String(64), nullable=True),
        sa.Column("instructions", JSONType, nullable=True),
        sa.Column("input", JSONType, nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),  # json, not jsonb: read whole, as text
        sa.Column("params", JSONType, nullable=False),
        sa.Column("output", JSONType, nullable=False),
        sa.Column("usage", JSONType, nullable=True),
        sa.Column("error", JSONType, nullable=True),
        sa.Column("incomplete_details", JSONType, nullable=True),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["previous_response_id"],
            ["responses.id"],
            name=op.f("fk_responses_previous_response_id_responses"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responses")),
    )
    op.create_index("ix_responses_project_id_id", "responses", ["project_id", "id"])
    op.create_index("ix_responses_previous_response_id", "responses", ["previous_response_id"])
    if op.get_bind().dialect.name == "postgresql":
        # metadata @> '{"k": "v"}' filters; jsonb_path_ops is smaller and faster for @>.
        op.create_index(
            "ix_responses_metadata_gin",
            "responses",
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_responses_metadata_gin", table_name="responses")
    op.drop_index("ix_responses_previous_response_id", table_name="responses")
    op.drop_index("ix_responses_project_id_id", table_name="responses")
    op.drop_table("responses")
