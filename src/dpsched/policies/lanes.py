"""DPack's per-block knapsack values, kept up to date across grants instead of re-solved.

With equal weights, w^max_{j,a} (the most claims reading block j that fit what is
left of it at order a) is the count of the smallest demands whose running sum fits.
Re-solving it after every grant sorted every (block, order) "lane" again: two thirds
of a recompute-every-grant run. Here each lane is sorted once, and three numbers per
lane are kept: its boundary K (positions [0, K) of the sorted lane are the packed
prefix), the sum S and the count of the claims still pending in that prefix.

A grant only touches the lanes of the blocks the granted claim reads: its own entries
leave their lanes (taken out of S if inside the prefix), and those blocks' budget
shrinks by its demand, so a lane's boundary can only move left, one position per claim
that no longer fits. An update costs the positions it moves, not a sort. The knapsack
sees every claim still pending, as DPack's Alg. 1 defines it, fit or not.

`SortedLanes` lives for one policy run, over the claims of its problem. Online,
`PendingLanes` (DPack's `RoundNeeds.memory`, which the engine holds) lives from round
to round over every pending claim (claims arrive and leave, budget unlocks between
rounds) and is lent to each round (`StepLanes`), so a round neither sorts lanes again
nor needs the claims that do not fit in its problem.

S is kept by subtraction and addition, so it may differ from a fresh running sum in
the last ulps; a count could only differ where a sum lands within that of a capacity
plus the 1e-9 slack, which the tests' random instances and the papers' workloads
never do.
"""

from __future__ import annotations

import numpy as np

from dpsched.core import Ledger, PendingArrays, PendingView
from dpsched.core.admission import TOLERANCE
from dpsched.core.fitting import PendingFit
from dpsched.core.ranges import concat_ranges, rows_of
from dpsched.policies.problem import Problem

NO_ORDER = -1


class LaneStore:
    """Sorted lanes laid out flat, with each lane's boundary, prefix sum and count.

    Lane l holds its values in ascending order at flat positions
    [lane_start[l], lane_end[l]); positions below lane_start[l] + boundary[l] form the
    packed prefix, whose active values sum to `sum[l]` and number `count[l]`. Subclasses
    fill the arrays; the moves below keep the three numbers right as values leave and
    budgets change."""

    _values: np.ndarray
    _active: np.ndarray
    _lane_start: np.ndarray
    _lane_end: np.ndarray
    _boundary: np.ndarray
    _sum: np.ndarray
    _count: np.ndarray

    def _take_out(self, positions: np.ndarray, lanes: np.ndarray, unique: bool) -> None:
        """Values at flat `positions` (in lanes `lanes`, aligned) leave; `unique` when no
        lane appears twice, so plain fancy-index updates are exact."""
        inside = positions < self._lane_start[lanes] + self._boundary[lanes]
        self._active[positions] = False
        self._taken_out(positions)
        if unique:
            self._sum[lanes[inside]] -= self._values[positions[inside]]
            self._count[lanes[inside]] -= 1
            return
        np.subtract.at(self._sum, lanes[inside], self._values[positions[inside]])
        np.subtract.at(self._count, lanes[inside], 1)

    def _taken_out(self, positions: np.ndarray) -> None:
        """Hook: `positions` were just deactivated (a step's scratch removals log them)."""

    def _shrink(self, lanes: np.ndarray, room: np.ndarray) -> None:
        """Move each lane's boundary left until its prefix fits `room` again.

        Boundaries move a few positions, sometimes a hundred (a large claim granted past
        a lane's prefix): each pass looks at a window of positions left of every
        boundary still too far right, and the window grows until all have settled."""
        starts = self._lane_start
        over = (self._sum[lanes] > room) & (self._boundary[lanes] > 0)
        window = 8
        while over.any():
            lanes, room = lanes[over], room[over]
            boundary = self._boundary[lanes]
            steps = np.arange(1, window + 1)
            left = boundary[:, None] - steps[None, :]
            at = starts[lanes][:, None] + np.maximum(left, 0)
            active = self._active[at] & (left >= 0)
            taken = np.cumsum(np.where(active, self._values[at], 0.0), axis=1)
            settled = (self._sum[lanes][:, None] - taken <= room[:, None]) | (left <= 0)
            done = settled.any(axis=1)
            moved = np.where(done, np.argmax(settled, axis=1), window - 1)
            rows = np.arange(lanes.size)
            self._sum[lanes] -= taken[rows, moved]
            self._count[lanes] -= np.cumsum(active, axis=1)[rows, moved]
            self._boundary[lanes] = boundary - moved - 1
            emptied = lanes[self._boundary[lanes] == 0]
            self._sum[emptied] = 0.0
            over = ~done
            window *= 4

    def _grow(self, lanes: np.ndarray, room: np.ndarray) -> None:
        """Move each lane's boundary right while the next active values still fit `room`
        (the mirror of `_shrink`; a boundary settled by `_shrink` first is then exact)."""
        starts, ends = self._lane_start, self._lane_end
        under = starts[lanes] + self._boundary[lanes] < ends[lanes]
        window = 8
        last_position = max(self._values.size - 1, 0)
        while under.any():
            lanes, room = lanes[under], room[under]
            at = starts[lanes][:, None] + self._boundary[lanes][:, None] + np.arange(window)
            inside = at < ends[lanes][:, None]
            at = np.minimum(at, last_position)
            active = self._active[at] & inside
            added = np.cumsum(np.where(active, self._values[at], 0.0), axis=1)
            fits = (self._sum[lanes][:, None] + added <= room[:, None]) & inside
            moved = fits.sum(axis=1)  # running sums only grow: the fitting steps come first
            rows = np.arange(lanes.size)
            last = np.maximum(moved - 1, 0)
            grew = moved > 0
            self._sum[lanes] += np.where(grew, added[rows, last], 0.0)
            self._count[lanes] += np.where(grew, np.cumsum(active, axis=1)[rows, last], 0)
            self._boundary[lanes] += moved
            under = (moved == window) & (starts[lanes] + self._boundary[lanes] < ends[lanes])
            window *= 4


