"""Round robin (PrivateKube §6.1 baseline): unlocked budget is split evenly among the
pending claims that want it, and a claim runs once its shares cover its demand.

Each step, every block's unlocked budget (per order) is divided max-min fairly among
the pending claims on the block: equal shares, never more than what a claim still
needs, the excess going to the others. Shares are reserved in the ledger, so they
accumulate across steps and come back if a claim expires. A claim whose reservation
covers its demand on every block (at some order) is then granted, in arrival order,
while the budget allows. Orders where a claim's demand exceeds the whole capacity
get no share: no amount of waiting covers it there.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from dpsched.core.admission import TOLERANCE, claims_from_entries, rows_fit
from dpsched.policies.problem import Problem
from dpsched.policies.result import PolicyResult


class RoundRobinOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


def water_fill(need: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Max-min fair split of pool[a] among rows, capped by need[:, a] (per column)."""
    k = need.shape[0]
    ranked = np.sort(need, axis=0)
    total = np.cumsum(ranked, axis=0)
    # Cost of raising every row to the level of the m-th smallest need.
    cost = total + (k - 1 - np.arange(k))[:, None] * ranked
    satisfied = (cost <= pool[None, :]).sum(axis=0)
    given = np.where(satisfied > 0, total[np.maximum(satisfied - 1, 0), np.arange(pool.size)], 0.0)
    level = np.where(satisfied >= k, np.inf, (pool - given) / np.maximum(k - satisfied, 1))
    share: np.ndarray = np.minimum(need, level[None, :])
    return share


def round_robin(problem: Problem, options: RoundRobinOptions) -> PolicyResult:
    demand = problem.entry_demand
    reserved = np.zeros_like(demand) if problem.entry_reserved is None else problem.entry_reserved
    capacity = problem.capacity[problem.entry_block]
    coverable = problem.usable[problem.entry_block] & (demand <= capacity + TOLERANCE)
    need = np.where(coverable, np.maximum(demand - reserved, 0.0), 0.0)
    pool = np.maximum(problem.available, 0.0)
    share = np.zeros_like(need)
    by_block = problem.entries_by_block
    bounds = np.searchsorted(problem.entry_block[by_block], np.arange(problem.m + 1))
    for j in np.flatnonzero(np.diff(bounds)):
        rows = by_block[bounds[j] : bounds[j + 1]]
        share[rows] = water_fill(need[rows], pool[j])
    held = reserved + share
    covered = ((demand <= held + TOLERANCE) & coverable).any(axis=1)
    complete = claims_from_entries(problem.indptr, covered)

    remaining = problem.available.copy()
    np.subtract.at(remaining, problem.entry_block, share)
    granted: list[int] = []
    by_arrival = np.argsort(problem.tie_rank)
    for i in by_arrival[complete[by_arrival]]:
        entries = problem.task_entries(int(i))
        rows = problem.entry_block[entries]
        own = held[entries]
        if rows_fit(demand[entries], remaining[rows] + own, problem.usable[rows]).all():
            remaining[rows] += own - demand[entries]
            granted.append(int(i))
    reservations = {
        i: share[problem.task_entries(i)]
        for i in range(problem.n)
        if share[problem.task_entries(i)].any()
    }
    return PolicyResult(granted, reservations=reservations)
