"""The pending claims as one CSR array set, kept up to date as claims come and go.

A scheduling step needs every pending claim's demand as flat arrays. Rebuilding
them from tens of thousands of per-claim arrays at every step dominated online
runs, so the ledger keeps them here: arrivals are buffered and appended once per
read, and departures only clear an `alive` flag. Copying out the survivors costs
as much as a whole fit check, so it happens once departed claims are half of the
arrays (amortised), or when a caller asks for the compact `arrays()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from dpsched.core.claims import Claim, ClaimBatch
from dpsched.core.fit_hints import FitHints
from dpsched.core.ranges import rows_of


@dataclass(frozen=True, eq=False)
class PendingArrays:
    """Pending claims in submission order; claim i owns entries indptr[i]:indptr[i+1].

    `claims` and `ids` are object arrays so that subsets are one numpy take.
    """

    claims: np.ndarray
    ids: np.ndarray
    seq: np.ndarray
    """Sequence numbers of joining this index: stable keys for removing claims."""
    submitted: np.ndarray
    """Each claim's `Claim.submitted`: a flexible claim that waited aside re-joins the
    index at its end but keeps its place in submission order."""
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
        """The claims where `keep` (a boolean mask over claims) is true.

        Costs in proportion to what is kept: steps take small subsets of large arrays."""
        chosen = np.flatnonzero(keep)
        entries = self.entries_of(chosen)
        lengths = np.diff(self.indptr)[chosen]
        return PendingArrays(
            claims=self.claims[chosen],
            ids=self.ids[chosen],
            seq=self.seq[chosen],
            submitted=self.submitted[chosen],
            weights=self.weights[chosen],
            arrival=self.arrival[chosen],
            deadline=self.deadline[chosen],
            indptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            entry_block=self.entry_block[entries],
            entry_demand=self.entry_demand[entries],
        )

    def entries_of(self, claims: np.ndarray) -> np.ndarray:
        """Entry indices of the given claims (indices, in order), concatenated."""
        return rows_of(self.indptr, claims)

    @classmethod
    def of_batch(
        cls, batch: ClaimBatch, claims: list[Claim], demand: np.ndarray, keep: np.ndarray
    ) -> PendingArrays:
        """The kept claims of a batch as pending arrays (sequence numbers assigned on add)."""
        counts = np.diff(batch.indptr)[keep]
        if keep.size == len(claims):
            entry_block, entry_demand = batch.block_index, demand  # shared, read-only
        else:
            offsets = np.cumsum(counts) - counts
            entries = np.repeat(batch.indptr[keep] - offsets, counts) + np.arange(int(counts.sum()))
            entry_block, entry_demand = batch.block_index[entries], demand[entries]
        objects = np.empty(keep.size, dtype=object)
        objects[:] = [claims[i] for i in keep.tolist()]
        ids = np.empty(keep.size, dtype=object)
        ids[:] = [c.id for c in objects]
        timeout = batch.timeout[keep]
        return cls(
            claims=objects,
            ids=ids,
            seq=np.zeros(keep.size, dtype=np.int64),
            submitted=np.fromiter((c.submitted for c in objects), np.int64, keep.size),
            weights=batch.weight[keep].astype(float),
            arrival=batch.arrival[keep].astype(float),
            deadline=np.where(np.isnan(timeout), np.inf, batch.arrival[keep] + timeout),
            indptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            entry_block=entry_block,
            entry_demand=entry_demand,
        )


def _empty(dims: int) -> PendingArrays:
    return PendingArrays(
        claims=np.empty(0, dtype=object),
        ids=np.empty(0, dtype=object),
        seq=np.zeros(0, dtype=np.int64),
        submitted=np.zeros(0, dtype=np.int64),
        weights=np.zeros(0),
        arrival=np.zeros(0),
        deadline=np.zeros(0),
        indptr=np.zeros(1, dtype=np.int64),
        entry_block=np.zeros(0, dtype=np.int64),
        entry_demand=np.zeros((0, dims)),
    )


def stacked(claims: list[Claim], seq: list[int], dims: int) -> PendingArrays:
    """Claims as CSR arrays (their own rows, stacked in order)."""
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
        submitted=np.array([c.submitted for c in claims], dtype=np.int64),
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
        submitted=np.concatenate([first.submitted, second.submitted]),
        weights=np.concatenate([first.weights, second.weights]),
        arrival=np.concatenate([first.arrival, second.arrival]),
        deadline=np.concatenate([first.deadline, second.deadline]),
        indptr=np.concatenate([first.indptr, second.indptr[1:] + first.indptr[-1]]),
        entry_block=np.concatenate([first.entry_block, second.entry_block]),
        entry_demand=np.vstack([first.entry_demand, second.entry_demand]),
    )


@dataclass(frozen=True, eq=False)
class PendingView:
    """Pending claims with departed ones possibly still in place (`alive` false): what a
    scheduling step reads, without paying for a copy after every departure."""

    arrays: PendingArrays
    alive: np.ndarray
    joins: np.ndarray
    """Per block, how many claims reading it have joined the index so far (blocks beyond
    the end: none). With `leaves`, what lets a structure kept across steps (DPack's
    `PendingLanes`) rebuild or update only the blocks whose pending claims changed."""
    leaves: np.ndarray
    """Per block, how many claims reading it have left the index so far."""


def _bump(counter: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """`counter` plus one per occurrence in `blocks`, grown to cover them (a new array:
    views handed out stay unchanged)."""
    if blocks.size == 0:
        return counter
    added = np.bincount(blocks, minlength=counter.size)
    grown: np.ndarray = added
    grown[: counter.size] += counter
    return grown


class PendingIndex:
    """Incrementally maintained `PendingArrays` of the ledger's pending claims."""

    def __init__(self, dims: int) -> None:
        self._dims = dims
        self._arrays = _empty(dims)
        self._alive = np.zeros(0, dtype=bool)
        self.hints = FitHints.unknown(0, 0)
        """Fit thresholds aligned with the entries of the current arrays (`core.fitting`)."""
        self._added: list[Claim] = []
        self._removed: list[int] = []
        self._seq: dict[str, int] = {}
        self._next = 0
        self._joins = np.zeros(0, dtype=np.int64)
        self._leaves = np.zeros(0, dtype=np.int64)

    def add(self, claim: Claim) -> None:
        self._seq[claim.id] = self._next
        self._next += 1
        self._added.append(claim)

    def add_many(self, arrays: PendingArrays) -> None:
        """Append claims already stacked as arrays (a bulk submission), after every
        claim added before; their `seq` is assigned here."""
        self._sync()
        seq = np.arange(self._next, self._next + arrays.n, dtype=np.int64)
        self._next += arrays.n
        self._seq.update(zip(arrays.ids.tolist(), seq.tolist(), strict=True))
        fresh = replace(arrays, seq=seq)
        self._joins = _bump(self._joins, fresh.entry_block)
        self._arrays = _concat(self._arrays, fresh)
        self.hints = self.hints.extend(FitHints.unknown(fresh.n, fresh.entry_block.size))
        self._alive = np.concatenate([self._alive, np.ones(fresh.n, dtype=bool)])

    def remove(self, claim_id: str) -> None:
        """Take the claim out (if it is in: a flexible claim matching no block is not)."""
        seq = self._seq.pop(claim_id, None)
        if seq is not None:
            self._removed.append(seq)

    def view(self) -> PendingView:
        self._sync()
        return PendingView(self._arrays, self._alive, self._joins, self._leaves)

    def arrays(self) -> PendingArrays:
        self._sync()
        if not self._alive.all():
            self._compact()
        return self._arrays

    def _sync(self) -> None:
        if not self._removed and not self._added:
            return
        seq = self._arrays.seq
        if self._removed and seq.size:
            removed = np.asarray(self._removed, dtype=np.int64)
            position = np.minimum(np.searchsorted(seq, removed), seq.size - 1)
            present = position[seq[position] == removed]
            if present.size:
                self._alive = self._alive.copy()  # views handed out stay unchanged
                self._alive[present] = False
                self._leaves = _bump(
                    self._leaves, self._arrays.entry_block[self._arrays.entries_of(present)]
                )
        added = [c for c in self._added if c.id in self._seq]
        if added:
            fresh = stacked(added, [self._seq[c.id] for c in added], self._dims)
            self._joins = _bump(self._joins, fresh.entry_block)
            self._arrays = _concat(self._arrays, fresh)
            self.hints = self.hints.extend(FitHints.unknown(fresh.n, fresh.entry_block.size))
            self._alive = np.concatenate([self._alive, np.ones(fresh.n, dtype=bool)])
        self._added, self._removed = [], []
        if 2 * int(self._alive.sum()) < self._alive.size:
            self._compact()

    def forget_hints(self) -> None:
        """Thresholds are lower bounds only while spent budget grows; a release breaks that."""
        self.hints = FitHints.unknown(self._arrays.n, self.hints.theta.size)

    def _compact(self) -> None:
        entry_keep = np.repeat(self._alive, np.diff(self._arrays.indptr))
        self.hints = self.hints.subset(self._alive, entry_keep)
        self._arrays = self._arrays.subset(self._alive)
        self._alive = np.ones(self._arrays.n, dtype=bool)


