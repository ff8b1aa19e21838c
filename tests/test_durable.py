"""The durable engine on a real SQLite file and a real PostgreSQL server: every change
journaled, restarts rebuild the exact state, the hash chain catches tampering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from tests.journal_front_end import Tenants, journal, open_engine, some_history

from dpsched.budget import Accounting
from dpsched.core import BlockSpec, PerArrival, snapshot
from dpsched.engine import migrations
from dpsched.engine.audit import verify
from dpsched.engine.durable import Context, DurableEngine
from dpsched.engine.journal import Archived, Entry, Journal
from dpsched.errors import InputError


def test_unmigrated_databases_are_refused_with_the_command_to_run(database: str) -> None:
    with pytest.raises(InputError, match=r"`dpsched db upgrade --db "):
        Journal(database)
    assert journal(database).last_seq == 0


def test_a_restart_rebuilds_the_exact_state(database: str) -> None:
    durable, tenants = open_engine(database)
    some_history(durable, tenants)
    before = snapshot.to_dict(durable.engine.ledger)
    assert durable.staged == 0
    rows = durable.journal.entries()
    assert rows[0].op == "init" and rows[1].op == "test_team_joined"
    assert {"add_block", "submit", "unlock", "allocate", "consume", "release"} <= {
        r.op for r in rows
    }
    assert all(r.tenant == "team-a" and r.actor == "alice" for r in rows[1:])
    again, tenants_again = open_engine(database)
    assert snapshot.to_dict(again.engine.ledger) == before
    assert tenants_again.names == ["team-a"]
    assert verify(again.journal).ok


def test_snapshots_bound_the_replay_and_give_the_same_state(database: str) -> None:
    durable, tenants = open_engine(database, snapshot_every=25)
    some_history(durable, tenants, rounds=8)
    before = snapshot.to_dict(durable.engine.ledger)
    latest = durable.journal.latest_snapshot()
    assert latest is not None and 0 < latest[0] <= durable.journal.last_seq
    again, tenants_again = open_engine(database)
    assert snapshot.to_dict(again.engine.ledger) == before
    assert tenants_again.names == ["team-a"]
    # The restarted engine keeps working and journaling.
    with again.acting(Context(tenant="team-a"), 20.0) as engine:
        engine.add_block(BlockSpec(id="late", capacity=(0.5, 1.0, 1.5)), 20.0)
        engine.round(20.0)
    again.commit()
    third, _ = open_engine(database)
    assert snapshot.to_dict(third.engine.ledger) == snapshot.to_dict(again.engine.ledger)


def test_nothing_staged_survives_a_crash_before_commit(database: str) -> None:
    durable, tenants = open_engine(database)
    some_history(durable, tenants, rounds=2)
    committed = snapshot.to_dict(durable.engine.ledger)
    with durable.acting(Context(), 9.0) as engine:
        engine.add_block(BlockSpec(id="lost", capacity=(0.5, 1.0, 1.5)), 9.0)
    assert durable.staged > 0  # the process dies here: no commit
    again, _ = open_engine(database)
    assert snapshot.to_dict(again.engine.ledger) == committed


def test_a_failed_commit_brings_the_state_back_to_the_journal(database: str) -> None:
    durable, tenants = open_engine(database)
    some_history(durable, tenants, rounds=2)
    committed = snapshot.to_dict(durable.engine.ledger)
    # Another writer takes the next sequence number: this commit must fail.
    rogue = sa.create_engine(durable.journal.url)
    with rogue.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO operations (seq, time, op, args, hash) "
                """VALUES (:seq, 0, 'test_team_joined', '{"name": "rogue"}', 'x')"""
            ),
            {"seq": durable.journal.last_seq + 1},
        )
    rogue.dispose()
    with durable.acting(Context(), 9.0) as engine:
        engine.add_block(BlockSpec(id="lost", capacity=(0.5, 1.0, 1.5)), 9.0)
    with pytest.raises(sa.exc.IntegrityError):
        durable.commit()
    assert snapshot.to_dict(durable.engine.ledger) == committed
    assert durable.staged == 0
    assert tenants.names == ["team-a", "rogue"]  # what the journal holds, nothing staged


def test_audit_finds_the_first_tampered_row(database: str) -> None:
    durable, tenants = open_engine(database)
    some_history(durable, tenants, rounds=3)
    report = verify(durable.journal)
    assert report.ok and report.rows == durable.journal.last_seq
    victim = next(r for r in durable.journal.entries() if r.op == "consume")
    engine = sa.create_engine(durable.journal.url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE operations SET args = :args WHERE seq = :seq"),
            {"args": json.dumps(victim.args | {"fraction": 1.0}), "seq": victim.seq},
        )
    engine.dispose()
    tampered = verify(Journal(database))
    assert not tampered.ok
    assert tampered.bad_row == victim.seq and tampered.problem == "hash does not chain"
    assert tampered.rows == victim.seq - 1


def test_the_journal_refuses_a_different_accounting(database: str) -> None:
    durable, tenants = open_engine(database)
    some_history(durable, tenants, rounds=1)
    with pytest.raises(InputError, match="the journal was started with"):
        DurableEngine.open(
            Journal(database), Accounting("basic"), PerArrival(2), "dpack", state=Tenants()
        )


def test_a_journal_at_the_previous_schema_migrates_in_place(database: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    engine = sa.create_engine(database)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    engine.dispose()
    old = Journal(database, check=False)
    basic = Accounting("basic")
    accounting = {"mode": basic.mode, "alphas": list(basic.alphas), "delta": basic.delta}
    old.append([Entry("init", {"accounting": accounting}, 0.0), Entry("tenant_add", {}, 1.0)])
    with pytest.raises(InputError, match=r"schema 0001, this dpsched needs 0002: run `dpsched db"):
        Journal(database)
    assert old.upgrade() == "0002"
    migrated = Journal(database)
    assert [(e.seq, e.op) for e in migrated.entries()] == [(1, "init"), (2, "tenant_add")]
    assert verify(migrated).rows == 2
    assert migrated.archived("anything") is None


def test_forgotten_claims_leave_the_state_and_are_archived_with_their_operation(
    database: str,
) -> None:
    durable, tenants = open_engine(database, snapshot_every=7)
    some_history(durable, tenants)
    ledger = durable.engine.ledger
    finished = ledger.finished_before(3.0)
    assert finished and all(ledger.claim(c).finished_at is not None for c in finished)
    with durable.acting(Context(actor="retention"), 10.0) as engine:
        forgotten = engine.forget_finished(3.0)
    for n, item in enumerate(forgotten, start=1):
        record = {"state": item.claim.state.value, "requests": list(item.request_ids)}
        durable.archive(Archived(item.claim.id, "team-a", n, item.claim.state.value, record))
    durable.commit()
    assert [f.claim.id for f in forgotten] == finished
    assert not any(ledger.has_claim(c) for c in finished)
    stored = durable.journal.archived(finished[0])
    assert stored is not None and stored.seq == durable.journal.last_seq
    assert stored.record["state"] == forgotten[0].claim.state.value
    page = durable.journal.archived_page("team-a", 0, 2)
    assert [a.n for a in page] == [1, 2][: len(forgotten)]
    before = snapshot.to_dict(ledger)
    again, _ = open_engine(database)
    assert snapshot.to_dict(again.engine.ledger) == before
    assert verify(again.journal).ok
