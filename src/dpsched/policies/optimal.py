"""Exact privacy knapsack (DPack Eq. 5) as a MILP solved by HiGHS (`highspy`).

An "optimal" that returns less than a heuristic on a time limit is worse than useless,
so the solver starts from the best heuristic answer (dpack's or area's, checked
feasible for the MILP's own rows) as its incumbent: the answer is never worse than
theirs, and on a time limit HiGHS's best bound certifies how far it can be from the
optimum (`mip_gap`).

Variables: z_g (how many claims of group g are granted) and y_{j,a} (order a is the
one kept within budget on block j). Claims with the same blocks, demand rows and
weight are interchangeable, so they form one group with an integer z_g in [0, |g|]
instead of |g| binaries: that removes the symmetry that made branch and bound
enumerate equivalent subsets, and the granted members are the first z_g in
submission order. Per block: sum_a y_{j,a} >= 1. Per (block, order), rows scaled by
the capacity left: sum_g (d_{gja}/c_{ja}) z_g + M_{ja} y_{ja} <= 1 + M_{ja}, with
M_{ja} = max(sum of demands / c_{ja} - 1, 0), the tightest big-M that frees the row
when y = 0; a group that does not fit order a alone is kept out of it by
z_g + |g| y_{ja} <= |g|. Blocks where every pending claim together fits at some
order are dropped (no contention), and claims that fit no order of some block alone
are left out.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dpsched.core.admission import TOLERANCE
from dpsched.policies.area import area_order
from dpsched.policies.dpack import DpackOptions, dpack
from dpsched.policies.packing import greedy_pack
from dpsched.policies.problem import Problem
from dpsched.policies.result import PolicyResult

DISJUNCTIVE_LIMIT = 400_000
"""Most (entry, order) columns for the tight formulation; beyond, big-M rows."""
_ROW_SLACK = 1e-9
"""Slack on the scaled rows when checking an incumbent: the policies' own tolerance."""


class OptimalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_limit: float | None = Field(None, gt=0.0, description="seconds; best incumbent after")
    mip_rel_gap: float = Field(1e-6, ge=0.0, description="relative gap at which HiGHS stops")


@dataclass
class _Model:
    """The MILP in HiGHS's row-wise form, with what is needed to read a solution back."""

    groups: list[np.ndarray]
    """Per group, its claims in submission order."""
    cost: np.ndarray
    upper: np.ndarray
    integer: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    matrix: Any
    """scipy.sparse CSR (rows x columns); columns start with the groups' z_g."""
    point: Any
    """(granted claims per group, chosen pair per contended block) -> column values."""


@dataclass
class _Shape:
    """What both formulations are built from: groups, one representative entry per
    (group, block) (the group leader's), and the contended (block, order) pairs."""

    groups: list[np.ndarray]
    size: np.ndarray
    weight: np.ndarray
    entries: np.ndarray
    owner: np.ndarray
    blocks: np.ndarray
    pair: np.ndarray
    """(entries x orders): the contended pair index, -1 where that order is not one."""
    fits: np.ndarray
    """(entries x orders): a contended pair where the entry fits alone."""
    scaled: np.ndarray
    """(entries x orders): demand over the capacity left (0 where not `fits`)."""
    pairs: np.ndarray
    block_of_pair: np.ndarray
    contended: np.ndarray


