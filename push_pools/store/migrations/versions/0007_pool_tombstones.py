"""deleted work pools stay as tombstones until their runs' infrastructure is released

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain column add (no table rebuild on SQLite); existing pools are all live.
    op.add_column(
        "work_pools",
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.execute("DELETE FROM work_pools WHERE deleted")
    with op.batch_alter_table("work_pools") as batch:
        batch.drop_column("deleted")
