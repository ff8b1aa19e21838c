"""What the writer's operations work on, and where a claim is found.

`Books` are the durable engine (the ledger and its journal) and the service's own state
beside it (tenants, the body of each claim). Only the writer thread reads or changes
them. `Call` is one operation as the writer applies it: the books, the writer's clock,
and the caller it authenticated for this very job.

A claim lives in memory until it has been finished for longer than the retention, then
in the journal's archive as its final record; `Books.lookup` finds it in either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dpsched.core import Claim, Ledger
from dpsched.engine.durable import Context, DurableEngine
from dpsched.engine.journal import Archived
from dpsched.service.auth import Caller
from dpsched.service.errors import ApiError
from dpsched.service.state import ClaimMeta, ServiceState, ledger_id
from dpsched.service.views import claim_view

Found = tuple[ClaimMeta, Claim] | Archived
"""A claim in memory (who submitted it, and the ledger's claim), or its final record."""


@dataclass(frozen=True)
class Books:
    durable: DurableEngine
    state: ServiceState

    @property
    def ledger(self) -> Ledger:
        return self.durable.engine.ledger

    def lookup(self, key: str) -> Found | None:
        """A claim in memory, or its final record if it was forgotten, or None."""
        meta = self.state.claims.get(key)
        if meta is not None:
            return meta, self.ledger.claim(key)
        if not self.state.archived.might_hold(key):
            return None  # the common case, a new id: no database read
        return self.durable.journal.archived(key)


@dataclass(frozen=True)
class Call:
    books: Books
    now: float
    caller: Caller

    @property
    def ledger(self) -> Ledger:
        return self.books.ledger

    def key(self, claim_id: str) -> str:
        """The ledger's id of the caller's claim `claim_id` (ids are per tenant)."""
        return ledger_id(self.caller.owner, claim_id)

    def context(self, request_id: str | None = None) -> Context:
        return self.caller.context(request_id)

    def owned(self, claim_id: str) -> Found:
        """The caller's claim; another tenant's is exactly as missing as a missing one."""
        found = self.books.lookup(self.key(claim_id))
        if found is None:
            raise ApiError(404, "claim", f"no claim {claim_id!r}")
        return found


def known(found: Found, ledger: Ledger) -> tuple[str, dict[str, Any]]:
    """(submitted body as canonical JSON, view) of a live or archived claim."""
    if isinstance(found, Archived):
        return found.record["body"], found.record["view"]
    meta, claim = found
    return meta.body, claim_view(ledger, meta, claim)
