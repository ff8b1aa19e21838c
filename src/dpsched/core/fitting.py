"""Which pending claims fit now, without comparing every entry at every order each step.

An entry (one block of one claim) fits when some usable order a has room:
d_a <= f * c_a - s_a + tol, with f the block's unlocked fraction, c its capacity
and s what it has granted. That is f >= theta = min_a (d_a + s_a - tol) / c_a: one
number per entry, whatever the number of orders. Unlocking only raises f and
grants only raise s, so a theta computed earlier stays a lower bound; and the
same formula at the order that was the minimum then, with today's s, is an upper
bound. Hence, per step:

- a claim is skipped at the cost of one comparison while one of its entries (its
  "witness") still has a lower bound above f: online, almost every pending claim;
- for the other claims, an entry whose upper bound is below f fits for sure, one
  whose lower bound is above f does not, and only the entries in between get a
  fresh theta (all orders); the exact budget comparison settles any theta within
  rounding distance of f.

So the answer is always the ledger's own admission rule (`admission.rows_fit`).
A release lowers s and breaks the lower bounds: the ledger then forgets them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpsched.core.admission import TOLERANCE, claims_from_entries
from dpsched.core.block_budget import BlockBudget
from dpsched.core.fit_hints import FitHints
from dpsched.core.pending import PendingArrays, PendingIndex, PendingView

CHUNK = 1 << 16
"""Entries whose thresholds are computed together."""
MARGIN = 1e-6
"""Slack, in fractions of capacity, around every bound: far above the rounding between
the ledger's unlocked budget and f * capacity - spent, so nothing is ever missed."""


@dataclass(frozen=True)
class BudgetState:
    """What fitting is measured against: available = fraction * capacity - spent."""

    fraction: np.ndarray
    available: np.ndarray
    spent: np.ndarray
    capacity: np.ndarray


