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

S is kept by subtraction, so it may differ from a fresh running sum in the last ulp;
a count could only differ where a sum lands within that of a capacity plus the 1e-9
slack, which the tests' random instances and the papers' workloads never do.
"""

from __future__ import annotations

import numpy as np

from dpsched.core.admission import TOLERANCE
from dpsched.policies.problem import Problem

NO_ORDER = -1


class SortedLanes:
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
        self._lane_start = (dims * block_start[:-1])[:, None] + np.arange(dims)[None, :] * counts[
            :, None
        ]
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
        self._lane_len = counts
        self._pending_on_block = np.bincount(
            problem.entry_block[by_block][alive], minlength=m
        ).astype(np.int64)

    def remove(self, claims: np.ndarray) -> None:
        """The claims leave every lane they are in (granted, or dropped as hopeless)."""
        problem = self._problem
        starts, ends = problem.indptr[claims], problem.indptr[claims + 1]
        lengths = ends - starts
        entries = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(
            int(lengths.sum())
        )
        blocks = problem.entry_block[entries]
        positions = self._position[entries].ravel()
        lanes = (blocks[:, None] * self._dims + np.arange(self._dims)[None, :]).ravel()
        inside = positions < self._lane_start.ravel()[lanes] + self._boundary[lanes]
        self._active[positions] = False
        if claims.size == 1:  # one claim reads a block once: every lane appears once
            self._pending_on_block[blocks] -= 1
            self._sum[lanes[inside]] -= self._values[positions[inside]]
            self._count[lanes[inside]] -= 1
            return
        np.subtract.at(self._pending_on_block, blocks, 1)
        np.subtract.at(self._sum, lanes[inside], self._values[positions[inside]])
        np.subtract.at(self._count, lanes[inside], 1)

    def shrink(self, blocks: np.ndarray, available: np.ndarray) -> None:
        """After the blocks' budget went down: move each lane's boundary left until its
        prefix fits again (granting a claim lowers both its lanes' sums and budgets by
        its demand, so a boundary never needs to move right).

        Boundaries move a few positions, sometimes a hundred (a large claim granted past
        a lane's prefix): each pass looks at a window of positions left of every
        boundary still too far right, and the window grows until all have settled."""
        dims = self._dims
        lanes = (blocks[:, None] * dims + np.arange(dims)[None, :]).ravel()
        room = available[blocks].ravel() + TOLERANCE
        starts = self._lane_start.ravel()
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

    def grow(self, blocks: np.ndarray, available: np.ndarray) -> None:
        """After claims left the blocks' lanes without taking budget: move each lane's
        boundary right while the next pending claims still fit (the mirror of `shrink`;
        a boundary settled by `shrink` first is then exact)."""
        dims = self._dims
        lanes = (blocks[:, None] * dims + np.arange(dims)[None, :]).ravel()
        room = available[blocks].ravel() + TOLERANCE
        starts = self._lane_start.ravel()
        ends = starts + np.repeat(self._lane_len, dims)
        under = starts[lanes] + self._boundary[lanes] < ends[lanes]
        window = 8
        while under.any():
            lanes, room = lanes[under], room[under]
            at = starts[lanes][:, None] + self._boundary[lanes][:, None] + np.arange(window)
            inside = at < ends[lanes][:, None]
            at = np.minimum(at, self._values.size - 1)
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
