"""`dpsched audit verify`: the journal checked from its first row to its last.

The journal is the audit log. Verification recomputes every row's hash from the one
before (an edited, deleted or reordered row breaks the chain there), replays every
ledger operation on a fresh ledger, and checks the budget invariant (every block keeps
an order within capacity; the budget parts add up) after each one. It reports the
first row that fails, or how many rows were verified.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpsched.core import Ledger
from dpsched.core.operations import OPERATIONS, apply
from dpsched.engine.durable import accounting_from
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
        try:
            if entry.op == "init":
                ledger = Ledger(accounting_from(entry.args["accounting"]))
            elif entry.op in OPERATIONS:
                if ledger is None:
                    return AuditReport(expected - 1, False, entry.seq, "operation before init")
                apply(ledger, entry.op, entry.args)
                problems = ledger.invariant_violations()
                if problems:
                    return AuditReport(expected - 1, False, entry.seq, "; ".join(problems))
        except (DpschedError, KeyError, TypeError, ValueError) as exc:
            return AuditReport(expected - 1, False, entry.seq, f"cannot replay: {exc}")
    return AuditReport(expected, True)