def thresholds(
    demand: np.ndarray, spent: np.ndarray, capacity: np.ndarray, usable: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least unlocked fraction at which each row fits, and the order attaining it
    (inf and -1 where no order is usable)."""
    ratio = np.full(demand.shape, np.inf)
    np.divide(demand + spent - TOLERANCE, capacity, out=ratio, where=usable)
    order = ratio.argmin(axis=1)
    theta = ratio[np.arange(order.size), order]
    return theta, np.where(np.isfinite(theta), order, -1)


def _entries_ok(
    arrays: PendingArrays, hints: FitHints, budget: BudgetState, entries: np.ndarray
) -> np.ndarray:
    """Exact fit of the given entries, deciding by the bounds where they can."""
    blocks = arrays.entry_block[entries]
    f = budget.fraction[blocks]
    theta = hints.theta[entries]
    order = hints.order[entries]
    known = np.flatnonzero(order >= 0)
    ok = np.zeros(entries.size, dtype=bool)
    if known.size:
        at, rows = order[known], blocks[known]
        demand_at = arrays.entry_demand[entries[known], at]
        upper = (demand_at + budget.spent[rows, at] - TOLERANCE) / budget.capacity[rows, at]
        ok[known] = upper <= f[known] - MARGIN
    unsure_all = np.flatnonzero(~ok & (theta <= f + MARGIN))
    # In chunks: a first step over 300,000 fresh claims would otherwise gather several
    # (entries x orders) temporaries at once, about a gigabyte.
    for start in range(0, unsure_all.size, CHUNK):
        unsure = unsure_all[start : start + CHUNK]
        index, rows = entries[unsure], blocks[unsure]
        demand = arrays.entry_demand[index]
        usable = budget.capacity[rows] > 0
        fresh, best = thresholds(demand, budget.spent[rows], budget.capacity[rows], usable)
        hints.theta[index] = fresh
        hints.order[index] = best
        ok[unsure] = fresh <= f[unsure] - MARGIN
        # Only a fresh threshold within MARGIN of f leaves the answer to rounding.
        close = np.flatnonzero(np.abs(fresh - f[unsure]) <= MARGIN)
        if close.size:
            room = np.where(usable[close], budget.available[rows[close]] + TOLERANCE, -np.inf)
            ok[unsure[close]] = (demand[close] <= room).any(axis=1)
    return ok


def _first_max_per_segment(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Local index of the first maximum in each consecutive segment of `values`."""
    starts = np.cumsum(lengths) - lengths
    top = np.maximum.reduceat(values, starts)
    segment = np.repeat(np.arange(lengths.size), lengths)
    hits = np.flatnonzero(values >= top[segment])
    hit_segment = segment[hits]
    first = np.flatnonzero(np.diff(hit_segment, prepend=-1))  # hits ascend, so do segments
    local = np.zeros(lengths.size, dtype=np.int64)
    local[hit_segment[first]] = hits[first] - starts[hit_segment[first]]
    return local


@dataclass(frozen=True, eq=False)
class PendingFit:
    """The pending claims (departed ones included, never fitting) and which fit now."""

    view: PendingView
    fit: np.ndarray
    """Per claim: alive and every entry fits."""
    hints: FitHints
    budget: BudgetState

    def touching(self, blocks: np.ndarray) -> np.ndarray:
        """Per claim: alive with an entry that fits on its own on one of `blocks` (a mask)."""
        arrays = self.view.arrays
        entries = np.flatnonzero(blocks[arrays.entry_block])
        touch = np.zeros(arrays.n, dtype=bool)
        ok = entries[_entries_ok(arrays, self.hints, self.budget, entries)]
        touch[np.searchsorted(arrays.indptr, ok, side="right") - 1] = True
        touch &= self.view.alive
        return touch

    def blocks_of_fitting(self, n_blocks: int) -> np.ndarray:
        """Mask of the blocks that some fitting claim reads."""
        arrays = self.view.arrays
        mask = np.zeros(n_blocks, dtype=bool)
        mask[arrays.entry_block[arrays.entries_of(np.flatnonzero(self.fit))]] = True
        return mask


def _candidates(view: PendingView, hints: FitHints, budget: BudgetState, whole: bool) -> np.ndarray:
    """Alive claims not excluded by their witness (indices, ascending)."""
    if whole:
        blocked = hints.bar_whole > 1.0 + MARGIN
    else:
        blocked = hints.bar > budget.fraction[hints.bar_block] + MARGIN
        usable = budget.capacity > 0
        room = np.full(budget.capacity.shape, -np.inf)
        np.divide(budget.available + TOLERANCE, budget.capacity, out=room, where=usable)
        most = room.max(axis=1, initial=-np.inf)
        blocked |= hints.bar_static > most[hints.bar_block] + MARGIN
    candidates: np.ndarray = np.flatnonzero(view.alive & ~blocked)
    return candidates


def _evaluate(
    arrays: PendingArrays,
    hints: FitHints,
    budget: BudgetState,
    claims: np.ndarray,
    whole: bool,
) -> np.ndarray:
    """Exact fit of the given claims; each one that does not fit gets a new witness: its
    entry furthest from fitting."""
    entries = arrays.entries_of(claims)
    ok = _entries_ok(arrays, hints, budget, entries)
    lengths = arrays.indptr[claims + 1] - arrays.indptr[claims]
    starts = np.cumsum(lengths) - lengths
    fits_now = claims_from_entries(np.append(starts, entries.size), ok)
    blocks = arrays.entry_block[entries]
    theta = hints.theta[entries]
    gap = np.where(ok, -np.inf, theta - budget.fraction[blocks])
    witness = starts + _first_max_per_segment(gap, lengths)
    bar = np.where(fits_now, -np.inf, theta[witness])
    if whole:
        hints.bar_whole[claims] = bar
    else:
        hints.bar[claims] = bar
        hints.bar_block[claims] = blocks[witness]
        hints.bar_entry[claims] = witness - starts
        capacity = budget.capacity[blocks[witness]]
        least = np.full(capacity.shape, np.inf)
        np.divide(arrays.entry_demand[entries[witness]], capacity, out=least, where=capacity > 0)
        hints.bar_static[claims] = np.where(fits_now, -np.inf, least.min(axis=1, initial=np.inf))
    return fits_now


def _recheck_witnesses(
    arrays: PendingArrays, hints: FitHints, budget: BudgetState, candidates: np.ndarray
) -> np.ndarray:
    """Drop the candidates whose witness, with a fresh threshold, still does not fit.

    A witness's bound goes stale when its block grants something; refreshing that one
    entry is far cheaper than re-examining every entry of the claim."""
    held = np.flatnonzero(hints.bar[candidates] > -np.inf)
    if held.size == 0:
        return candidates
    claims = candidates[held]
    entry = arrays.indptr[claims] + hints.bar_entry[claims]
    rows = arrays.entry_block[entry]
    capacity = budget.capacity[rows]
    theta, order = thresholds(
        arrays.entry_demand[entry], budget.spent[rows], capacity, capacity > 0
    )
    hints.theta[entry], hints.order[entry], hints.bar[claims] = theta, order, theta
    keep = np.ones(candidates.size, dtype=bool)
    keep[held[theta > budget.fraction[rows] + MARGIN]] = False
    remaining: np.ndarray = candidates[keep]
    return remaining


def pending_fit(view: PendingView, hints: FitHints, budget: BudgetState) -> PendingFit:
    """Which pending claims fit the unlocked budget `budget` on their own."""
    fit = np.zeros(view.arrays.n, dtype=bool)
    candidates = _recheck_witnesses(
        view.arrays, hints, budget, _candidates(view, hints, budget, whole=False)
    )
    if candidates.size:
        fit[candidates] = _evaluate(view.arrays, hints, budget, candidates, whole=False)
    return PendingFit(view, fit, hints, budget)


def any_fits(view: PendingView, hints: FitHints, budget: BudgetState) -> bool:
    """Does some pending claim fit the whole remaining budget `budget`? Claims that fit
    last time are tried first, in small batches, so the usual answer costs little."""
    candidates = _candidates(view, hints, budget, whole=True)
    fitted_before = hints.bar_whole[candidates] == -np.inf
    ordered = np.concatenate([candidates[fitted_before], candidates[~fitted_before]])
    start, size = 0, 64
    while start < ordered.size:
        batch = ordered[start : start + size]
        if _evaluate(view.arrays, hints, budget, np.sort(batch), whole=True).any():
            return True
        start, size = start + size, size * 4
    return False


def fit_now(index: PendingIndex, budget: BlockBudget) -> PendingFit:
    """The pending claims against the unlocked budget as it stands."""
    state = BudgetState(
        budget.unlocked_fraction, budget.unlocked, budget.committed(), budget.capacity
    )
    return pending_fit(index.view(), index.hints, state)


def could_fit_unlocked(index: PendingIndex, budget: BlockBudget) -> bool:
    """Would some pending claim fit once all remaining budget is unlocked?"""
    whole = budget.unlocked + budget.locked
    state = BudgetState(np.ones(len(budget.specs)), whole, budget.committed(), budget.capacity)
    return any_fits(index.view(), index.hints, state)
