"""responses.started_at: when the current attempt began, for the dashboard's timings

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-02 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
# 0011 and 0012 belong to work not merged on this branch yet; whichever lands last chains on.
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing on either database. Rows stored before
    # it show no start time.
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("started_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("started_at")
