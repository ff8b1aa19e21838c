"""The engine made durable: every change of state is journaled, and a restart rebuilds the
exact state from the latest snapshot plus the operations after it.

An operation runs on the in-memory engine first (the ledger refuses bad requests
before changing anything, so a refusal journals nothing); what it changed, as the
ledger reports it, is *staged*; `commit` appends everything staged in one transaction
(group commit: several requests may share it). Until `commit` returns, nothing that
was staged may be shown to anyone: callers answer their clients only after it.
Should a commit fail, the in-memory state is rebuilt from the journal, so it never
holds what the journal does not.

Every operation is a typed record (`core.records`), encoded into the journal's rows by
one encoder and decoded by one decoder. Operations that are not the ledger's (a front
end's own state, such as tenants) are the front end's own record types, journaled with
`record` and handed back to the front end's `restore` on replay.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from dpsched.budget import Accounting
from dpsched.core import Ledger, Unlocking, snapshot
from dpsched.core.records import Init, LedgerOperation, Operation, decode, encode
from dpsched.core.replay import replay
from dpsched.engine.engine import Engine
from dpsched.engine.journal import Archived, Entry, Journal
from dpsched.errors import InputError
from dpsched.policies import Policy

SNAPSHOT_FORMAT = "npz-1"
SNAPSHOT_EVERY = 10_000
"""Operations between snapshots: a restart replays at most this many."""


@dataclass(frozen=True)
class Context:
    """Who asked for an operation: stored with every row it produces."""

    tenant: str | None = None
    actor: str | None = None
    request_id: str | None = None


class FrontEndState:
    """What a front end keeps beside the ledger (tenants, claim bodies): saved in every
    snapshot and rebuilt from the entries it `record`ed."""

    def reset(self) -> None:
        """Back to empty, before a recovery replays the journal into it."""
        return None

    def snapshot(self) -> dict[str, Any]:
        return {}

    def snapshot_arrays(self) -> dict[str, np.ndarray]:
        """Bulky numeric parts of the snapshot, stored as arrays rather than JSON."""
        return {}

    def load(self, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        return None

    def restore(self, operation: Operation) -> None:
        """Apply one of the front end's own records, as it was `record`ed."""
        raise InputError("journal", f"unknown operation {operation.op!r}")

    def recovered(self, ledger: Ledger) -> None:
        """Called once the replay is over: drop what refers to claims the ledger forgot."""
        return None


