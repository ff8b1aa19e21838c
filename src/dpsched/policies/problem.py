"""The array form of one scheduling decision, shared by every policy.

Demands are sparse over blocks (a claim reads a few of many blocks), so they are
kept in CSR layout: claim i's entries are rows indptr[i]:indptr[i+1] of
`entry_block` (block index) and `entry_demand` (one value per dimension).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from dpsched.core.admission import csr_claims_fit
from dpsched.errors import InputError
from dpsched.policies.round import Lent


class KnapsackLanes(Protocol):
    """DPack's per-block knapsacks kept up to date as claims leave and budget shrinks
    (`lanes.SortedLanes`, `lanes.StepLanes`)."""

    def remove(self, claims: np.ndarray) -> None:
        """The problem's claims `claims` leave every lane they are in."""

    def shrink(self, blocks: np.ndarray, available: np.ndarray) -> None:
        """The blocks' budget went down to `available`."""

    def grow(self, blocks: np.ndarray, available: np.ndarray) -> None:
        """Claims left the blocks without taking budget."""

    def best(self, available: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """Per block, the open order whose knapsack packs the most weight (NO_ORDER: none)."""
        ...


@dataclass(frozen=True, eq=False)
class Problem:
    """Pending claims x blocks x dimensions, with the budget each block can give now.

    `available` is what may be allocated now (the ledger's unlocked budget);
    `capacity` is each block's total capacity (DPF's share denominator; orders with
    zero capacity are unusable).
    """

    ids: tuple[str, ...]
    weights: np.ndarray
    arrival: np.ndarray
    indptr: np.ndarray
    entry_block: np.ndarray
    entry_demand: np.ndarray
    available: np.ndarray
    capacity: np.ndarray
    fit: np.ndarray | None = None
    """Optional mask of claims known to fit `available` on their own, when whoever built
    the problem has already computed it (see `fits_available`)."""
    entry_reserved: np.ndarray | None = None
    """Optional (entries x dimensions) budget already set aside for each entry's claim
    (round robin); None means nothing is reserved."""
    seq: np.ndarray | None = None
    """Optional submission sequence number per claim (file order offline, arrival
    sequence online); None means the claims are listed in submission order."""
    kept: Lent | None = None
    """Optional memory the policy kept from earlier rounds, lent for this one
    (`RoundNeeds.memory`); only the policy that made it reads it."""

    def __post_init__(self) -> None:
        n = len(self.ids)
        if (
            self.weights.shape != (n,)
            or self.arrival.shape != (n,)
            or self.indptr.shape != (n + 1,)
        ):
            raise InputError(
                "problem", "weights, arrival and indptr must match the number of claims"
            )
        if self.available.shape != self.capacity.shape:
            raise InputError("problem", "available and capacity must have the same shape")
        if self.entry_demand.shape != (self.entry_block.size, self.dims):
            raise InputError("problem", "entry_demand must be (entries x dimensions)")
        if (np.diff(self.indptr) <= 0).any():
            raise InputError("problem", "every claim must request at least one block")
        if self.entry_reserved is not None and self.entry_reserved.shape != self.entry_demand.shape:
            raise InputError("problem", "entry_reserved must be shaped like entry_demand")
        if self.seq is not None and self.seq.shape != (n,):
            raise InputError("problem", "seq must match the number of claims")

    @classmethod
    def from_dense(
        cls,
        demand: np.ndarray,
        available: np.ndarray,
        *,
        capacity: np.ndarray | None = None,
        weights: Sequence[float] | None = None,
        arrival: Sequence[float] | None = None,
        ids: Sequence[str] | None = None,
    ) -> Problem:
        """From a (claims x blocks x dims) tensor; a block is requested where any entry > 0.

        Convenient for small examples and tests; real workloads build the CSR directly.
        """
        demand = np.asarray(demand, dtype=float)
        if demand.ndim == 2:
            demand = demand[:, :, None]
        available = np.asarray(available, dtype=float).reshape(demand.shape[1], demand.shape[2])
        n = demand.shape[0]
        requested = (demand != 0).any(axis=2)
        counts = requested.sum(axis=1)
        task, block = np.nonzero(requested)
        return cls(
            ids=tuple(ids) if ids is not None else tuple(f"t{i}" for i in range(n)),
            weights=np.ones(n) if weights is None else np.asarray(weights, dtype=float),
            arrival=np.arange(n, dtype=float)
            if arrival is None
            else np.asarray(arrival, dtype=float),
            indptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            entry_block=block.astype(np.int64),
            entry_demand=demand[task, block],
            available=available,
            capacity=available.copy() if capacity is None else np.asarray(capacity, dtype=float),
        )

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def m(self) -> int:
        return int(self.available.shape[0])

    @property
    def dims(self) -> int:
        return int(self.available.shape[1])

    @cached_property
    def entry_task(self) -> np.ndarray:
        return np.repeat(np.arange(self.n), np.diff(self.indptr))

    @cached_property
    def fits_available(self) -> np.ndarray:
        """Claims that fit `available` on their own: the only ones any policy can grant."""
        if self.fit is not None:
            return self.fit
        return csr_claims_fit(
            self.indptr, self.entry_block, self.entry_demand, self.available, self.usable
        )

    @cached_property
    def entries_by_block(self) -> np.ndarray:
        """Entry indices grouped by block (stable), for per-block passes."""
        return np.argsort(self.entry_block, kind="stable")

    @cached_property
    def usable(self) -> np.ndarray:
        return self.capacity > 0

    @cached_property
    def tie_rank(self) -> np.ndarray:
        """Each claim's position in (arrival, submission) order: every policy's final
        tie-break. Submission order, not the id, is what users and the DPack artifact
        expect: ids compared as strings would serve `t10` before `t2`."""
        submitted = np.arange(self.n) if self.seq is None else self.seq
        order = np.lexsort((submitted, self.arrival))
        rank = np.empty(self.n, dtype=np.int64)
        rank[order] = np.arange(self.n)
        return rank

    def task_entries(self, task: int) -> slice:
        return slice(int(self.indptr[task]), int(self.indptr[task + 1]))
