"""The durable journal: an append-only table of operations, hash-chained, plus snapshots.

SQLite by default (one file, WAL, `synchronous=FULL`: a commit is on disk when it
returns) and PostgreSQL for scale, through the same SQLAlchemy Core code. The
journal stores the operations the engine reports, as `core.records` encodes them,
and never interprets them; `engine.durable` decides what an operation means.

Rows are numbered by the single writer (seq = last + 1) and each carries
sha256(previous hash + the row's canonical JSON), so any edit, deletion or
reordering of history breaks the chain at the first row touched.
"""

from __future__ import annotations

import hashlib
import json
import time as wallclock
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from dpsched.engine import migrations
from dpsched.engine.schema import HEAD, archive, operations, snapshots
from dpsched.errors import InputError

GENESIS = "0" * 64
"""The hash before the first row."""


@dataclass(frozen=True)
class Entry:
    """One journaled operation. `seq` and `hash` are assigned when it is appended."""

    op: str
    args: dict[str, Any]
    time: float
    tenant: str | None = None
    actor: str | None = None
    request_id: str | None = None
    outcome: dict[str, Any] | None = None
    seq: int = 0
    hash: str = field(default="", compare=False)

    def canonical(self, args: str | None = None, outcome: str | None = None) -> str:
        """What the hash covers: every field but the hash, as deterministic JSON (the
        list's own encoding: `args`/`outcome` may be passed already encoded)."""
        args = _dumps(self.args) if args is None else args
        outcome = _dumps(self.outcome) if outcome is None else outcome
        head = _dumps([self.seq, self.time, self.tenant, self.actor, self.request_id, self.op])
        return f"{head[:-1]},{args},{outcome}]"


@dataclass(frozen=True)
class Archived:
    """A front end's final record of something it forgot (see `schema.archive`)."""

    key: str
    owner: str
    n: int
    state: str
    record: dict[str, Any]
    seq: int = 0


def chained(
    previous: str, entry: Entry, args: str | None = None, outcome: str | None = None
) -> str:
    canonical = entry.canonical(args, outcome)
    return hashlib.sha256(f"{previous}\n{canonical}".encode()).hexdigest()


