"""run host: the host a managed run belongs to, and each host's heartbeat

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import push_pools.store.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column with no default: SQLite adds it without rebuilding the table.
    op.add_column("flow_runs", sa.Column("host_id", sa.String(length=200), nullable=True))
    op.create_index("ix_flow_runs_host", "flow_runs", ["host_id", "state_type"])
    op.create_table(
        "hosts",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("beats", sa.Integer(), nullable=False),
        sa.Column(
            "last_heartbeat", push_pools.store.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("hosts")
    op.drop_index("ix_flow_runs_host", table_name="flow_runs")
    # Batch mode: SQLite drops a column by rebuilding the table.
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_column("host_id")
