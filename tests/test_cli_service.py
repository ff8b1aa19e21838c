"""The journal's commands: `dpsched db upgrade` and `dpsched audit verify`."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from tests.journal_front_end import open_engine, some_history
from tests.test_cli import dpsched


def test_db_upgrade_then_audit_verify(tmp_path: Path) -> None:
    db = str(tmp_path / "journal.db")
    missing = dpsched("audit", "verify", "--db", db)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"error: --db: no database file {db}: create it with `dpsched db upgrade --db {db}`"
    )
    assert not Path(db).exists()
    upgraded = dpsched("db", "upgrade", "--db", db, "--json", "-")
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout) == {"db": db, "revision": "0002"}
    durable, tenants = open_engine(db)
    some_history(durable, tenants, rounds=3)
    rows = durable.journal.last_seq
    run = dpsched("audit", "verify", "--db", db)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{db}: {rows} rows verified, all sound"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM operations WHERE seq = 5"))
    engine.dispose()
    run = dpsched("audit", "verify", "--db", db, "--json", "-")
    assert run.returncode == 1
    assert json.loads(run.stdout) == {
        "db": db,
        "ok": False,
        "rows": 4,
        "bad_row": 6,
        "problem": "row 5 is missing",
    }


def test_an_unmigrated_database_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    sa.create_engine(f"sqlite:///{db}").connect().close()  # an empty SQLite file
    run = dpsched("audit", "verify", "--db", str(db))
    assert run.returncode == 2
    assert run.stderr.strip().endswith(f"run `dpsched db upgrade --db {db}`")
    assert len(run.stderr.strip().splitlines()) == 1
