"""infrastructure records: what provisioners created or adopted, per work pool name

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import push_pools.store.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new table only: CREATE TABLE needs no batch mode, even on SQLite.
    op.create_table(
        "infrastructure_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("pool_name", sa.String(length=200), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=200), nullable=False),
        sa.Column("identifier", sa.Text(), nullable=False),
        sa.Column("created", sa.Boolean(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("recorded", push_pools.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated", push_pools.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pool_name", "step"),
    )


def downgrade() -> None:
    op.drop_table("infrastructure_records")
