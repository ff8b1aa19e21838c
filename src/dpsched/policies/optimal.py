"""Exact privacy knapsack (DPack Eq. 5): a MILP solved by HiGHS (`highspy`), started from
the best heuristic answer and bounded by a Lagrangian relaxation.

An "optimal" that returns less than a heuristic on a time limit is worse than useless,
and a gap is only worth printing if it is certified. So:

1. Starts: dpack's and area's answers, and greedy passes ordered by the relaxation's
   prices (`lagrangian.priced_order`). The best is the incumbent: the answer is never
   worse than any of them.
2. Bound: the Lagrangian relaxation per block (`lagrangian`), valid for any
   multipliers, floored when every weight is an integer. It certifies a gap at any size
   (60,000 claims x 90 blocks in seconds), where HiGHS's own bound is the trivial one.
3. If the bound does not already meet the incumbent and the model is small enough for
   HiGHS to make progress (at most `DISJUNCTIVE_LIMIT` entry-order columns), HiGHS solves
   the MILP below from the incumbent (`setSolution`, after checking that it satisfies
   every row) for the time left; the bound is the better of HiGHS's and ours.

`mip_gap` = (bound - incumbent) / incumbent, HiGHS's own definition (|primal - dual| /
|primal|), from the best of both bounds. Status: `optimal` when the gap is within
`mip_rel_gap` (or HiGHS proves it); `time_limit` when HiGHS was stopped (or no time was
left for it); `heuristic` when the instance is beyond the MILP and the bound does not
meet the best start: the answer is that start, with its certified gap. `details` has
`bound` (the certified upper bound on the granted weight), `start_weight` (the best
start's) and `milp` (1 if HiGHS ran).

The MILP. Variables: z_g (how many claims of group g are granted) and y_{j,a} (order a
is the one kept within budget on block j). Claims with the same blocks, demand rows and
weight are interchangeable, so they form one group with an integer z_g in [0, |g|]
instead of |g| binaries: that removes the symmetry that made branch and bound enumerate
equivalent subsets (stronger than ordering x_i >= x_{i+1} within the group), and the
granted members are the first z_g in submission order. Each block's choice of order is
the convex hull of the per-order knapsacks (`_disjunctive`), whose LP bound is tight
where big-M rows (y = 1/12 frees most of each row) left 10% open after 60 s on the mixed
n = 1,000 instance. Rows hold the ledger's admission rule exactly (capacity left +
TOLERANCE, scaled). Blocks where every pending claim together fits at some order are
dropped (no contention), and claims that fit no order of some block alone are left out.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dpsched.core.admission import TOLERANCE
from dpsched.policies.area import area_order
from dpsched.policies.dpack import DpackOptions, dpack
from dpsched.policies.highs import csr, new_highs, pass_model
from dpsched.policies.lagrangian import (
    Relaxation,
    Shape,
    build_shape,
    concentrated_multipliers,
    fixed_order_multipliers,
    priced_order,
    relax,
)
from dpsched.policies.packing import greedy_pack
from dpsched.policies.problem import Problem
from dpsched.policies.result import PolicyResult, Status

DISJUNCTIVE_LIMIT = 400_000
"""Most (entry, order) columns handed to HiGHS. Beyond, it does not finish the root LP in
a minute (measured: 5,000 claims x 30 blocks, 226k columns, gap 90% after 60 s), so only
the starts and the Lagrangian bound are used."""
PRICE_ROUNDS = 3
"""Fixed-order LPs re-solved at the relaxation's own best orders: on the measured cases
the bound stops moving after one or two."""
_ROW_SLACK = 1e-12
"""Float rounding allowed when checking a start against the scaled rows (which already
carry the ledger's TOLERANCE): sums taken in another order than the ledger's."""


class OptimalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_limit: float | None = Field(None, gt=0.0, description="seconds; best incumbent after")
    mip_rel_gap: float = Field(1e-6, ge=0.0, description="relative gap at which to stop")


@dataclass
class _Model:
    """The MILP in HiGHS's row-wise form, with what is needed to read a solution back."""

    cost: np.ndarray
    upper: np.ndarray
    integer: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    matrix: Any
    """scipy.sparse CSR (rows x columns); columns start with the groups' z_g."""
    point: Any
    """(granted claims per group, chosen pair per contended block) -> column values."""


class _Clock:
    """Time left of the option's limit, counted from the policy's start."""

    def __init__(self, limit: float | None) -> None:
        self.deadline = None if limit is None else time.perf_counter() + limit

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def out(self) -> bool:
        left = self.left()
        return left is not None and left <= 0.0


def optimal(problem: Problem, options: OptimalOptions) -> PolicyResult:
    clock = _Clock(options.time_limit)
    shape, everything = model_shape(problem)
    if shape is None:  # every claim that fits alone fits together
        weight = _weight(problem, everything)
        return _finish(
            problem,
            [everything],
            status="optimal",
            bound=weight,
            start_weight=weight,
            options=options,
        )
    starts = [
        np.asarray(dpack(problem, DpackOptions()).allocated, dtype=np.int64),
        np.asarray(greedy_pack(problem, area_order(problem)).allocated, dtype=np.int64),
    ]
    incumbent = max(starts, key=lambda chosen: _weight(problem, chosen))
    relaxations = _relaxations(problem, shape, incumbent, clock)
    for relaxation in relaxations:
        order = priced_order(problem, shape, relaxation)
        starts.append(np.asarray(greedy_pack(problem, order).allocated, dtype=np.int64))
    incumbent = max(starts, key=lambda chosen: _weight(problem, chosen))
    start_weight = _weight(problem, incumbent)
    bound = min(r.value for r in relaxations)
    proven = _gap(start_weight, _integral(problem, bound)) <= options.mip_rel_gap
    too_big = int(shape.fits.sum()) > DISJUNCTIVE_LIMIT
    if proven or too_big or clock.out():
        return _finish(
            problem,
            [incumbent],
            status="heuristic" if too_big else "time_limit",  # "optimal" if proven
            bound=bound,
            start_weight=start_weight,
            options=options,
        )

    model = _disjunctive(shape)
    placed = _placement(problem, shape, incumbent)
    start = None if placed is None else _checked_point(model, *placed)
    solution, solved, milp_bound = _solve(model, start, options, clock.left())
    candidates = [incumbent] if solution is None else [incumbent, _claims(shape, solution)]
    status: Status = "optimal" if solved else "time_limit"
    bound = min(bound, milp_bound)
    return _finish(
        problem,
        candidates,
        status=status,
        bound=bound,
        start_weight=start_weight,
        options=options,
        milp=True,
    )


def model_shape(problem: Problem) -> tuple[Shape | None, np.ndarray]:
    """(What the MILP and the relaxation are built from, None if no block is contended;
    the claims that fit alone, the only ones that can be granted.)"""
    available = problem.available
    open_orders = problem.usable & (available > TOLERANCE)
    demand = problem.entry_demand
    fits_alone = (demand <= available[problem.entry_block] + TOLERANCE) & open_orders[
        problem.entry_block
    ]
    entry_ok = fits_alone.any(axis=1)
    task_ok = np.asarray(np.logical_and.reduceat(entry_ok, problem.indptr[:-1]), dtype=bool)
    live = task_ok[problem.entry_task]
    totals = np.zeros_like(available)
    np.add.at(totals, problem.entry_block[live], demand[live])
    free_block = np.asarray((open_orders & (totals <= available + TOLERANCE)).any(axis=1))
    pairs = np.argwhere(open_orders & ~free_block[:, None])
    claims = np.flatnonzero(task_ok)
    if pairs.size == 0:
        return None, claims
    return build_shape(problem, fits_alone, pairs, _groups(problem, claims)), claims


def _relaxations(
    problem: Problem, shape: Shape, incumbent: np.ndarray, clock: _Clock
) -> list[Relaxation]:
    """L at the concentrated multipliers, then at the fixed-order LP prices: first at the
    incumbent's orders, then at each relaxation's own best orders while they change."""
    found = [relax(shape, concentrated_multipliers(shape))]
    placed = _placement(problem, shape, incumbent)
    chosen = found[0].best_pair if placed is None else placed[1]
    for _ in range(PRICE_ROUNDS):
        if clock.out():
            break
        mu = fixed_order_multipliers(shape, chosen, clock.left())
        if mu is None:
            break
        found.append(relax(shape, mu))
        if np.array_equal(found[-1].best_pair, chosen):
            break
        chosen = found[-1].best_pair
    return found


def _disjunctive(shape: Shape) -> _Model:
    """The convex hull of each block's choice of order: a copy w_{e,a} of each entry's
    z per order, w_{e,a} <= |g| y_{j,a}, sum_e (d/c) w_{e,a} <= room y_{j,a}, z_g = sum_a
    w_{e,a} on every contended block it reads, sum_a y_{j,a} = 1. Its LP bound is far
    tighter than big-M rows (where y = 1/|orders| frees most of every row), so the gap
    closes; it has one column per (entry, order), hence the size limit."""
    n_groups, n_pairs = len(shape.groups), len(shape.pairs)
    e_idx, a_idx = np.nonzero(shape.fits)
    n_w = e_idx.size
    w_col = n_groups + n_pairs + np.arange(n_w)
    w_pair = shape.pair[e_idx, a_idx]
    linked = np.flatnonzero(shape.linked)
    link_row = -np.ones(shape.entries.size, dtype=np.int64)
    link_row[linked] = np.arange(linked.size)
    base_cap = linked.size
    base_knap = base_cap + n_w
    base_block = base_knap + n_pairs
    block_row = np.full(shape.n_blocks, -1, dtype=np.int64)
    block_row[shape.contended] = base_block + np.arange(shape.contended.size)
    rows = [
        link_row[linked],  # z_g
        link_row[e_idx],  # - w
        base_cap + np.arange(n_w),  # w
        base_cap + np.arange(n_w),  # - |g| y
        base_knap + w_pair,  # (d/c) w
        base_knap + np.arange(n_pairs),  # - room y
        block_row[shape.block_of_pair],  # y
    ]
    cols = [
        shape.owner[linked],
        w_col,
        w_col,
        n_groups + w_pair,
        w_col,
        n_groups + np.arange(n_pairs),
        n_groups + np.arange(n_pairs),
    ]
    vals = [
        np.ones(linked.size),
        -np.ones(n_w),
        np.ones(n_w),
        -shape.size[shape.owner[e_idx]],
        shape.scaled[e_idx, a_idx],
        -shape.room,
        np.ones(n_pairs),
    ]
    n_rows = base_block + shape.contended.size
    lower = np.concatenate(
        [np.zeros(linked.size), np.full(n_w + n_pairs, -np.inf), np.ones(shape.contended.size)]
    )
    upper = np.concatenate(
        [np.zeros(linked.size), np.zeros(n_w + n_pairs), np.ones(shape.contended.size)]
    )

    def point(counts: np.ndarray, chosen_pair: np.ndarray) -> np.ndarray:
        y = np.zeros(n_pairs)
        y[chosen_pair] = 1.0
        w = np.where(y[w_pair] > 0, counts[shape.owner[e_idx]], 0.0)
        return np.concatenate([counts, y, w])

    return _Model(
        cost=np.concatenate([-shape.weight, np.zeros(n_pairs + n_w)]),
        upper=np.concatenate([shape.size, np.ones(n_pairs), shape.size[shape.owner[e_idx]]]),
        integer=np.concatenate([np.ones(n_groups + n_pairs, bool), np.zeros(n_w, bool)]),
        row_lower=lower,
        row_upper=upper,
        matrix=csr(rows, cols, vals, (n_rows, n_groups + n_pairs + n_w)),
        point=point,
    )


def _groups(problem: Problem, claims: np.ndarray) -> list[np.ndarray]:
    """Interchangeable claims (same blocks, demand rows and weight), each group in
    submission order, groups in the order of their first member."""
    ranked = claims[np.argsort(problem.tie_rank[claims], kind="stable")]
    members: dict[bytes, list[int]] = {}
    blocks, demand, weights = problem.entry_block, problem.entry_demand, problem.weights
    for i in ranked.tolist():
        span = problem.task_entries(i)
        key = blocks[span].tobytes() + demand[span].tobytes() + weights[i : i + 1].tobytes()
        members.setdefault(key, []).append(i)
    return [np.asarray(g, dtype=np.int64) for g in members.values()]


def _placement(
    problem: Problem, shape: Shape, chosen: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """A granted set as (claims per group, one pair per contended block): per block, the
    first order whose budget holds the granted groups, each of which fits there alone
    (the order that admitted the block's last grant does). None if some claim is not in
    the model (it fits no order alone) or some block has no such order."""
    in_group = np.full(problem.n, -1, dtype=np.int64)
    for k, members in enumerate(shape.groups):
        in_group[members] = k
    if (in_group[chosen] < 0).any():
        return None
    counts = np.bincount(in_group[chosen], minlength=len(shape.groups)).astype(float)
    granted = counts[shape.owner] > 0
    n_pairs = len(shape.pairs)
    load = np.zeros(n_pairs)
    blocked = np.zeros(n_pairs, dtype=bool)
    for a in range(shape.pair.shape[1]):
        on = shape.pair[:, a] >= 0
        np.add.at(load, shape.pair[on, a], shape.scaled[on, a] * counts[shape.owner[on]])
        out = on & granted & ~shape.fits[:, a]
        blocked[shape.pair[out, a]] = True
    usable = (load <= shape.room + _ROW_SLACK) & ~blocked
    chosen_pair = []
    for j in shape.contended.tolist():
        candidates = np.flatnonzero((shape.block_of_pair == j) & usable)
        if candidates.size == 0:
            return None
        chosen_pair.append(int(candidates[0]))
    return counts, np.asarray(chosen_pair, dtype=np.int64)


def _checked_point(model: _Model, counts: np.ndarray, chosen_pair: np.ndarray) -> np.ndarray | None:
    """The start as a point of the model, if it satisfies every row and bound."""
    point: np.ndarray = model.point(counts, chosen_pair)
    activity = model.matrix @ point
    ok = (activity >= model.row_lower - _ROW_SLACK) & (activity <= model.row_upper + _ROW_SLACK)
    return point if ok.all() and (point <= model.upper).all() else None


def _solve(
    model: _Model, start: np.ndarray | None, options: OptimalOptions, time_left: float | None
) -> tuple[np.ndarray | None, bool, float]:
    """(HiGHS's best point or None, whether it proved it optimal, its bound on the
    weight: inf if it has none)."""
    import highspy

    highs = new_highs(time_left, options.mip_rel_gap)
    pass_model(
        highs,
        cost=model.cost,
        upper=model.upper,
        row_lower=model.row_lower,
        row_upper=model.row_upper,
        matrix=model.matrix,
        integer=model.integer,
    )
    if start is not None:
        solution = highspy.HighsSolution()
        solution.col_value = start.tolist()
        solution.value_valid = True
        highs.setSolution(solution)
    highs.run()
    info = highs.getInfo()
    solved = highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
    dual = float(info.mip_dual_bound)
    bound = -dual if math.isfinite(dual) else math.inf
    if info.primal_solution_status == 0:  # no feasible point found
        return None, solved, bound
    return np.round(np.asarray(highs.getSolution().col_value)), solved, bound


def _claims(shape: Shape, solution: np.ndarray) -> np.ndarray:
    """The first z_g members of each group, in submission order."""
    counts = np.round(solution[: len(shape.groups)]).astype(np.int64)
    picked = [g[:c] for g, c in zip(shape.groups, counts.tolist(), strict=True) if c > 0]
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def _weight(problem: Problem, chosen: np.ndarray) -> float:
    return float(problem.weights[chosen].sum())


def _integral(problem: Problem, bound: float) -> float:
    """A bound on a sum of integer weights is itself one: floor it (1e-6 absorbs the
    relaxation's float rounding)."""
    weights = problem.weights
    if math.isfinite(bound) and np.array_equal(weights, np.round(weights)):
        return float(math.floor(bound + 1e-6))
    return bound


def _gap(weight: float, bound: float) -> float:
    """(bound - weight) / weight, 0 when the bound is met, inf with nothing granted."""
    if bound <= weight:
        return 0.0
    return (bound - weight) / weight if weight > 0 else math.inf


def _finish(
    problem: Problem,
    candidates: list[np.ndarray],
    *,
    status: Status,
    bound: float,
    start_weight: float,
    options: OptimalOptions,
    milp: bool = False,
) -> PolicyResult:
    """Grant the best candidate, each packed in arrival order with the ledger's admission
    rule; `optimal` whenever the bound meets it within `mip_rel_gap`.

    Any set satisfying Eq. 5 passes in every order; the re-check only guards against the
    solver's feasibility tolerance, so the ledger can never be asked for the impossible
    (and a solver point that loses a claim to it cannot beat the heuristic start).
    """
    best: list[int] = []
    for chosen in candidates:
        order = chosen[np.argsort(problem.tie_rank[chosen], kind="stable")]
        packed = greedy_pack(problem, order).allocated
        if _weight(problem, np.asarray(packed, dtype=np.int64)) > _weight(
            problem, np.asarray(best, dtype=np.int64)
        ):
            best = packed
    bound = _integral(problem, bound)
    gap = _gap(_weight(problem, np.asarray(best, dtype=np.int64)), bound)
    details = {"start_weight": start_weight, "milp": 1.0 if milp else 0.0}
    if math.isfinite(bound):
        details["bound"] = bound
    return PolicyResult(
        best,
        status="optimal" if gap <= options.mip_rel_gap else status,
        mip_gap=None if math.isinf(gap) else gap,
        details=details,
    )