def database_url(value: str) -> str:
    """A SQLAlchemy URL, or a plain path taken as a SQLite file."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


class Journal:
    """The journal at `url`; refuses a database whose schema is not at this code's head
    (with the command that migrates it), unless `check` is False (for `upgrade`)."""

    def __init__(self, url: str, *, check: bool = True) -> None:
        self.url = database_url(url)
        try:
            self._engine = sa.create_engine(self.url, future=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise InputError("--db", f"cannot use database {self.url!r}: {exc}") from None
        if self._engine.dialect.name == "sqlite":
            sa.event.listen(self._engine, "connect", _sqlite_durability)
            path = self._engine.url.database
            if check and path and path != ":memory:" and not Path(path).exists():
                raise InputError(
                    "--db",
                    f"no database file {path}: create it with `dpsched db upgrade --db {url}`",
                )
        if check:
            revision = self.schema_revision()
            if revision != HEAD:
                found = "no dpsched schema" if revision is None else f"schema {revision}"
                raise InputError(
                    "--db",
                    f"database {self.url} has {found}, this dpsched needs {HEAD}: "
                    f"run `dpsched db upgrade --db {url}`",
                )
        self._last_seq, self._last_hash = self._tail()

    # ------------------------------------------------------------------ schema
    def schema_revision(self) -> str | None:
        try:
            with self._engine.connect() as connection:
                revision = MigrationContext.configure(connection).get_current_revision()
        except sa.exc.OperationalError as exc:
            raise InputError("--db", f"cannot open database {self.url}: {exc.orig}") from None
        return revision

    def upgrade(self) -> str:
        """Create or migrate the schema to this code's head; returns the revision."""
        config = Config()
        config.set_main_option("script_location", str(Path(migrations.__file__).parent))
        with self._engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        self._last_seq, self._last_hash = self._tail()
        return HEAD

    # -------------------------------------------------------------- operations
    @property
    def last_seq(self) -> int:
        return self._last_seq

    def append(self, entries: Sequence[Entry], archived: Sequence[Archived] = ()) -> list[Entry]:
        """Append in one transaction, with the archive records those operations made;
        returns the entries as stored (seq, hash). Nothing is written if the commit
        fails (the exception propagates)."""
        if not entries:
            if archived:
                raise InputError(
                    "archive", "archive records come with the operation that made them"
                )
            return []
        stored: list[Entry] = []
        rows: list[dict[str, Any]] = []
        seq, previous = self._last_seq, self._last_hash
        for entry in entries:
            seq += 1
            args, outcome = _dumps(entry.args), _dumps(entry.outcome)
            numbered = replace(entry, seq=seq)
            previous = chained(previous, numbered, args, outcome)
            stored.append(replace(numbered, hash=previous))
            rows.append(
                {
                    "seq": seq,
                    "time": entry.time,
                    "tenant": entry.tenant,
                    "actor": entry.actor,
                    "request_id": entry.request_id,
                    "op": entry.op,
                    "args": args,
                    "outcome": None if entry.outcome is None else outcome,
                    "hash": previous,
                }
            )
        with self._engine.begin() as connection:
            connection.execute(operations.insert(), rows)
            if archived:
                connection.execute(
                    archive.insert(),
                    [
                        {
                            "key": a.key,
                            "owner": a.owner,
                            "n": a.n,
                            "state": a.state,
                            "seq": seq,
                            "record": _dumps(a.record),
                        }
                        for a in archived
                    ],
                )
        self._last_seq, self._last_hash = seq, previous
        return stored

    def entries(self, after: int = 0, limit: int | None = None) -> list[Entry]:
        """Rows with seq > `after`, in order (at most `limit`)."""
        query = sa.select(operations).where(operations.c.seq > after).order_by(operations.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self._engine.connect() as connection:
            return [_entry(row) for row in connection.execute(query)]

    def scan(self, after: int = 0, batch: int = 10_000) -> Iterator[Entry]:
        """Every row after `after`, read `batch` at a time (for replay and audits)."""
        while True:
            page = self.entries(after, batch)
            yield from page
            if len(page) < batch:
                return
            after = page[-1].seq

    # ----------------------------------------------------------------- archive
    def archived(self, key: str) -> Archived | None:
        query = sa.select(archive).where(archive.c.key == key)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _archived(row)

    def archived_page(
        self, owner: str, after: int, limit: int, state: str | None = None
    ) -> list[Archived]:
        """The owner's archived records with n > `after`, in n order (at most `limit`)."""
        query = sa.select(archive).where(archive.c.owner == owner, archive.c.n > after)
        if state is not None:
            query = query.where(archive.c.state == state)
        query = query.order_by(archive.c.n).limit(limit)
        with self._engine.connect() as connection:
            return [_archived(row) for row in connection.execute(query)]

    # --------------------------------------------------------------- snapshots
    def save_snapshot(self, seq: int, state: bytes, form: str = "npz-1") -> None:
        with self._engine.begin() as connection:
            connection.execute(
                snapshots.insert(),
                {"seq": seq, "created": wallclock.time(), "format": form, "state": state},
            )

    def latest_snapshot_seq(self) -> int:
        """The row the latest snapshot covers (0: none), without reading its state."""
        query = sa.select(sa.func.max(snapshots.c.seq))
        with self._engine.connect() as connection:
            value = connection.execute(query).scalar()
        return 0 if value is None else int(value)

    def latest_snapshot(self) -> tuple[int, str, bytes] | None:
        query = sa.select(snapshots).order_by(snapshots.c.seq.desc()).limit(1)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else (int(row.seq), str(row.format), bytes(row.state))

    def close(self) -> None:
        self._engine.dispose()

    def _tail(self) -> tuple[int, str]:
        query = sa.select(operations.c.seq, operations.c.hash).order_by(operations.c.seq.desc())
        try:
            with self._engine.connect() as connection:
                row = connection.execute(query.limit(1)).first()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            return 0, GENESIS  # no table yet: `upgrade` creates it
        return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))


def _entry(row: Any) -> Entry:
    return Entry(
        op=row.op,
        args=json.loads(row.args),
        time=row.time,
        tenant=row.tenant,
        actor=row.actor,
        request_id=row.request_id,
        outcome=None if row.outcome is None else json.loads(row.outcome),
        seq=int(row.seq),
        hash=row.hash,
    )


def _archived(row: Any) -> Archived:
    return Archived(
        key=row.key,
        owner=row.owner,
        n=int(row.n),
        state=row.state,
        record=json.loads(row.record),
        seq=int(row.seq),
    )


def _dumps(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces, exact floats, never NaN)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _sqlite_durability(connection: Any, _record: Any) -> None:
    """WAL with synchronous=FULL: a committed transaction survives a crash or power loss."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
