"""indexes for a large store (run lists, the Late sweep) and the scheduler's per-schedule cursor

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import push_pools.store.tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

RUN_INDEXES = {
    "ix_flow_runs_scheduled": ["scheduled_time"],
    "ix_flow_runs_state_scheduled": ["state_type", "scheduled_time"],
    "ix_flow_runs_pool_scheduled": ["work_pool_id", "scheduled_time"],
    "ix_flow_runs_deployment_scheduled": ["deployment_id", "scheduled_time"],
}


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default) needs no table copy on SQLite. Existing
    # schedules start NULL: the first tick after the upgrade looks at each of them once.
    op.add_column(
        "deployment_schedules",
        sa.Column(
            "scheduled_until", push_pools.store.tables.UtcDateTime(timezone=True), nullable=True
        ),
    )
    op.create_index("ix_deployment_schedules_deployment", "deployment_schedules", ["deployment_id"])
    op.create_index("ix_deployment_schedules_until", "deployment_schedules", ["scheduled_until"])
    for name, columns in RUN_INDEXES.items():
        op.create_index(name, "flow_runs", columns)


def downgrade() -> None:
    for name in RUN_INDEXES:
        op.drop_index(name, table_name="flow_runs")
    op.drop_index("ix_deployment_schedules_until", table_name="deployment_schedules")
    op.drop_index("ix_deployment_schedules_deployment", table_name="deployment_schedules")
    with op.batch_alter_table("deployment_schedules") as batch_op:
        batch_op.drop_column("scheduled_until")
