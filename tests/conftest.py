from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL: DPSCHED_TEST_POSTGRES_URL, or one started from the `pgserver`
    package in a temporary directory. Tests that need it fail (never skip) without it."""
    url = os.environ.get("DPSCHED_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    import pgserver  # noqa: PLC0415 - only sessions that use PostgreSQL start it

    directory = tempfile.mkdtemp(prefix="dpsched-pg-")
    server = pgserver.get_server(directory, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    server = request.getfixturevalue("postgres_server")
    name = f"dpsched_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_psycopg(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return str(sa.engine.make_url(_psycopg(server)).set(database=name))


def _psycopg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)
