"""What the ledger remembers of past operations: which request ids were used, for what,
and in which order claims finished.

Request ids make every operation idempotent: a retry of a request that ran is a no-op,
and an id reused for something else is refused. Claims that finished are kept in the
order they finished, so that a long-running front end can forget the oldest ones (and
the request ids used on them) after a retention period.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from dpsched.core.claims import Claim
from dpsched.errors import InputError, LedgerError


class Request(NamedTuple):
    """A tuple of strings: the garbage collector stops tracking it, which matters when a
    service holds a million of them."""

    op: str
    claim_id: str


class History:
    """Request ids by use, and finished claims in the order they finished."""

    def __init__(self) -> None:
        self.requests: dict[str, Request] = {}
        self._by_claim: dict[str, tuple[str, ...]] = {}
        """claim id -> the request ids used on it (what `drop` forgets with it)"""
        self._finished: dict[str, None] = {}

    def lookup(self, request_id: str) -> tuple[str, str] | None:
        """(operation, claim id) a request id was used for, if it was."""
        found = self.requests.get(request_id)
        return None if found is None else (found.op, found.claim_id)

    def used(self, request_id: str) -> bool:
        return request_id in self.requests

    def replayed(self, request_id: str, op: str, claim_id: str) -> bool:
        """True if this exact request already ran; refuses a reused id for something else."""
        if not request_id:
            raise InputError("request_id", "must be a non-empty string")
        previous = self.requests.get(request_id)
        if previous is None:
            return False
        if previous != Request(op, claim_id):
            raise LedgerError(
                f"request {request_id}",
                f"already used for {previous.op} of claim {previous.claim_id}",
            )
        return True

    def remember(self, request_id: str, op: str, claim_id: str) -> None:
        self.requests[request_id] = Request(op, claim_id)
        self._by_claim[claim_id] = (*self._by_claim.get(claim_id, ()), request_id)

    def finished(self, claim_id: str) -> None:
        self._finished[claim_id] = None

    def finished_before(
        self, claims: dict[str, Claim], time: float, limit: int | None = None
    ) -> list[str]:
        """Finished claims that finished at or before `time`, in the order they finished
        (the first `limit` of them)."""
        due: list[str] = []
        for claim_id in self._finished:
            finished_at = claims[claim_id].finished_at
            if finished_at is None or finished_at > time or len(due) == limit:
                break
            due.append(claim_id)
        return due

    def drop(self, claim_id: str) -> tuple[str, ...]:
        """Forget a finished claim and the request ids used on it (returned)."""
        del self._finished[claim_id]
        request_ids = self._by_claim.pop(claim_id, ())
        for request_id in request_ids:
            del self.requests[request_id]
        return request_ids

    @classmethod
    def restored(cls, requests: Iterable[tuple[str, str, str]], claims: Iterable[Claim]) -> History:
        """The history of a restored ledger: its (request id, op, claim id) records, and
        its claims' finishing times for the finishing order."""
        history = cls()
        for request_id, op, claim_id in requests:
            history.remember(request_id, op, claim_id)
        finished = [c for c in claims if c.finished_at is not None]
        finished.sort(key=lambda c: c.finished_at or 0.0)
        history._finished = dict.fromkeys(c.id for c in finished)
        return history