class DurableEngine:
    """An engine whose every change is journaled; open it with `DurableEngine.open`."""

    def __init__(
        self,
        journal: Journal,
        engine: Engine,
        state: FrontEndState,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> None:
        self.journal = journal
        self.engine = engine
        self.state = state
        self.snapshot_every = snapshot_every
        self._staged: list[Entry] = []
        self._archived: list[Archived] = []
        self._context = Context()
        self._time = 0.0
        self._since_snapshot = 0
        engine.ledger.listener = self._heard

    @classmethod
    def open(
        cls,
        journal: Journal,
        accounting: Accounting,
        unlocking: Unlocking,
        policy: Policy | str,
        *,
        options: BaseModel | dict[str, Any] | None = None,
        state: FrontEndState | None = None,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> DurableEngine:
        """The engine as the journal left it (a new journal starts with `init`)."""
        state = state if state is not None else FrontEndState()
        ledger, replayed = recover(journal, state)
        if ledger is None:
            ledger = Ledger(accounting)
            journal.append([_entry(Init(accounting.to_dict()), Context(), 0.0)])
        elif ledger.accounting.to_dict() != accounting.to_dict():
            raise InputError(
                "accounting",
                f"the journal was started with {ledger.accounting.to_dict()}, "
                f"the configuration asks for {accounting.to_dict()}",
            )
        durable = cls(journal, Engine(ledger, unlocking, policy, options), state, snapshot_every)
        durable._since_snapshot = replayed
        return durable

    # ------------------------------------------------------------------ writes
    @contextmanager
    def acting(self, context: Context, time: float) -> Iterator[Engine]:
        """Run engine operations for `context` at `time`; what they change is staged."""
        self._context, self._time = context, time
        try:
            yield self.engine
        finally:
            self._context = Context()

    def record(self, operation: Operation, context: Context, time: float) -> None:
        """Stage a front end's own operation (it must already be applied to its state)."""
        if isinstance(operation, LedgerOperation | Init):
            raise InputError("op", f"{operation.op!r} is the ledger's own operation")
        self._staged.append(_entry(operation, context, time))

    def archive(self, record: Archived) -> None:
        """Stage a front end's final record of something it forgets; it is written with
        the operations staged so far (the one that forgot it among them)."""
        self._archived.append(record)

    @property
    def staged(self) -> int:
        return len(self._staged)

    def commit(self) -> list[Entry]:
        """Append everything staged in one transaction. On failure the in-memory state
        is rebuilt from the journal (what was staged is lost) and the error raised."""
        staged, self._staged = self._staged, []
        archived, self._archived = self._archived, []
        try:
            stored = self.journal.append(staged, archived)
        except Exception:
            self._reload()
            raise
        self._since_snapshot += len(stored)
        if self._since_snapshot >= self.snapshot_every:
            self.snapshot()
        return stored

    def snapshot(self) -> None:
        """Save the whole state as of the last committed row."""
        if self._staged:
            raise InputError("snapshot", "commit the staged operations first")
        seq = self.journal.last_seq
        if self.journal.latest_snapshot_seq() < seq:
            self.journal.save_snapshot(
                seq, encode_snapshot(self.engine.ledger, self.state), SNAPSHOT_FORMAT
            )
        self._since_snapshot = 0

    def _heard(self, operation: LedgerOperation) -> None:
        self._staged.append(_entry(operation, self._context, self._time))

    def _reload(self) -> None:
        ledger, _ = recover(self.journal, self.state)
        assert ledger is not None, "the journal lost its init row"
        old = self.engine
        self.engine = Engine(ledger, old.unlocking, old.policy, old.options)
        ledger.listener = self._heard


def recover(journal: Journal, state: FrontEndState) -> tuple[Ledger | None, int]:
    """The ledger (and the front end's state) after the journal's last row: the latest
    snapshot, then every later row replayed. (None, 0) for an empty journal. Also
    returns how many rows were replayed."""
    snapshot = journal.latest_snapshot()
    state.reset()
    ledger: Ledger | None = None
    after = 0
    if snapshot is not None:
        after, form, blob = snapshot
        if form != SNAPSHOT_FORMAT:
            raise InputError("journal", f"snapshot {after} has unknown format {form!r}")
        ledger = decode_snapshot(blob, state)
    replayed = 0
    for entry in journal.scan(after):
        replayed += 1
        operation = operation_of(entry)
        if isinstance(operation, Init):
            ledger = Ledger(Accounting.from_dict(operation.accounting))
        elif isinstance(operation, LedgerOperation):
            if ledger is None:
                raise InputError("journal", f"row {entry.seq}: {entry.op} before init")
            replay(ledger, operation)
        else:
            state.restore(operation)
    if ledger is not None:
        state.recovered(ledger)
    return ledger, replayed


def encode_snapshot(ledger: Ledger, state: FrontEndState) -> bytes:
    """A snapshot: the ledger's arrays and the front end's state, as one npz file."""
    arrays = snapshot.to_arrays(ledger)
    extra = json.dumps(state.snapshot(), sort_keys=True, allow_nan=False).encode()
    arrays["front_end"] = np.frombuffer(extra, dtype=np.uint8)
    arrays.update({f"front_end.{k}": v for k, v in state.snapshot_arrays().items()})
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def decode_snapshot(blob: bytes, state: FrontEndState) -> Ledger:
    with np.load(io.BytesIO(blob)) as data:
        arrays = {name: data[name] for name in data.files}
    extra = json.loads(bytes(arrays.pop("front_end")))
    mine = {k: arrays.pop(k) for k in list(arrays) if k.startswith("front_end.")}
    state.load(extra, {k.removeprefix("front_end."): v for k, v in mine.items()})
    return snapshot.from_arrays(arrays)


def operation_of(entry: Entry) -> Operation:
    """The record a journal row holds (the row named if it holds none)."""
    try:
        return decode(entry.op, entry.args)
    except InputError as exc:
        raise InputError("journal", f"row {entry.seq}: {exc.field}: {exc.reason}") from None


def _entry(operation: Operation, context: Context, time: float) -> Entry:
    op, args = encode(operation)
    return Entry(
        op=op,
        args=args,
        time=time,
        tenant=context.tenant,
        actor=context.actor,
        request_id=context.request_id,
    )
