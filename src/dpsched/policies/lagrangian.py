"""A certified upper bound for the privacy knapsack that scales to 60,000 claims, and a
greedy start priced by it (used by `optimal`).

Beyond a few thousand claims HiGHS does not finish the root relaxation of either MILP
formulation within a practical time limit (the measurements are in the benchmarks'
tables, `benchmarks/optimal.py`), so its gap says nothing there. This module bounds the
optimum without a MILP, by Lagrangian decomposition per block.

Copy each group's count z_g onto every contended block it reads (one copy per entry
e = (group, block)) and relax "the copies are equal" with a multiplier mu_e per entry.
For every mu,

    OPT <= L(mu) = sum_g |g| max(0, w_g - sum_{e in g} mu_e) + sum_j max_a K_{j,a}(mu),

where K_{j,a} is block j's fractional knapsack at order a: profits mu_e > 0, sizes
demand / capacity left, at most |g| copies of an entry, entries that do not fit alone at
a left out. Any mu gives a valid bound (weak duality), so nothing needs to converge for
the gap to be certified; good mu make it tight. At the best mu, L equals the LP bound of
the disjunctive (convex-hull) formulation in `optimal`, without its column per (entry,
order).

Good multipliers, cheaply: the dual prices pi_j of the LP with each block's order fixed
(mu_e = pi_j x the entry's demand at that order; one row per block, one column per
group) are close to optimal when the orders are the incumbent's, which is why no
subgradient method refines them (measured to gain nothing from there; see the
benchmarks' tables); putting each group's whole weight on its most loaded block is the
better start where one block is read by every claim (the alibaba-synthetic "most recent
blocks" case). The prices also order a greedy start (weight / priced demand), which
finds what dpack's fixed efficiency misses there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dpsched.core.admission import TOLERANCE
from dpsched.core.ranges import concat_ranges
from dpsched.policies.highs import csr, new_highs, pass_model
from dpsched.policies.problem import Problem


@dataclass
class Shape:
    """The instance as the exact model and its relaxation see it: groups of
    interchangeable claims, one representative entry per (group, block) (the group
    leader's), and the contended (block, order) pairs."""

    groups: list[np.ndarray]
    """Per group, its claims in submission order."""
    size: np.ndarray
    weight: np.ndarray
    entries: np.ndarray
    owner: np.ndarray
    """Per entry, its group."""
    blocks: np.ndarray
    pair: np.ndarray
    """(entries x orders): the contended pair index, -1 where that order is not one."""
    fits: np.ndarray
    """(entries x orders): a contended pair where the entry fits alone."""
    scaled: np.ndarray
    """(entries x orders): demand over the capacity left (0 where not `fits`)."""
    pairs: np.ndarray
    """(pairs x 2): block, order."""
    room: np.ndarray
    """Per pair, the scaled capacity the ledger admits: 1 + TOLERANCE / capacity left."""
    contended: np.ndarray
    """Blocks whose claims do not all fit together at any order."""
    linked: np.ndarray
    """Per entry: on a contended block (the only blocks that can refuse a claim)."""
    n_blocks: int

    @property
    def block_of_pair(self) -> np.ndarray:
        block: np.ndarray = self.pairs[:, 0]
        return block


def build_shape(
    problem: Problem, fits_alone: np.ndarray, pairs: np.ndarray, groups: list[np.ndarray]
) -> Shape:
    """`fits_alone`: (entries x orders) where an entry fits the capacity left on its own;
    `pairs`: the contended (block, order) pairs; `groups`: the claims to model."""
    leader = np.array([g[0] for g in groups], dtype=np.int64)
    pair_index = -np.ones(problem.available.shape, dtype=np.int64)
    pair_index[pairs[:, 0], pairs[:, 1]] = np.arange(len(pairs))
    starts, stops = problem.indptr[leader], problem.indptr[leader + 1]
    lengths = stops - starts
    owner = np.repeat(np.arange(leader.size), lengths)
    entries = concat_ranges(starts, lengths)
    blocks = problem.entry_block[entries]
    pair = pair_index[blocks]
    fits = (pair >= 0) & fits_alone[entries]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scaled = np.where(fits, problem.entry_demand[entries] / problem.available[blocks], 0.0)
    return Shape(
        groups=groups,
        size=np.array([g.size for g in groups], dtype=float),
        weight=problem.weights[leader],
        entries=entries,
        owner=owner,
        blocks=blocks,
        pair=pair,
        fits=fits,
        scaled=scaled,
        pairs=pairs,
        room=1.0 + TOLERANCE / problem.available[pairs[:, 0], pairs[:, 1]],
        contended=np.unique(pairs[:, 0]),
        linked=np.asarray((pair >= 0).any(axis=1)),
        n_blocks=problem.m,
    )


@dataclass
class Relaxation:
    """L(mu) and what it chose: per pair its knapsack value and critical price (the
    profit / size ratio where the capacity runs out, 0 if it does not), per contended
    block its best pair."""

    value: float
    pair_value: np.ndarray
    price: np.ndarray
    best_pair: np.ndarray
    """Per block of `Shape.contended`, the pair with the largest knapsack value."""


def relax(shape: Shape, mu: np.ndarray) -> Relaxation:
    """L(mu), every (block, order) knapsack solved at once: entries sorted by (pair,
    profit / size descending), running sums of sizes per pair, the one that crosses the
    capacity taken fractionally."""
    n_groups, n_pairs = len(shape.groups), len(shape.pairs)
    mu = np.where(shape.linked, np.maximum(mu, 0.0), 0.0)
    rest = shape.weight - np.bincount(shape.owner, weights=mu, minlength=n_groups)
    value = float(shape.size @ np.maximum(rest, 0.0))
    e_idx, a_idx = np.nonzero(shape.fits & (mu > 0)[:, None])
    pair = shape.pair[e_idx, a_idx]
    profit = mu[e_idx]
    copies = shape.size[shape.owner[e_idx]]
    size = shape.scaled[e_idx, a_idx] * copies
    with np.errstate(divide="ignore"):
        ratio = profit * copies / size  # inf for an entry that costs nothing at that order
    order = np.lexsort((-ratio, pair))
    pair, profit, copies, size, ratio = (
        pair[order],
        profit[order],
        copies[order],
        size[order],
        ratio[order],
    )
    first = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if pair.size else pair
    used = np.cumsum(size)
    run_start = np.repeat(used[first] - size[first], np.diff(np.r_[first, pair.size]))
    before = used - size - run_start
    with np.errstate(divide="ignore", invalid="ignore"):
        taken = np.where(size > 0, np.clip((shape.room[pair] - before) / size, 0.0, 1.0), 1.0)
    pair_value = np.bincount(pair, weights=profit * copies * taken, minlength=n_pairs)
    price = np.zeros(n_pairs)
    partial = np.flatnonzero(taken < 1.0)
    critical, at = np.unique(pair[partial], return_index=True)
    price[critical] = ratio[partial[at]]
    by_block = np.lexsort((-pair_value, shape.block_of_pair))
    leads = by_block[np.r_[True, np.diff(shape.block_of_pair[by_block]) != 0]]
    value += float(pair_value[leads].sum())
    return Relaxation(value=value, pair_value=pair_value, price=price, best_pair=leads)


def concentrated_multipliers(shape: Shape) -> np.ndarray:
    """Each group's whole weight on its entry at the most loaded block (load: the
    smallest, over the block's orders, total demand of the claims fitting there over
    the capacity left). Where one block is read by every claim this is the single-block
    knapsack, exact for that block."""
    copies = shape.size[shape.owner]
    on = shape.fits
    load = np.bincount(
        shape.pair[on], weights=(shape.scaled * copies[:, None])[on], minlength=len(shape.pairs)
    )
    block_load = np.full(shape.n_blocks, np.inf)
    np.minimum.at(block_load, shape.block_of_pair, load)
    pressure = np.where(shape.linked, block_load[shape.blocks], -np.inf)
    order = np.lexsort((-pressure, shape.owner))
    leads = order[np.r_[True, shape.owner[order][1:] != shape.owner[order][:-1]]]
    mu = np.zeros(shape.entries.size)
    mu[leads] = shape.weight[shape.owner[leads]]
    return mu


def fixed_order_multipliers(
    shape: Shape, chosen_pair: np.ndarray, time_limit: float | None
) -> np.ndarray | None:
    """mu_e = pi_j x (demand / capacity left at the chosen order), pi the duals of the
    LP max w.z, sum_g (d_gj / c_j) z_g <= 1 per contended block, 0 <= z_g <= |g| (0 for
    a group that does not fit the chosen order of a block it reads); scaled down where a
    group's multipliers would exceed its weight. `chosen_pair` has one pair per block of
    `Shape.contended`, in that order. None if the LP is not solved in time."""
    import highspy

    n_groups = len(shape.groups)
    order_of_block = np.full(shape.n_blocks, -1, dtype=np.int64)
    order_of_block[shape.block_of_pair[chosen_pair]] = shape.pairs[chosen_pair, 1]
    linked = np.flatnonzero(shape.linked)
    orders = order_of_block[shape.blocks[linked]]
    fit = shape.fits[linked, orders]
    upper = shape.size.copy()
    upper[shape.owner[linked[~fit]]] = 0.0
    entries, orders = linked[fit], orders[fit]
    row_of_block = np.full(order_of_block.size, -1, dtype=np.int64)
    row_of_block[shape.contended] = np.arange(shape.contended.size)
    size = shape.scaled[entries, orders]
    matrix = csr(
        [row_of_block[shape.blocks[entries]]],
        [shape.owner[entries]],
        [size],
        (shape.contended.size, n_groups),
    )
    highs = new_highs(time_limit)
    room = shape.room[chosen_pair]
    pass_model(
        highs,
        cost=-shape.weight,
        upper=upper,
        row_lower=np.full(room.size, -np.inf),
        row_upper=room,
        matrix=matrix,
    )
    highs.run()
    if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    pi = np.zeros(order_of_block.size)
    pi[shape.contended] = np.maximum(-np.asarray(highs.getSolution().row_dual), 0.0)
    mu = np.zeros(shape.entries.size)
    mu[entries] = pi[shape.blocks[entries]] * size
    total = np.bincount(shape.owner, weights=mu, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(total > shape.weight, shape.weight / total, 1.0)
    scaled_mu: np.ndarray = mu * scale[shape.owner]
    return scaled_mu


def priced_order(problem: Problem, shape: Shape, relaxation: Relaxation) -> np.ndarray:
    """The claims by weight / priced demand, highest first (submission order among
    equals): each block's demand at its best order times that knapsack's critical
    price, so a claim costs only on the blocks that bind."""
    order_of_block = np.full(shape.n_blocks, -1, dtype=np.int64)
    price_of_block = np.zeros(order_of_block.size)
    best = relaxation.best_pair
    order_of_block[shape.block_of_pair[best]] = shape.pairs[best, 1]
    price_of_block[shape.block_of_pair[best]] = relaxation.price[best]
    linked = np.flatnonzero(shape.linked)
    orders = order_of_block[shape.blocks[linked]]
    cost = np.where(
        shape.fits[linked, orders],
        price_of_block[shape.blocks[linked]] * shape.scaled[linked, orders],
        math.inf,
    )
    group_cost = np.bincount(shape.owner[linked], weights=cost, minlength=len(shape.groups))
    with np.errstate(divide="ignore", invalid="ignore"):
        efficiency = np.where(group_cost > 0, shape.weight / group_cost, math.inf)
    leader_rank = problem.tie_rank[[g[0] for g in shape.groups]]
    ranked = np.lexsort((leader_rank, -efficiency))
    return np.concatenate([shape.groups[k] for k in ranked.tolist()])
