"""Exact privacy knapsack (DPack Eq. 5) as a MILP solved by HiGHS through scipy.

Variables: x_i (grant claim i), y_{j,a} (order a is the one kept within budget on
block j). Per block: sum_a y_{j,a} >= 1. Per (block, order): rows are scaled by
the capacity left, sum_i (d_{ija}/c_{ja}) x_i + M_{ja} y_{ja} <= 1 + M_{ja} with
M_{ja} = max(sum_i d_{ija} - c_{ja}, 0) / c_{ja}, the tightest big-M that frees
the row when y = 0. Blocks where all pending claims together fit at some order are
dropped (no contention), and claims that fit no order of some block alone are fixed to 0.
On a time limit the best incumbent is returned with its MIP gap; never raises.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dpsched.core.admission import TOLERANCE
from dpsched.policies.packing import greedy_pack
from dpsched.policies.problem import Problem
from dpsched.policies.result import PolicyResult

_INTEGRALITY_CUTOFF = 0.5


class OptimalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_limit: float | None = Field(None, gt=0.0, description="seconds; best incumbent after")
    mip_rel_gap: float = Field(1e-6, ge=0.0, description="relative gap at which HiGHS stops")


def optimal(problem: Problem, options: OptimalOptions) -> PolicyResult:
    available = problem.available
    open_orders = problem.usable & (available > TOLERANCE)
    entry_open = open_orders[problem.entry_block]
    demand = problem.entry_demand
    fits_alone = (demand <= available[problem.entry_block] + TOLERANCE) & entry_open
    entry_ok = fits_alone.any(axis=1)
    task_ok = np.asarray(np.logical_and.reduceat(entry_ok, problem.indptr[:-1]), dtype=bool)
    live = task_ok[problem.entry_task]

    # Demand at each (block, open order) from live claims; inf/too-big entries forbid that order.
    totals = np.zeros_like(available)
    np.add.at(totals, problem.entry_block[live], np.where(fits_alone, demand, 0.0)[live])
    totals_all = np.zeros_like(available)
    np.add.at(totals_all, problem.entry_block[live], demand[live])
    free_block = np.asarray((open_orders & (totals_all <= available + TOLERANCE)).any(axis=1))
    pairs = np.argwhere(open_orders & ~free_block[:, None])
    if pairs.size == 0:
        chosen = np.flatnonzero(task_ok)
        return _finish(problem, chosen, "optimal", 0.0)

    n = problem.n
    pair_index = -np.ones(available.shape, dtype=np.int64)
    pair_index[pairs[:, 0], pairs[:, 1]] = np.arange(len(pairs))
    n_pairs = len(pairs)

    rows, cols, vals = [], [], []
    lower, upper = [], []
    # Knapsack rows, one per contended (block, order).
    entry_rows = pair_index[problem.entry_block]
    for a in range(problem.dims):
        sel = live & (entry_rows[:, a] >= 0) & fits_alone[:, a]
        r = entry_rows[sel, a]
        rows.append(r)
        cols.append(problem.entry_task[sel])
        vals.append(demand[sel, a] / available[problem.entry_block[sel], a])
    cap = available[pairs[:, 0], pairs[:, 1]]
    big_m = np.maximum(totals[pairs[:, 0], pairs[:, 1]] / cap - 1.0, 0.0)
    rows.append(np.arange(n_pairs))
    cols.append(n + np.arange(n_pairs))
    vals.append(big_m)
    lower.append(np.full(n_pairs, -np.inf))
    upper.append(1.0 + big_m)
    # Forbidden (claim, order) pairs: demand never fits there -> x_i + y_{ja} <= 1.
    bad = live[:, None] & (entry_rows >= 0) & ~fits_alone
    bad_entry, bad_order = np.nonzero(bad)
    n_bad = bad_entry.size
    base = n_pairs
    rows += [base + np.arange(n_bad), base + np.arange(n_bad)]
    cols += [problem.entry_task[bad_entry], n + entry_rows[bad_entry, bad_order]]
    vals += [np.ones(n_bad), np.ones(n_bad)]
    lower.append(np.full(n_bad, -np.inf))
    upper.append(np.ones(n_bad))
    # One order kept per contended block.
    blocks = np.unique(pairs[:, 0])
    block_row = {int(j): base + n_bad + k for k, j in enumerate(blocks)}
    rows.append(np.array([block_row[int(j)] for j in pairs[:, 0]], dtype=np.int64))
    cols.append(n + np.arange(n_pairs))
    vals.append(np.ones(n_pairs))
    lower.append(np.ones(blocks.size))
    upper.append(np.full(blocks.size, np.inf))

    n_rows = base + n_bad + blocks.size
    # scipy.optimize is slow to import; only runs that solve a MILP pay for it.
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    matrix = coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, n + n_pairs),
    ).tocsr()
    objective = np.concatenate([-problem.weights, np.zeros(n_pairs)])
    upper_x = np.concatenate([task_ok.astype(float), np.ones(n_pairs)])
    solver_options: dict[str, float | bool] = {"mip_rel_gap": options.mip_rel_gap, "disp": False}
    if options.time_limit is not None:
        solver_options["time_limit"] = options.time_limit
    solution = milp(
        objective,
        constraints=LinearConstraint(matrix, np.concatenate(lower), np.concatenate(upper)),
        integrality=np.ones(n + n_pairs),
        bounds=Bounds(np.zeros(n + n_pairs), upper_x),
        options=solver_options,
    )
    status = "optimal" if solution.status == 0 else "time_limit"
    if solution.x is None:
        return _finish(problem, np.array([], dtype=np.int64), status, math.inf)
    chosen = np.flatnonzero(solution.x[:n] > _INTEGRALITY_CUTOFF)
    gap = getattr(solution, "mip_gap", None)
    return _finish(problem, chosen, status, 0.0 if gap is None else float(gap))


def _finish(problem: Problem, chosen: np.ndarray, status: str, gap: float) -> PolicyResult:
    """Grant the chosen claims in arrival order, re-checked with the ledger's admission rule.

    Any set satisfying Eq. 5 passes in every order; the re-check only guards against the
    solver's feasibility tolerance, so the ledger can never be asked for the impossible.
    """
    order = chosen[np.argsort(problem.tie_rank[chosen], kind="stable")]
    packed = greedy_pack(problem, order)
    return PolicyResult(
        packed.allocated,
        status="optimal" if status == "optimal" else "time_limit",
        mip_gap=None if math.isinf(gap) else gap,
    )