class PendingSet:
    """The pending claims in submission order, and the one place claims join and leave.

    A pending claim is in the index policies read (`PendingIndex`), unless it is a
    flexible claim with no valid block choice now: it then waits *aside*, where no
    policy can grant it on the blocks it is shown with. Pending flexible claims are
    also listed apart, as every round re-chooses their blocks. Every transition goes
    through `join`, `leave` or `move`, so the four never disagree.
    """

    def __init__(self, dims: int) -> None:
        self.index = PendingIndex(dims)
        self._ids: dict[str, None] = {}
        self._flexible: dict[str, None] = {}
        self._aside: dict[str, None] = {}

    def __contains__(self, claim_id: object) -> bool:
        return claim_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        """Pending claim ids in submission order."""
        return list(self._ids)

    @property
    def flexible(self) -> list[str]:
        return list(self._flexible)

    @property
    def aside(self) -> list[str]:
        """The flexible claims waiting aside, in the order they went there."""
        return list(self._aside)

    def waits_aside(self, claim_id: str) -> bool:
        return claim_id in self._aside

    def join(self, claim: Claim, *, aside: bool = False) -> None:
        self._note(claim, aside)
        if not aside:
            self.index.add(claim)

    def join_many(self, claims: list[Claim], arrays: PendingArrays, aside: set[str]) -> None:
        """Claims joining together: `arrays` stacks those not `aside`, in order."""
        for claim in claims:
            self._note(claim, claim.id in aside)
        if arrays.n:
            self.index.add_many(arrays)

    def restore(self, claims: list[Claim], aside: Sequence[str]) -> None:
        """The pending claims of a restored ledger, in submission order, and those of
        them that waited aside, in the order they went there."""
        waiting = set(aside)
        for claim in claims:
            self._note(claim, aside=False)
            if claim.id not in waiting:
                self.index.add(claim)
        self._aside = dict.fromkeys(c for c in aside if c in self._ids)

    def move(self, claim: Claim, *, aside: bool) -> None:
        """A flexible claim's blocks changed: it re-enters the index, or waits aside
        (keeping its place there if it already waited)."""
        self.index.remove(claim.id)
        if aside:
            self._aside[claim.id] = None
        else:
            self._aside.pop(claim.id, None)
            self.index.add(claim)

    def leave(self, claim_id: str) -> None:
        del self._ids[claim_id]
        self._flexible.pop(claim_id, None)
        self._aside.pop(claim_id, None)
        self.index.remove(claim_id)

    def _note(self, claim: Claim, aside: bool) -> None:
        self._ids[claim.id] = None
        if claim.flex is not None:
            self._flexible[claim.id] = None
        if aside:
            self._aside[claim.id] = None
