"""DPack (DPack Eq. 6, Alg. 1): efficiency at each block's best RDP order.

Per block, the best order is the one where a single-block knapsack over the pending
claims that read the block packs the most weight (ties: smallest order index). A
claim's efficiency is its weight over the sum, across its blocks, of its demand at
the block's best order normalised by what is left there. Claims are then packed
greedily by decreasing efficiency with the at-least-one-order admission rule.
`recompute_every=K` re-solves the best orders on what is left after every K grants.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dpsched.core.admission import TOLERANCE
from dpsched.core.ranges import rows_of
from dpsched.policies.knapsack import knapsack_values
from dpsched.policies.lanes import NO_ORDER, SortedLanes, StepLanes
from dpsched.policies.packing import PackResult, greedy_pack
from dpsched.policies.problem import KnapsackLanes, Problem
from dpsched.policies.result import PolicyResult


class DpackOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eta: float = Field(0.05, gt=0.0, le=1.0, description="FPTAS approximation parameter")
    recompute_every: int = Field(
        0, ge=0, description="re-solve best orders after K grants (0: once)"
    )


def best_orders(
    problem: Problem,
    candidates: np.ndarray,
    available: np.ndarray,
    eta: float,
    blocks_needed: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Best order index per block (NO_ORDER where nothing can be granted) and the worst eta used.

    Only blocks in `blocks_needed` (default: all) are solved; each block's knapsack
    still runs over every candidate that reads it.
    """
    by_block = problem.entries_by_block
    by_block = by_block[candidates[problem.entry_task[by_block]]]
    bounds = np.searchsorted(problem.entry_block[by_block], np.arange(problem.m + 1))
    best = np.full(problem.m, NO_ORDER, dtype=np.int64)
    worst_eta = 0.0
    for j in range(problem.m) if blocks_needed is None else blocks_needed.tolist():
        rows = by_block[bounds[j] : bounds[j + 1]]
        open_orders = np.flatnonzero(problem.usable[j] & (available[j] > TOLERANCE))
        if rows.size == 0 or open_orders.size == 0:
            continue
        values, used_eta = knapsack_values(
            problem.entry_demand[rows][:, open_orders],
            problem.weights[problem.entry_task[rows]],
            available[j, open_orders],
            eta,
        )
        worst_eta = max(worst_eta, used_eta)
        best[j] = open_orders[int(np.argmax(values))]
    return best, worst_eta


def dpack(problem: Problem, options: DpackOptions) -> PolicyResult:
    """Alg. 1: rank the claims that fit by efficiency at the blocks' best orders and pack
    greedily; with `recompute_every=K`, re-rank after every K grants.

    Between rounds only the blocks the granted claims read change (their budget and
    their pending claims), so best orders are updated there and nowhere else
    (`_BestOrders`), and only claims reading those blocks can stop fitting (`_Fitting`)."""
    limit = options.recompute_every or None
    available = problem.available.copy()
    fitting = _Fitting(problem, np.flatnonzero(problem.fits_available))
    # A step that packs every fitting claim in its first round (online, most steps)
    # solves each needed knapsack once, as Alg. 1 does.
    rounds_ahead = limit is not None and int(problem.fits_available.sum()) > limit
    orders = _BestOrders(problem, available, options.eta, incremental=rounds_ahead)
    allocated: list[int] = []
    rounds = 0
    while fitting.any():
        rounds += 1
        best = orders.best(fitting.blocks, available)
        efficiency = fitting.efficiency(best, available)
        if limit == 1:
            chosen = fitting.most_efficient(efficiency)
            span = problem.task_entries(chosen)
            available[problem.entry_block[span]] -= problem.entry_demand[span]
            granted = removed = np.array([chosen])
        else:
            order = fitting.ranked(efficiency)
            packed, stopped_at = _pack(problem, order, available, limit)
            available = packed.remaining
            if limit is None or stopped_at >= order.size:
                allocated.extend(packed.allocated)
                break
            granted = np.asarray(packed.allocated, dtype=np.int64)
            removed = order[:stopped_at]
        allocated.extend(granted.tolist())
        fitting.drop(removed)
        fitting.recheck(orders.remove(removed, granted, available), available)
    return PolicyResult(
        allocated, details={"rounds": float(rounds), "effective_eta": orders.worst_eta}
    )


def _pack(
    problem: Problem, order: np.ndarray, available: np.ndarray, limit: int | None
) -> tuple[PackResult, int]:
    """`greedy_pack` up to `limit` grants, over slices of the order a few times that long:
    preparing the whole order costs more than packing fifty claims from its head."""
    if limit is None:
        whole = greedy_pack(problem, order, available)
        return whole, whole.stopped_at
    allocated: list[int] = []
    remaining, position = available, 0
    while position < order.size and len(allocated) < limit:
        room = limit - len(allocated)
        packed = greedy_pack(
            problem, order[position : position + 4 * room + 64], remaining, max_allocations=room
        )
        allocated.extend(packed.allocated)
        remaining, position = packed.remaining, position + packed.stopped_at
    return PackResult(allocated, remaining, position), position


