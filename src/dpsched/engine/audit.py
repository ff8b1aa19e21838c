"""`dpsched audit verify`: the journal checked from its first row to its last.

The journal is the audit log. Verification recomputes every row's hash from the one
before (an edited, deleted or reordered row breaks the chain there), replays every
ledger operation on a fresh ledger, and checks the budget invariant (every block keeps
an order within capacity; the budget parts add up) after each one. It reports the
first row that fails, or how many rows were verified.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpsched.budget import Accounting
from dpsched.core import Ledger
from dpsched.core.records import Init, LedgerOperation, Operation, decode
from dpsched.core.replay import replay
from dpsched.engine.journal import GENESIS, Journal, chained
from dpsched.errors import DpschedError


@dataclass(frozen=True)
class AuditReport:
    rows: int
    """Rows verified (all of them when `ok`)."""
    ok: bool
    bad_row: int | None = None
    problem: str | None = None


def verify(journal: Journal) -> AuditReport:
    previous = GENESIS
    expected = 0
    ledger: Ledger | None = None
    for entry in journal.scan():
        expected += 1
        if entry.seq != expected:
            return AuditReport(expected - 1, False, entry.seq, f"row {expected} is missing")
        if chained(previous, entry) != entry.hash:
            return AuditReport(expected - 1, False, entry.seq, "hash does not chain")
        previous = entry.hash
        kind = Operation.kinds.get(entry.op)
        if kind is None or not issubclass(kind, LedgerOperation | Init):
            continue  # a front end's own operation: its hash is all there is to check
        try:
            operation = decode(entry.op, entry.args)
            if isinstance(operation, Init):
                ledger = Ledger(Accounting.from_dict(operation.accounting))
            elif isinstance(operation, LedgerOperation):
                if ledger is None:
                    return AuditReport(expected - 1, False, entry.seq, "operation before init")
                replay(ledger, operation)
                problems = ledger.invariant_violations()
                if problems:
                    return AuditReport(expected - 1, False, entry.seq, "; ".join(problems))
        except (DpschedError, KeyError, TypeError, ValueError) as exc:
            return AuditReport(expected - 1, False, entry.seq, f"cannot replay: {exc}")
    return AuditReport(expected, True)
