"""retention: stored responses and chat completions found by age

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 23:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The retention purge (app/ops/retention.py) pages through rows past a cutoff in batches:
    # without these, every batch would scan the whole table.
    op.create_index("ix_responses_created_at", "responses", ["created_at"])
    op.create_index("ix_chat_completions_created", "chat_completions", ["created"])


def downgrade() -> None:
    op.drop_index("ix_chat_completions_created", table_name="chat_completions")
    op.drop_index("ix_responses_created_at", table_name="responses")
