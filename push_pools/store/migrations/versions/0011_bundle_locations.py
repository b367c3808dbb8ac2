"""code bundles in a bucket: where a bundle's bytes are when the store holds only its row

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column: ADD COLUMN needs no batch mode on SQLite, and existing bundles stay
    # in the store (no location).
    op.add_column("code_bundles", sa.Column("location", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("code_bundles") as batch:
        batch.drop_column("location")