class SortedLanes(LaneStore):
    """Equal-weight knapsack counts per (block, order), for every claim still pending."""

    def __init__(
        self,
        problem: Problem,
        available: np.ndarray,
        needed: np.ndarray | None = None,
        pending: np.ndarray | None = None,
    ) -> None:
        """`needed`: a mask of the blocks whose best orders will be asked for (default
        all); the others' lanes are left unsorted, full of inf, and count nothing.
        `pending`: a mask of the claims still pending (default all)."""
        dims, m = problem.dims, problem.m
        self._problem = problem
        self._dims = dims
        self._weight = float(problem.weights[0]) if problem.n else 1.0
        by_block = problem.entries_by_block
        counts = np.bincount(problem.entry_block, minlength=m)
        block_start = np.concatenate([[0], np.cumsum(counts)])
        # Lane (j, a) holds block j's entries sorted by their demand at order a, at flat
        # positions lane_start[j, a] + [0, counts[j]).
        self._lane_start = (
            (dims * block_start[:-1])[:, None] + np.arange(dims)[None, :] * counts[:, None]
        ).ravel()
        self._lane_end = self._lane_start + np.repeat(counts, dims)
        values = problem.entry_demand[by_block]
        alive = (
            np.ones(values.shape[0], dtype=bool)
            if pending is None
            else pending[problem.entry_task[by_block]]
        )
        self._values = np.empty(values.size)
        self._active = np.empty(values.size, dtype=bool)
        self._boundary = np.zeros(m * dims, dtype=np.int64)
        self._sum = np.zeros(m * dims)
        self._count = np.zeros(m * dims, dtype=np.int64)
        rows_position = np.empty(values.shape, dtype=np.int64)
        orders = np.arange(dims)[:, None]
        for j in np.flatnonzero(counts).tolist():
            lo, hi = int(block_start[j]), int(block_start[j + 1])
            lanes = np.ascontiguousarray(values[lo:hi].T)  # (orders x claims): rows sort fast
            # An order closed now (unusable, or nothing left) stays closed while the step
            # runs and is never a best order: its lane is left unsorted, full of inf.
            shut = ~(problem.usable[j] & (available[j] > TOLERANCE))
            if needed is not None and not needed[j]:
                shut[:] = True
            lanes[shut] = np.inf
            rank = np.tile(np.arange(hi - lo), (dims, 1))
            rank[~shut] = np.argsort(lanes[~shut], axis=1)  # ties: equal values, equal sums
            ranked = lanes[orders, rank]
            active = alive[lo:hi][rank]
            base = dims * lo
            self._values[base : base + lanes.size] = ranked.ravel()
            self._active[base : base + lanes.size] = active.ravel()
            inverse = np.empty_like(rank)
            inverse[orders, rank] = np.arange(hi - lo)
            rows_position[lo:hi] = (base + orders * (hi - lo) + inverse).T
            # The boundaries as a fresh knapsack would have them: running sums that fit.
            running = np.cumsum(np.where(active, ranked, 0.0), axis=1)
            boundary = (running <= available[j][:, None] + TOLERANCE).sum(axis=1)
            at = j * dims + np.arange(dims)
            self._boundary[at] = boundary
            self._sum[at] = np.where(boundary > 0, running[orders[:, 0], boundary - 1], 0.0)
            inside = np.arange(hi - lo)[None, :] < boundary[:, None]
            self._count[at] = (active & inside).sum(axis=1)
        self._position = np.empty((problem.entry_block.size, dims), dtype=np.int64)
        self._position[by_block] = rows_position
        self._pending_on_block = np.bincount(
            problem.entry_block[by_block][alive], minlength=m
        ).astype(np.int64)

    def remove(self, claims: np.ndarray) -> None:
        """The claims leave every lane they are in (granted, or dropped as hopeless)."""
        problem = self._problem
        entries = rows_of(problem.indptr, claims)
        blocks = problem.entry_block[entries]
        positions = self._position[entries].ravel()
        lanes = (blocks[:, None] * self._dims + np.arange(self._dims)[None, :]).ravel()
        # One claim reads a block once: then every lane appears once.
        self._take_out(positions, lanes, unique=claims.size == 1)
        if claims.size == 1:
            self._pending_on_block[blocks] -= 1
        else:
            np.subtract.at(self._pending_on_block, blocks, 1)

    def shrink(self, blocks: np.ndarray, available: np.ndarray) -> None:
        """After the blocks' budget went down: move each lane's boundary left until its
        prefix fits again (granting a claim lowers both its lanes' sums and budgets by
        its demand, so a boundary never needs to move right)."""
        self._shrink(*_lanes_of(blocks, available, self._dims))

    def grow(self, blocks: np.ndarray, available: np.ndarray) -> None:
        """After claims left the blocks' lanes without taking budget: move each lane's
        boundary right while the next pending claims still fit."""
        self._grow(*_lanes_of(blocks, available, self._dims))

    def counts(self) -> np.ndarray:
        """(blocks x orders): how many of the pending claims reading each block fit what
        is left of it at each order, smallest demands first (0 at the orders that were
        closed when the lanes were built)."""
        counts: np.ndarray = self._count.reshape(-1, self._dims)
        return counts

    def best(self, available: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """Per block, the open order (usable, budget left) whose knapsack packs the most
        weight, the smallest such order on ties; NO_ORDER where no claim is pending or
        no order is open."""
        values = self.counts() * self._weight
        open_orders = usable & (available > TOLERANCE)
        best = np.argmax(np.where(open_orders, values, -np.inf), axis=1)
        closed = ~open_orders.any(axis=1) | (self._pending_on_block == 0)
        return np.where(closed, NO_ORDER, best)


class PendingLanes(LaneStore):
    """The knapsack lanes of every pending claim, kept across scheduling steps.

    Online, most steps only unlock a little budget and grant a few claims, yet DPack's
    first round solved each needed block's knapsack from scratch: a sort per (block,
    order) over every pending claim reading the block, and every such claim copied
    into the step's problem; most of a step's time on long runs. Here a block's lanes
    are sorted when a step first needs the block, and again only after claims reading
    it joined; departures just leave their lanes, and each step moves the boundaries
    to the budget as it stands (unlocking moves them right, grants left). Counts are
    what `knapsack_values` finds with equal weights: per lane, the most of the smallest
    pending demands whose running sum fits.

    A block's claims are keyed by their sequence number in the ledger's pending index
    (`PendingArrays.seq`), which never changes while a claim is pending."""

    def __init__(self) -> None:
        self._owner: object | None = None
        self._reset(0, 0)

    def _reset(self, blocks: int, dims: int) -> None:
        self._dims = dims
        self._values = np.zeros(0)
        self._active = np.zeros(0, dtype=bool)
        self._member_seq = np.zeros(0, dtype=np.int64)
        self._member_key = np.zeros(0, dtype=np.int64)
        """Per member, (where its block's segment starts, sequence number) as one
        ascending number (see `_positions_of`)."""
        self._member_active = np.zeros(0, dtype=bool)
        self._member_position = np.zeros((0, dims), dtype=np.int64)
        self._log: list[np.ndarray] | None = None
        """While a step holds the lanes: the positions its removals deactivated."""
        self._lane_start = np.zeros(blocks * dims, dtype=np.int64)
        self._lane_end = np.zeros(blocks * dims, dtype=np.int64)
        self._boundary = np.zeros(blocks * dims, dtype=np.int64)
        self._sum = np.zeros(blocks * dims)
        self._count = np.zeros(blocks * dims, dtype=np.int64)
        self._member_start = np.zeros(blocks, dtype=np.int64)
        self._members = np.zeros(blocks, dtype=np.int64)
        self._departed = np.zeros(blocks, dtype=np.int64)
        self._built = np.zeros(blocks, dtype=bool)
        self._joins_seen = np.zeros(blocks, dtype=np.int64)
        self._leaves_seen = np.zeros(blocks, dtype=np.int64)

    @property
    def held(self) -> int:
        """Lane positions held, superseded builds and departed claims included."""
        return int(self._values.size)

    def lend(self, ledger: Ledger, now: PendingFit, fitting: PendingArrays) -> StepLanes | None:
        """The lanes of the blocks the fitting claims read, lent to a round (the
        `RoundMemory` of DPack): only while every pending claim weighs the same, as the
        lanes hold the equal-weight knapsack."""
        weights = now.view.arrays.weights[now.view.alive]
        if weights.min() != weights.max():
            return None
        unlocked = ledger.budget.unlocked
        needed = now.blocks_of_fitting(unlocked.shape[0])
        return self.open(ledger, now.view, needed, unlocked, fitting)

    def open(
        self,
        owner: object,
        view: PendingView,
        needed: np.ndarray,
        available: np.ndarray,
        claims: PendingArrays,
    ) -> StepLanes:
        """Bring the lanes of the `needed` blocks (a mask) up to date with every pending
        claim of `view` and with `available`, and lend them to one step whose problem
        holds `claims` (pending claims of `view` that read only needed blocks, equal
        weights). `StepLanes.close` undoes what the step did to them.

        `owner` is the ledger the view belongs to: lanes are only ever valid for one."""
        m, dims = available.shape
        if owner is not self._owner or dims != self._dims:
            self._owner = owner
            self._reset(m, dims)
        elif m > self._built.size:
            self._add_blocks(m)
        joins = _padded(view.joins, m)
        leaves = _padded(view.leaves, m)
        rebuild = needed & (~self._built | (joins != self._joins_seen))
        # A block whose lanes are mostly departed claims is cheaper sorted again.
        rebuild |= needed & self._built & (2 * self._departed > self._members)
        if rebuild.any():
            pending = int(np.diff(view.arrays.indptr)[view.alive].sum()) * dims
            if self._values.size > 2 * pending + REBUILD_SLACK:
                # Superseded builds and departed claims dominate the arrays (a long-running
                # service sees blocks come and go): start over.
                self._reset(m, dims)
                rebuild = needed.copy()
            self._build(view, np.flatnonzero(rebuild), available)
            self._joins_seen[rebuild] = joins[rebuild]
            self._leaves_seen[rebuild] = leaves[rebuild]
        left = needed & self._built & (leaves != self._leaves_seen)
        if left.any():
            self._drop_departed(view, np.flatnonzero(left))
            self._leaves_seen[left] = leaves[left]
        lanes, room = _lanes_of(np.flatnonzero(needed), available, dims)
        self._shrink(lanes, room)
        self._grow(lanes, room)
        return StepLanes(self, claims)

    def _positions_of(self, claims: PendingArrays) -> np.ndarray:
        """(entries x orders) flat lane positions of the claims' entries. Each build
        stores a block's members in sequence order after every earlier build's, so
        (segment start, sequence number) pairs ascend along the member arrays."""
        keys = np.repeat(claims.seq, np.diff(claims.indptr))
        query = self._member_start[claims.entry_block] * _KEY_SPAN + keys
        positions: np.ndarray = self._member_position[np.searchsorted(self._member_key, query)]
        return positions

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._boundary.copy(), self._sum.copy(), self._count.copy()

    def _restore(
        self, state: tuple[np.ndarray, np.ndarray, np.ndarray], taken: list[np.ndarray]
    ) -> None:
        self._log = None
        self._boundary, self._sum, self._count = state
        for positions in taken:
            self._active[positions] = True

    def _taken_out(self, positions: np.ndarray) -> None:
        if self._log is not None:
            self._log.append(positions)

    def _add_blocks(self, m: int) -> None:
        extra = m - self._built.size
        lanes = np.zeros(extra * self._dims, dtype=np.int64)
        self._lane_start = np.concatenate([self._lane_start, lanes])
        self._lane_end = np.concatenate([self._lane_end, lanes])
        self._boundary = np.concatenate([self._boundary, lanes])
        self._count = np.concatenate([self._count, lanes])
        self._sum = np.concatenate([self._sum, np.zeros(lanes.size)])
        blocks = np.zeros(extra, dtype=np.int64)
        self._member_start = np.concatenate([self._member_start, blocks])
        self._members = np.concatenate([self._members, blocks])
        self._departed = np.concatenate([self._departed, blocks])
        self._joins_seen = np.concatenate([self._joins_seen, blocks])
        self._leaves_seen = np.concatenate([self._leaves_seen, blocks])
        self._built = np.concatenate([self._built, np.zeros(extra, dtype=bool)])

    def _build(self, view: PendingView, blocks: np.ndarray, available: np.ndarray) -> None:
        """Sort the lanes of `blocks` (ascending) from the claims pending now, stored
        after everything held so far."""
        arrays, dims = view.arrays, self._dims
        wanted = np.zeros(available.shape[0], dtype=bool)
        wanted[blocks] = True
        lengths = np.diff(arrays.indptr)
        entries = np.flatnonzero(wanted[arrays.entry_block] & np.repeat(view.alive, lengths))
        entries = entries[np.argsort(arrays.entry_block[entries], kind="stable")]
        member_seq = np.repeat(arrays.seq, lengths)[entries]
        bounds = np.searchsorted(arrays.entry_block[entries], np.append(blocks, blocks[-1] + 1))
        base_member, base_value = self._member_seq.size, self._values.size
        values = np.empty(entries.size * dims)
        position = np.empty((entries.size, dims), dtype=np.int64)
        orders = np.arange(dims)[:, None]
        for k, j in enumerate(blocks.tolist()):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            n = hi - lo
            at = j * dims + np.arange(dims)
            self._lane_start[at] = base_value + dims * lo + np.arange(dims) * n
            self._lane_end[at] = self._lane_start[at] + n
            self._member_start[j], self._members[j], self._departed[j] = base_member + lo, n, 0
            if n == 0:
                self._boundary[at], self._sum[at], self._count[at] = 0, 0.0, 0
                continue
            lanes = np.ascontiguousarray(arrays.entry_demand[entries[lo:hi]].T)
            rank = np.argsort(lanes, axis=1)  # ties: equal values, equal sums
            ranked = lanes[orders, rank]
            values[dims * lo : dims * hi] = ranked.ravel()
            inverse = np.empty_like(rank)
            inverse[orders, rank] = np.arange(n)
            position[lo:hi] = (base_value + dims * lo + orders * n + inverse).T
            running = np.cumsum(ranked, axis=1)
            boundary = (running <= available[j][:, None] + TOLERANCE).sum(axis=1)
            self._boundary[at] = boundary
            self._sum[at] = np.where(boundary > 0, running[orders[:, 0], boundary - 1], 0.0)
            self._count[at] = boundary
        self._values = np.concatenate([self._values, values])
        self._active = np.concatenate([self._active, np.ones(values.size, dtype=bool)])
        self._member_seq = np.concatenate([self._member_seq, member_seq])
        segment = np.repeat(self._member_start[blocks], np.diff(bounds))
        self._member_key = np.concatenate([self._member_key, segment * _KEY_SPAN + member_seq])
        self._member_active = np.concatenate(
            [self._member_active, np.ones(entries.size, dtype=bool)]
        )
        self._member_position = np.concatenate([self._member_position, position])
        self._built[blocks] = True

    def _drop_departed(self, view: PendingView, blocks: np.ndarray) -> None:
        """Take the claims that left the index out of these blocks' lanes."""
        sizes = self._members[blocks]
        members = concat_ranges(self._member_start[blocks], sizes)
        member_block = np.repeat(blocks, sizes)
        present = self._member_active[members]
        members, member_block = members[present], member_block[present]
        keys, seq = self._member_seq[members], view.arrays.seq
        gone = np.ones(members.size, dtype=bool)
        if seq.size:
            at = np.minimum(np.searchsorted(seq, keys), seq.size - 1)
            gone = (seq[at] != keys) | ~view.alive[at]
        members, member_block = members[gone], member_block[gone]
        if members.size == 0:
            return
        self._member_active[members] = False
        np.add.at(self._departed, member_block, 1)
        lanes = (member_block[:, None] * self._dims + np.arange(self._dims)[None, :]).ravel()
        self._take_out(self._member_position[members].ravel(), lanes, unique=False)


class StepLanes:
    """`PendingLanes` lent to one step, with `SortedLanes`' interface over the step's
    problem claims: DPack takes out the claims each round removed and moves boundaries
    as budget shrinks. `close` puts every lane back as the step found it: the claims it
    granted leave the pending index anyway, and the ones it passed over stay pending."""

    def __init__(self, store: PendingLanes, claims: PendingArrays) -> None:
        self._store = store
        self._indptr = claims.indptr
        self._entry_block = claims.entry_block
        self._weight = float(claims.weights[0]) if claims.n else 1.0
        self._positions = store._positions_of(claims)
        self._state = store._snapshot()
        self._taken: list[np.ndarray] = []
        store._log = self._taken

    def close(self) -> None:
        self._store._restore(self._state, self._taken)

    def remove(self, claims: np.ndarray) -> None:
        """The step's claims (indices into its problem) leave every lane they are in."""
        dims = self._store._dims
        entries = rows_of(self._indptr, claims)
        blocks = self._entry_block[entries]
        lanes = (blocks[:, None] * dims + np.arange(dims)[None, :]).ravel()
        self._store._take_out(self._positions[entries].ravel(), lanes, claims.size == 1)

    def shrink(self, blocks: np.ndarray, available: np.ndarray) -> None:
        self._store._shrink(*_lanes_of(blocks, available, self._store._dims))

    def grow(self, blocks: np.ndarray, available: np.ndarray) -> None:
        self._store._grow(*_lanes_of(blocks, available, self._store._dims))

    def counts(self) -> np.ndarray:
        """(blocks x orders): how many of the smallest pending demands fit what is left,
        per lane; valid on the needed blocks only."""
        counts: np.ndarray = self._store._count.reshape(-1, self._store._dims)
        return counts

    def best(self, available: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """Per block, the open order whose knapsack packs the most weight (the smallest
        on ties); NO_ORDER where no order is open. Valid on the needed blocks only."""
        values = self.counts() * self._weight
        open_orders = usable & (available > TOLERANCE)
        best = np.argmax(np.where(open_orders, values, -np.inf), axis=1)
        return np.where(open_orders.any(axis=1), best, NO_ORDER)


REBUILD_SLACK = 1 << 16
"""Lane positions tolerated beyond twice the pending entries' before starting over."""
_KEY_SPAN = 1 << 32
"""Above any pending-index sequence number a ledger reaches."""


def _lanes_of(
    blocks: np.ndarray, available: np.ndarray, dims: int
) -> tuple[np.ndarray, np.ndarray]:
    """The flat lanes of `blocks` and the room each has (budget left plus tolerance)."""
    lanes = (blocks[:, None] * dims + np.arange(dims)[None, :]).ravel()
    return lanes, available[blocks].ravel() + TOLERANCE


def _padded(counter: np.ndarray, m: int) -> np.ndarray:
    """A per-block counter extended with zeros to m blocks."""
    if counter.size >= m:
        return counter[:m]
    return np.concatenate([counter, np.zeros(m - counter.size, dtype=counter.dtype)])