def optimal(problem: Problem, options: OptimalOptions) -> PolicyResult:
    available = problem.available
    open_orders = problem.usable & (available > TOLERANCE)
    demand = problem.entry_demand
    fits_alone = (demand <= available[problem.entry_block] + TOLERANCE) & open_orders[
        problem.entry_block
    ]
    entry_ok = fits_alone.any(axis=1)
    task_ok = np.asarray(np.logical_and.reduceat(entry_ok, problem.indptr[:-1]), dtype=bool)
    live = task_ok[problem.entry_task]
    totals_all = np.zeros_like(available)
    np.add.at(totals_all, problem.entry_block[live], demand[live])
    free_block = np.asarray((open_orders & (totals_all <= available + TOLERANCE)).any(axis=1))
    pairs = np.argwhere(open_orders & ~free_block[:, None])
    if pairs.size == 0:
        return _finish(problem, np.flatnonzero(task_ok), "optimal", 0.0)

    shape = _shape(problem, task_ok, fits_alone, pairs)
    fine = int(shape.fits.sum()) <= DISJUNCTIVE_LIMIT
    model = _disjunctive(shape) if fine else _big_m(shape)
    incumbent = _incumbent(problem, shape, model)
    solution, status, gap = _solve(model, incumbent, options)
    if solution is None:
        if incumbent is None:
            return _finish(problem, np.zeros(0, dtype=np.int64), status, math.inf)
        solution = incumbent
    if incumbent is not None and _weight(model, incumbent) > _weight(model, solution) + 1e-9:
        solution = incumbent  # never below the heuristic, whatever HiGHS says
    value = _weight(model, solution)
    if math.isinf(gap) and value > 0:
        # Stopped before any bound of its own: every claim that fits at all is one.
        gap = (float(problem.weights[task_ok].sum()) - value) / value
    result = _finish(problem, _claims(model, solution), status, gap)
    result.details["formulation"] = 1.0 if fine else 0.0
    return result


def _shape(
    problem: Problem, task_ok: np.ndarray, fits_alone: np.ndarray, pairs: np.ndarray
) -> _Shape:
    groups = _groups(problem, np.flatnonzero(task_ok))
    leader = np.array([g[0] for g in groups], dtype=np.int64)
    size = np.array([g.size for g in groups], dtype=float)
    pair_index = -np.ones(problem.available.shape, dtype=np.int64)
    pair_index[pairs[:, 0], pairs[:, 1]] = np.arange(len(pairs))
    starts, stops = problem.indptr[leader], problem.indptr[leader + 1]
    owner = np.repeat(np.arange(leader.size), stops - starts)
    entries = np.repeat(starts - np.cumsum(stops - starts) + (stops - starts), stops - starts)
    entries = entries + np.arange(entries.size)
    blocks = problem.entry_block[entries]
    pair = pair_index[blocks]
    fits = (pair >= 0) & fits_alone[entries]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scaled = np.where(fits, problem.entry_demand[entries] / problem.available[blocks], 0.0)
    return _Shape(
        groups=groups,
        size=size,
        weight=problem.weights[leader],
        entries=entries,
        owner=owner,
        blocks=blocks,
        pair=pair,
        fits=fits,
        scaled=scaled,
        pairs=pairs,
        block_of_pair=pairs[:, 0],
        contended=np.unique(pairs[:, 0]),
    )


def _csr(
    rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray], shape: tuple[int, int]
) -> Any:
    from scipy.sparse import coo_matrix

    return coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    ).tocsr()


def _disjunctive(shape: _Shape) -> _Model:
    """The convex hull of each block's choice of order: a copy w_{e,a} of each entry's
    z per order, w_{e,a} <= |g| y_{j,a}, sum_e (d/c) w_{e,a} <= y_{j,a}, z_g = sum_a
    w_{e,a} on every contended block it reads, sum_a y_{j,a} = 1. Its LP bound is far
    tighter than big-M rows (where y = 1/|orders| frees most of every row), so the gap
    closes; it has one column per (entry, order), hence the size limit."""
    n_groups, n_pairs = len(shape.groups), len(shape.pairs)
    e_idx, a_idx = np.nonzero(shape.fits)
    n_w = e_idx.size
    w_col = n_groups + n_pairs + np.arange(n_w)
    w_pair = shape.pair[e_idx, a_idx]
    on_contended = (shape.pair >= 0).any(axis=1)
    linked = np.flatnonzero(on_contended)
    link_row = -np.ones(shape.entries.size, dtype=np.int64)
    link_row[linked] = np.arange(linked.size)
    base_cap = linked.size
    base_knap = base_cap + n_w
    base_block = base_knap + n_pairs
    block_row = np.full(int(shape.pairs[:, 0].max()) + 1, -1, dtype=np.int64)
    block_row[shape.contended] = base_block + np.arange(shape.contended.size)
    rows = [
        link_row[linked],  # z_g
        link_row[e_idx],  # - w
        base_cap + np.arange(n_w),  # w
        base_cap + np.arange(n_w),  # - |g| y
        base_knap + w_pair,  # (d/c) w
        base_knap + np.arange(n_pairs),  # - y
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
        -np.ones(n_pairs),
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
        groups=shape.groups,
        cost=np.concatenate([-shape.weight, np.zeros(n_pairs + n_w)]),
        upper=np.concatenate([shape.size, np.ones(n_pairs), shape.size[shape.owner[e_idx]]]),
        integer=np.concatenate([np.ones(n_groups + n_pairs, bool), np.zeros(n_w, bool)]),
        row_lower=lower,
        row_upper=upper,
        matrix=_csr(rows, cols, vals, (n_rows, n_groups + n_pairs + n_w)),
        point=point,
    )


