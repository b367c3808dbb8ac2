"""dispatch: deployment concurrency limits, infrastructure cleanup tracking

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("concurrency_limit", sa.Integer(), nullable=True))
    with op.batch_alter_table("flow_runs") as batch:
        batch.add_column(
            sa.Column(
                "infrastructure_released", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch.create_index("ix_flow_runs_push_watch", ["work_pool_id", "infrastructure_released"])


def downgrade() -> None:
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_index("ix_flow_runs_push_watch")
        batch.drop_column("infrastructure_released")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("concurrency_limit")
