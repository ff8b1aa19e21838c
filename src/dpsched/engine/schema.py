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

archive = sa.Table(
    "archive",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("n", sa.BigInteger(), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("record", sa.Text(), nullable=False),
    sa.Index("archive_owner_n", "owner", "n"),
)
"""Final records of what a front end forgot (finished claims after their retention),
written in the same transaction as the operation row `seq` that dropped them: readable
by key and, per owner, in the front end's order `n`, without keeping them in memory."""

HEAD = "0002"
"""The schema revision this code needs (the newest migration)."""