class _Fitting:
    """The claims that fit what is left, as compact arrays of their entries.

    Claims only ever stop fitting (budget shrinks), so departed ones are flagged and
    the arrays compacted once a quarter of them are gone: a round's work follows the
    claims still in play, not the whole problem. Each entry remembers an order where
    it fitted last time (its witness): re-checking it after a grant reads one order,
    and all of them only when that order has run out."""

    def __init__(self, problem: Problem, claims: np.ndarray) -> None:
        self._problem = problem
        self._set(claims, problem.available)

    def _set(self, claims: np.ndarray, available: np.ndarray) -> None:
        problem = self._problem
        self.claims = claims
        self.alive = np.ones(claims.size, dtype=bool)
        self._alive_count = claims.size
        lengths = problem.indptr[claims + 1] - problem.indptr[claims]
        self.entries = rows_of(problem.indptr, claims)
        self.owner = np.repeat(np.arange(claims.size), lengths)
        self.blocks = problem.entry_block[self.entries]
        self._flat = self.entries * problem.dims
        self._witness = np.zeros(self.entries.size, dtype=np.int64)
        self._terms = np.zeros(self.entries.size)
        self._stale: np.ndarray | None = None
        """Blocks whose entries' efficiency terms are out of date (None: all)."""
        self._weights = problem.weights[claims]
        self._tie_rank = problem.tie_rank[claims]
        if claims.size:
            self._find_witnesses(np.arange(self.entries.size), available)

    def any(self) -> bool:
        return self._alive_count > 0

    def efficiency(self, best: np.ndarray, available: np.ndarray) -> np.ndarray:
        """Per claim held here, weight over its demand at its blocks' best orders
        normalised by what is left there (DPack Eq. 6), summed over its entries in
        problem order like a pass over every entry would. An entry's term changes only
        when its block's budget or best order does: on the blocks of the last grants."""
        stale = self._stale_entries()
        blocks = self.blocks if stale is None else self.blocks[stale]
        has_order = best != NO_ORDER
        order = np.where(has_order, best, 0)
        left = available[np.arange(best.size), order]
        flat = self._flat if stale is None else self._flat[stale]
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            terms = self._problem.entry_demand.ravel()[flat + order[blocks]] / left[blocks]
        if not has_order.all():
            terms[~has_order[blocks]] = np.inf
        if stale is None:
            self._terms = terms
        else:
            self._terms[stale] = terms
        self._stale = np.zeros(0, dtype=np.int64)
        total = np.bincount(self.owner, weights=self._terms, minlength=self.claims.size)
        with np.errstate(divide="ignore", over="ignore"):
            efficiency: np.ndarray = np.where(total > 0, self._weights / total, np.inf)
        return efficiency

    def most_efficient(self, efficiency: np.ndarray) -> int:
        """The first claim of `ranked`, without sorting."""
        values = np.where(self.alive, efficiency, -np.inf)
        top = np.flatnonzero((values == values.max()) & self.alive)
        if top.size == 0:  # NaN efficiencies: let the sort decide as it would
            return int(self.ranked(efficiency)[0])
        return int(self.claims[top[np.argmin(self._tie_rank[top])]])

    def ranked(self, efficiency: np.ndarray) -> np.ndarray:
        """The claims still fitting, highest efficiency first, ties by arrival then
        submission (`area.efficiency_order`)."""
        live = np.flatnonzero(self.alive)
        return self.claims[live[np.lexsort((self._tie_rank[live], -efficiency[live]))]]

    def drop(self, claims: np.ndarray) -> None:
        """The claims (all held here and alive) leave."""
        at = np.searchsorted(self.claims, claims)
        self._alive_count -= at.size
        self.alive[at] = False

    def _stale_entries(self) -> np.ndarray | None:
        """Entries on the blocks changed since the last call (None: every entry)."""
        stale = self._on_blocks(self._stale)
        self._stale = np.zeros(0, dtype=np.int64)
        return stale

    def _on_blocks(self, blocks: np.ndarray | None) -> np.ndarray | None:
        """Entries on these blocks (None: every block, or blocks is None)."""
        if blocks is None or blocks.size == self._problem.m:
            return None
        touched = np.zeros(self._problem.m, dtype=bool)
        touched[blocks] = True
        return np.flatnonzero(touched[self.blocks])

    def recheck(self, blocks: np.ndarray, available: np.ndarray) -> None:
        """Budget shrank on `blocks` only: re-check the entries there (entries of claims
        already gone are checked too: cheaper than filtering them out)."""
        if 4 * self._alive_count < 3 * self.claims.size:
            self._set(self.claims[self.alive], available)
        if self._stale is not None:
            self._stale = np.union1d(self._stale, blocks)
        if blocks.size == 0 or self._alive_count == 0:
            return
        entries = self._on_blocks(blocks)
        if entries is None:
            entries = np.arange(self.entries.size)
        witness = self._witness[entries]
        room = np.where(self._problem.usable, available + TOLERANCE, -np.inf)
        held = (
            self._problem.entry_demand.ravel()[self._flat[entries] + witness]
            <= room[self.blocks[entries], witness]
        )
        lost = entries[~held]
        if lost.size:
            gone = lost[~self._find_witnesses(lost, available)]
            owners = np.unique(self.owner[gone])
            self._alive_count -= int(self.alive[owners].sum())
            self.alive[owners] = False

    def _find_witnesses(self, entries: np.ndarray, available: np.ndarray) -> np.ndarray:
        """Whether each entry fits some usable order now; record the first such order."""
        room = np.where(self._problem.usable, available + TOLERANCE, -np.inf)
        ok = self._problem.entry_demand[self.entries[entries]] <= room[self.blocks[entries]]
        self._witness[entries] = np.argmax(ok, axis=1)
        fits: np.ndarray = ok.any(axis=1)
        return fits


