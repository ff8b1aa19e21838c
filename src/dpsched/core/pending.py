"""The pending claims as one CSR array set, kept up to date as claims come and go.

A scheduling step needs every pending claim's demand as flat arrays. Rebuilding
them from tens of thousands of per-claim arrays at every step dominated online
runs, so the ledger keeps them here: arrivals are buffered and appended once per
read, and departures are dropped with one vectorised mask at the next read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpsched.core.claims import Claim


@dataclass(frozen=True, eq=False)
class PendingArrays:
    """Pending claims in submission order; claim i owns entries indptr[i]:indptr[i+1].

    `claims` and `ids` are object arrays so that subsets are one numpy take.
    """

    claims: np.ndarray
    ids: np.ndarray
    seq: np.ndarray
    """Submission sequence numbers: stable keys for removing claims."""
    weights: np.ndarray
    arrival: np.ndarray
    deadline: np.ndarray
    """arrival + timeout, inf for claims that wait forever."""
    indptr: np.ndarray
    entry_block: np.ndarray
    entry_demand: np.ndarray

    @property
    def n(self) -> int:
        return int(self.claims.size)

    def subset(self, keep: np.ndarray) -> PendingArrays:
        """The claims where `keep` (a boolean mask over claims) is true."""
        counts = np.diff(self.indptr)
        entry_keep = np.repeat(keep, counts)
        return PendingArrays(
            claims=self.claims[keep],
            ids=self.ids[keep],
            seq=self.seq[keep],
            weights=self.weights[keep],
            arrival=self.arrival[keep],
            deadline=self.deadline[keep],
            indptr=np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64),
            entry_block=self.entry_block[entry_keep],
            entry_demand=self.entry_demand[entry_keep],
        )


def _empty(dims: int) -> PendingArrays:
    return PendingArrays(
        claims=np.empty(0, dtype=object),
        ids=np.empty(0, dtype=object),
        seq=np.zeros(0, dtype=np.int64),
        weights=np.zeros(0),
        arrival=np.zeros(0),
        deadline=np.zeros(0),
        indptr=np.zeros(1, dtype=np.int64),
        entry_block=np.zeros(0, dtype=np.int64),
        entry_demand=np.zeros((0, dims)),
    )


def _stack(claims: list[Claim], seq: list[int], dims: int) -> PendingArrays:
    if not claims:
        return _empty(dims)
    counts = np.array([c.block_index.size for c in claims], dtype=np.int64)
    objects = np.empty(len(claims), dtype=object)
    objects[:] = claims
    ids = np.empty(len(claims), dtype=object)
    ids[:] = [c.id for c in claims]
    return PendingArrays(
        claims=objects,
        ids=ids,
        seq=np.asarray(seq, dtype=np.int64),
        weights=np.array([c.weight for c in claims], dtype=float),
        arrival=np.array([c.arrival for c in claims], dtype=float),
        deadline=np.array(
            [np.inf if c.deadline is None else c.deadline for c in claims], dtype=float
        ),
        indptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        entry_block=np.concatenate([c.block_index for c in claims]),
        entry_demand=np.vstack([c.demand for c in claims]),
    )


def _concat(first: PendingArrays, second: PendingArrays) -> PendingArrays:
    if first.n == 0:
        return second
    if second.n == 0:
        return first
    return PendingArrays(
        claims=np.concatenate([first.claims, second.claims]),
        ids=np.concatenate([first.ids, second.ids]),
        seq=np.concatenate([first.seq, second.seq]),
        weights=np.concatenate([first.weights, second.weights]),
        arrival=np.concatenate([first.arrival, second.arrival]),
        deadline=np.concatenate([first.deadline, second.deadline]),
        indptr=np.concatenate([first.indptr, second.indptr[1:] + first.indptr[-1]]),
        entry_block=np.concatenate([first.entry_block, second.entry_block]),
        entry_demand=np.vstack([first.entry_demand, second.entry_demand]),
    )


class PendingIndex:
    """Incrementally maintained `PendingArrays` of the ledger's pending claims."""

    def __init__(self, dims: int) -> None:
        self._dims = dims
        self._arrays = _empty(dims)
        self._added: list[Claim] = []
        self._removed: list[int] = []
        self._seq: dict[str, int] = {}
        self._next = 0

    def add(self, claim: Claim) -> None:
        self._seq[claim.id] = self._next
        self._next += 1
        self._added.append(claim)

    def remove(self, claim_id: str) -> None:
        self._removed.append(self._seq.pop(claim_id))

    def arrays(self) -> PendingArrays:
        if not self._removed and not self._added:
            return self._arrays
        current = self._arrays
        removed = np.asarray(self._removed, dtype=np.int64)
        if removed.size:
            current = current.subset(~np.isin(current.seq, removed))
        added = [c for c in self._added if c.id in self._seq]
        fresh = _stack(added, [self._seq[c.id] for c in added], self._dims)
        self._arrays = _concat(current, fresh)
        self._added, self._removed = [], []
        return self._arrays
