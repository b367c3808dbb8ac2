"""retired deployments: per-deployment infrastructure (Cloud Run jobs) still to forget

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import push_pools.store.tables

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new table only: CREATE TABLE needs no batch mode, even on SQLite. Deployments deleted
    # before this revision left no row: their jobs stay, as they did.
    op.create_table(
        "retired_deployments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("work_pool_id", sa.String(length=36), nullable=False),
        sa.Column("pool_name", sa.String(length=200), nullable=False),
        sa.Column("job_variables", sa.JSON(), nullable=False),
        sa.Column("run_ids", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt", push_pools.store.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished", push_pools.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created", push_pools.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("deployment_id", "work_pool_id"),
    )
    op.create_index(
        "ix_retired_deployments_due", "retired_deployments", ["finished", "next_attempt"]
    )


def downgrade() -> None:
    op.drop_index("ix_retired_deployments_due", table_name="retired_deployments")
    op.drop_table("retired_deployments")
