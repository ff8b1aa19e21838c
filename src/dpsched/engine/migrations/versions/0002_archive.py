"""The archive: final records of finished claims a front end no longer keeps in memory.

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
    op.create_table(
        "archive",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
    )
    op.create_index("archive_owner_n", "archive", ["owner", "n"])


def downgrade() -> None:
    op.drop_index("archive_owner_n", table_name="archive")
    op.drop_table("archive")