def _big_m(shape: _Shape) -> _Model:
    """One row per contended (block, order), freed by a big-M when y = 0: one column per
    group and pair, for instances too large for `_disjunctive`."""
    n_groups, n_pairs = len(shape.groups), len(shape.pairs)
    e_idx, a_idx = np.nonzero(shape.fits)
    r = shape.pair[e_idx, a_idx]
    coefficient = shape.scaled[e_idx, a_idx]
    totals = np.bincount(r, weights=coefficient * shape.size[shape.owner[e_idx]], minlength=n_pairs)
    big_m = np.maximum(totals - 1.0, 0.0)
    bad_entry, bad_order = np.nonzero((shape.pair >= 0) & ~shape.fits)
    n_bad = bad_entry.size
    bad_size = shape.size[shape.owner[bad_entry]]
    block_row = np.full(int(shape.pairs[:, 0].max()) + 1, -1, dtype=np.int64)
    block_row[shape.contended] = n_pairs + n_bad + np.arange(shape.contended.size)
    rows = [r, np.arange(n_pairs), n_pairs + np.arange(n_bad), n_pairs + np.arange(n_bad)]
    rows.append(block_row[shape.block_of_pair])
    cols = [
        shape.owner[e_idx],
        n_groups + np.arange(n_pairs),
        shape.owner[bad_entry],
        n_groups + shape.pair[bad_entry, bad_order],
        n_groups + np.arange(n_pairs),
    ]
    vals = [coefficient, big_m, np.ones(n_bad), bad_size, np.ones(n_pairs)]
    n_rows = n_pairs + n_bad + shape.contended.size
    lower = np.concatenate([np.full(n_pairs + n_bad, -np.inf), np.ones(shape.contended.size)])
    upper = np.concatenate([1.0 + big_m, bad_size, np.full(shape.contended.size, np.inf)])

    def point(counts: np.ndarray, chosen_pair: np.ndarray) -> np.ndarray:
        y = np.zeros(n_pairs)
        y[chosen_pair] = 1.0
        return np.concatenate([counts, y])

    return _Model(
        groups=shape.groups,
        cost=np.concatenate([-shape.weight, np.zeros(n_pairs)]),
        upper=np.concatenate([shape.size, np.ones(n_pairs)]),
        integer=np.ones(n_groups + n_pairs, dtype=bool),
        row_lower=lower,
        row_upper=upper,
        matrix=_csr(rows, cols, vals, (n_rows, n_groups + n_pairs)),
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


def _incumbent(problem: Problem, shape: _Shape, model: _Model) -> np.ndarray | None:
    """The better of dpack's and area's answers as a point of the model, if it satisfies
    every row (it does unless float rounding says otherwise); None if neither does."""
    best: np.ndarray | None = None
    for chosen in (
        dpack(problem, DpackOptions()).allocated,
        greedy_pack(problem, area_order(problem)).allocated,
    ):
        point = _as_point(problem, shape, model, np.asarray(chosen, dtype=np.int64))
        if point is None:
            continue
        if best is None or _weight(model, point) > _weight(model, best):
            best = point
    return best


def _as_point(
    problem: Problem, shape: _Shape, model: _Model, chosen: np.ndarray
) -> np.ndarray | None:
    in_group = np.full(problem.n, -1, dtype=np.int64)
    for k, members in enumerate(shape.groups):
        in_group[members] = k
    if (in_group[chosen] < 0).any():
        return None  # a claim the model left out (it fits no order alone)
    counts = np.bincount(in_group[chosen], minlength=len(shape.groups)).astype(float)
    # Per contended block, the first order whose budget holds the granted groups, each
    # of which fits there alone: the order that admitted the block's last grant does.
    granted = counts[shape.owner] > 0
    n_pairs = len(shape.pairs)
    load = np.zeros(n_pairs)
    blocked = np.zeros(n_pairs, dtype=bool)
    for a in range(shape.pair.shape[1]):
        on = shape.pair[:, a] >= 0
        np.add.at(load, shape.pair[on, a], shape.scaled[on, a] * counts[shape.owner[on]])
        out = on & granted & ~shape.fits[:, a]
        blocked[shape.pair[out, a]] = True
    usable = (load <= 1.0 + _ROW_SLACK) & ~blocked
    chosen_pair = []
    for j in shape.contended.tolist():
        candidates = np.flatnonzero((shape.block_of_pair == j) & usable)
        if candidates.size == 0:
            return None
        chosen_pair.append(int(candidates[0]))
    point: np.ndarray = model.point(counts, np.asarray(chosen_pair, dtype=np.int64))
    activity = model.matrix @ point
    ok = (activity >= model.row_lower - _ROW_SLACK) & (activity <= model.row_upper + _ROW_SLACK)
    return point if ok.all() else None


def _solve(
    model: _Model, incumbent: np.ndarray | None, options: OptimalOptions
) -> tuple[np.ndarray | None, str, float]:
    import highspy

    with _quiet_stdout():  # HiGHS prints a banner on its first construction, on fd 1
        highs = highspy.Highs()  # type: ignore[no-untyped-call]
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("mip_rel_gap", options.mip_rel_gap)
    if options.time_limit is not None:
        highs.setOptionValue("time_limit", float(options.time_limit))
    matrix = model.matrix
    lp = highspy.HighsLp()
    lp.num_col_ = matrix.shape[1]
    lp.num_row_ = matrix.shape[0]
    lp.col_cost_ = model.cost
    lp.col_lower_ = np.zeros(matrix.shape[1])
    lp.col_upper_ = model.upper
    lp.row_lower_ = model.row_lower
    lp.row_upper_ = model.row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = matrix.shape[1]
    lp.a_matrix_.num_row_ = matrix.shape[0]
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
    lp.integrality_ = [kinds[int(k)] for k in model.integer]
    highs.passModel(lp)
    if incumbent is not None:
        start = highspy.HighsSolution()
        start.col_value = incumbent.tolist()
        start.value_valid = True
        highs.setSolution(start)
    highs.run()
    status = highs.getModelStatus()
    info = highs.getInfo()
    done = "optimal" if status == highspy.HighsModelStatus.kOptimal else "time_limit"
    if info.primal_solution_status == 0:  # no feasible point found
        return None, done, math.inf
    values = np.asarray(highs.getSolution().col_value)
    gap = float(info.mip_gap)
    return np.round(values), done, max(gap, 0.0) if math.isfinite(gap) else math.inf


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send the process's file descriptor 1 to /dev/null for a moment: `--json -` writes
    the report there, and a C library's banner would break it."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _weight(model: _Model, solution: np.ndarray) -> float:
    return float(-(model.cost @ solution))


def _claims(model: _Model, solution: np.ndarray) -> np.ndarray:
    """The first z_g members of each group, in submission order."""
    counts = np.round(solution[: len(model.groups)]).astype(np.int64)
    picked = [g[:c] for g, c in zip(model.groups, counts.tolist(), strict=True) if c > 0]
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


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