LANES_FROM_ROUND = 2
"""Sorting every lane costs about four per-block knapsack solves, so the first round
solves knapsacks per block and lanes are built only for a run that goes on (measured:
from round 2 and from round 3 cost the same within noise on the online Alibaba runs)."""


class _BestOrders:
    """Each block's best order, re-solved only where its inputs changed.

    Each block's knapsack is cached and solved again only after a claim reading it
    left, since its pending claims and its budget are its only inputs. With equal
    weights, from round `LANES_FROM_ROUND` on (`incremental`), `SortedLanes` updates
    the knapsack counts in place instead.
    """

    def __init__(
        self, problem: Problem, available: np.ndarray, eta: float, *, incremental: bool
    ) -> None:
        self._problem = problem
        self._eta = eta
        equal = problem.n > 0 and bool(np.all(problem.weights == problem.weights[0]))
        self._lanes_from_round = LANES_FROM_ROUND if equal and incremental else None
        self._rounds = 0
        kept = problem.kept
        self._lanes: KnapsackLanes | None = kept if isinstance(kept, StepLanes) else None
        """Lanes kept across steps (lent to the problem) serve from the first round."""
        self._candidates = np.ones(problem.n, dtype=bool)
        self._best = np.full(problem.m, NO_ORDER, dtype=np.int64)
        self._solved = np.zeros(problem.m, dtype=bool)
        self.worst_eta = 0.0

    def best(self, entry_blocks: np.ndarray, available: np.ndarray) -> np.ndarray:
        """Best orders, valid at least on the blocks in `entry_blocks`."""
        self._rounds += 1
        if self._lanes is None and self._rounds == self._lanes_from_round:
            # Only blocks read by a claim that fits can ever need a best order, and
            # claims only stop fitting: the other blocks' lanes are never sorted.
            needed = np.zeros(self._problem.m, dtype=bool)
            needed[entry_blocks] = True
            self._lanes = SortedLanes(self._problem, available, needed, self._candidates)
        if self._lanes is not None:
            return self._lanes.best(available, self._problem.usable)
        needed = np.unique(entry_blocks)
        todo = needed[~self._solved[needed]]
        if todo.size:
            best, used_eta = best_orders(
                self._problem, self._candidates, available, self._eta, todo
            )
            self._best[todo] = best[todo]
            self._solved[todo] = True
            self.worst_eta = max(self.worst_eta, used_eta)
        return self._best

    def remove(self, removed: np.ndarray, granted: np.ndarray, available: np.ndarray) -> np.ndarray:
        """Claims left the pending set (`granted` ones also took budget, already out of
        `available`); returns the blocks they read: the only ones whose budget or best
        order changed."""
        problem = self._problem
        self._candidates[removed] = False
        # A claim reads each of its blocks once: one claim's blocks need no unique().
        touched: np.ndarray = problem.entry_block[rows_of(problem.indptr, removed)]
        if removed.size > 1:
            touched = np.unique(touched)
        if self._lanes is None:
            self._solved[touched] = False
            return touched
        self._lanes.remove(removed)
        if removed is granted:
            self._lanes.shrink(touched, available)
            return touched
        # Claims that left without taking budget can let a boundary move right.
        self._lanes.shrink(touched, available)
        self._lanes.grow(touched, available)
        return touched
