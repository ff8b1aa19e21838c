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
    """Pending claims in submission order; claim i owns entries indptr[i]:indptr[i+1]."""

    claims: tuple[Claim, ...]
    weights: np.ndarray
    arrival: np.ndarray
    deadline: np.ndarray
    """arrival + timeout, inf for claims that wait forever."""
    indptr: np.ndarray
    entry_block: np.ndarray
    entry_demand: np.ndarray

    @property
    def n(self) -> int:
        return len(self.claims)

    def subset(self, keep: np.ndarray) -> PendingArrays:
        """The claims where `keep` (a boolean mask over claims) is true."""
        counts = np.diff(self.indptr)
        entry_keep = np.repeat(keep, counts)
        index = np.flatnonzero(keep)
        return PendingArrays(
            claims=tuple(self.claims[i] for i in index),
            weights=self.weights[keep],
            arrival=self.arrival[keep],
            deadline=self.deadline[keep],
            indptr=np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64),
            entry_block=self.entry_block[entry_keep],
            entry_demand=self.entry_demand[entry_keep],
        )


def _empty(dims: int) -> PendingArrays:
    return PendingArrays(
        claims=(),
        weights=np.zeros(0),
        arrival=np.zeros(0),
        deadline=np.zeros(0),
        indptr=np.zeros(1, dtype=np.int64),
        entry_block=np.zeros(0, dtype=np.int64),
        entry_demand=np.zeros((0, dims)),
    )


def _stack(claims: list[Claim], dims: int) -> PendingArrays:
    if not claims:
        return _empty(dims)
    counts = np.array([c.block_index.size for c in claims], dtype=np.int64)
    return PendingArrays(
        claims=tuple(claims),
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
        claims=first.claims + second.claims,
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
        self._removed: set[str] = set()

    def add(self, claim: Claim) -> None:
        self._added.append(claim)

    def remove(self, claim_id: str) -> None:
        self._removed.add(claim_id)

    def arrays(self) -> PendingArrays:
        current = self._arrays
        if self._removed:
            keep = np.array([c.id not in self._removed for c in current.claims], dtype=bool)
            current = current.subset(keep)
            added = [c for c in self._added if c.id not in self._removed]
        else:
            added = self._added
        self._arrays = _concat(current, _stack(added, self._dims))
        self._added, self._removed = [], set()
        return self._arrays
