"""The journal's tables, as SQLAlchemy Core metadata (Alembic migrations create them)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

operations = sa.Table(
    "operations",
    metadata,
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("time", sa.Float(), nullable=False),
    sa.Column("tenant", sa.String(200), nullable=True),
    sa.Column("actor", sa.String(200), nullable=True),
    sa.Column("request_id", sa.String(200), nullable=True),
    sa.Column("op", sa.String(40), nullable=False),
    sa.Column("args", sa.Text(), nullable=False),
    sa.Column("outcome", sa.Text(), nullable=True),
    sa.Column("hash", sa.String(64), nullable=False),
)
"""One row per change of state, never updated or deleted; `hash` chains each row to the
one before, so the table is its own audit log."""

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("created", sa.Float(), nullable=False),
    sa.Column("format", sa.String(20), nullable=False),
    sa.Column("state", sa.LargeBinary(), nullable=False),
)
"""The whole state after operation `seq`: a restart loads the latest and replays the rest."""

HEAD = "0001"
"""The schema revision this code needs (the newest migration)."""
