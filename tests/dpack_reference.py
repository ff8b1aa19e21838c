"""DPack as it was before best orders became incremental (dpsched 0.3), kept verbatim as
the oracle the incremental version must agree with grant for grant: every round
re-solves every needed block's knapsacks from scratch, sorting each one."""

from __future__ import annotations

import numpy as np

from dpsched.core.admission import TOLERANCE
from dpsched.policies.area import efficiency_order, weight_over
from dpsched.policies.knapsack import knapsack_values
from dpsched.policies.packing import claims_fitting, greedy_pack
from dpsched.policies.problem import Problem

NO_ORDER = -1


def best_orders(
    problem: Problem,
    candidates: np.ndarray,
    available: np.ndarray,
    eta: float,
    blocks_needed: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
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


def reference_dpack(problem: Problem, eta: float = 0.05, recompute_every: int = 0) -> list[int]:
    candidates = np.ones(problem.n, dtype=bool)
    available = problem.available.copy()
    allocated: list[int] = []
    rounds = 0
    while candidates.any():
        rounds += 1
        fit = candidates & (
            problem.fits_available if rounds == 1 else claims_fitting(problem, available)
        )
        if not fit.any():
            break
        needed = np.unique(problem.entry_block[fit[problem.entry_task]])
        best, _ = best_orders(problem, candidates, available, eta, needed)
        efficiency = dpack_efficiency(problem, best, available)
        order = efficiency_order(problem, efficiency)
        order = order[fit[order]]
        limit = recompute_every or None
        packed = greedy_pack(problem, order, available, max_allocations=limit)
        allocated.extend(packed.allocated)
        available = packed.remaining
        if limit is None or packed.stopped_at >= order.size:
            break
        candidates[order[: packed.stopped_at]] = False
    return allocated
