"""run tokens: each submitted flow run's own API token, hashed

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import push_pools.store.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("created", push_pools.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["flow_run_id"], ["flow_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_run_tokens_flow_run_id", "run_tokens", ["flow_run_id"])


def downgrade() -> None:
    op.drop_index("ix_run_tokens_flow_run_id", table_name="run_tokens")
    op.drop_table("run_tokens")
