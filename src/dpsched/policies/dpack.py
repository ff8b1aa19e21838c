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
from dpsched.policies.area import efficiency_order, weight_over
from dpsched.policies.knapsack import knapsack_values
from dpsched.policies.packing import claims_fitting, greedy_pack
from dpsched.policies.problem import Problem
from dpsched.policies.result import PolicyResult

NO_ORDER = -1


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


def dpack_efficiency(problem: Problem, best: np.ndarray, available: np.ndarray) -> np.ndarray:
    order = best[problem.entry_block]
    has_order = order != NO_ORDER
    safe_order = np.where(has_order, order, 0)
    demand = problem.entry_demand[np.arange(order.size), safe_order]
    left = available[problem.entry_block, safe_order]
    terms = np.full(order.size, np.inf)
    with np.errstate(over="ignore"):
        np.divide(demand, left, out=terms, where=has_order)
    return weight_over(problem, terms)


def dpack(problem: Problem, options: DpackOptions) -> PolicyResult:
    candidates = np.ones(problem.n, dtype=bool)
    available = problem.available.copy()
    allocated: list[int] = []
    worst_eta = 0.0
    rounds = 0
    while candidates.any():
        rounds += 1
        # Budget only shrinks within a step, so claims that do not fit now are never
        # granted in this round: their blocks' best orders and their own ranks are not
        # needed (the knapsacks still see every candidate, as Alg. 1 defines them).
        fit = candidates & (
            problem.fits_available if rounds == 1 else claims_fitting(problem, available)
        )
        if not fit.any():
            break
        needed = np.unique(problem.entry_block[fit[problem.entry_task]])
        best, used_eta = best_orders(problem, candidates, available, options.eta, needed)
        worst_eta = max(worst_eta, used_eta)
        efficiency = dpack_efficiency(problem, best, available)
        order = efficiency_order(problem, efficiency)
        order = order[fit[order]]
        limit = options.recompute_every or None
        packed = greedy_pack(problem, order, available, max_allocations=limit)
        allocated.extend(packed.allocated)
        available = packed.remaining
        if limit is None or packed.stopped_at >= order.size:
            break
        candidates[order[: packed.stopped_at]] = False
    return PolicyResult(allocated, details={"rounds": float(rounds), "effective_eta": worst_eta})
