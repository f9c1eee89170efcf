"""responses.deployment: which deployment of a catalog model answered

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-02 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing on PostgreSQL or SQLite.
    op.add_column("responses", sa.Column("deployment", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("deployment")
