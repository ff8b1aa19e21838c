"""DPack's incremental best orders grant exactly what re-solving every knapsack from
scratch grants (tests/dpack_reference.py is the implementation before the change)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.dpack_reference import reference_dpack

from dpsched.core.admission import TOLERANCE
from dpsched.offline import parse_instance, run_policy
from dpsched.policies import Problem, get_policy
from dpsched.policies.lanes import SortedLanes
from dpsched.policies.step import problem_from_ledger
from dpsched.sim.workloads import mixed


@st.composite
def problems(draw: st.DrawFn) -> tuple[Problem, int]:
    n = draw(st.integers(1, 40))
    m = draw(st.integers(1, 5))
    dims = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Few distinct demand values, so that ties (in sums, counts and efficiencies) are common.
    levels = rng.choice([0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 1.0, np.inf], size=(n, m, dims))
    reads = rng.random((n, m)) < draw(st.sampled_from([0.3, 0.6, 1.0]))
    reads[np.arange(n), rng.integers(0, m, n)] = True
    demand = np.where(reads[:, :, None], levels, 0.0)
    demand[reads & (demand == 0).all(axis=2)] = 0.1
    available = rng.choice([0.0, 0.5, 1.0, 2.0], size=(m, dims))
    available[:, 0] = np.maximum(available[:, 0], 0.5)
    weights = draw(
        st.sampled_from([np.ones(n), rng.integers(1, 4, n).astype(float), rng.uniform(0.5, 3.0, n)])
    )
    arrival = rng.integers(0, 3, n).astype(float)
    problem = Problem.from_dense(demand, available, weights=weights, arrival=arrival)
    return problem, draw(st.sampled_from([0, 1, 2, 3, 7]))


@settings(max_examples=400, deadline=None)
@given(problems())
def test_incremental_dpack_grants_what_re_solving_grants(case: tuple[Problem, int]) -> None:
    problem, recompute = case
    got = get_policy("dpack").run(problem, {"recompute_every": recompute}).allocated
    assert got == reference_dpack(problem, recompute_every=recompute)


@pytest.mark.parametrize("recompute", [1, 5])
def test_same_grants_on_the_mixed_microbenchmark(recompute: int) -> None:
    data = mixed(300, 10, seed=1).to_instance_dict()
    for block in data["blocks"]:
        block.pop("arrival", None)
    instance = parse_instance(data)
    problem = problem_from_ledger(instance.ledger())
    expected = {problem.ids[i] for i in reference_dpack(problem, recompute_every=recompute)}
    _, report = run_policy(instance, "dpack", {"recompute_every": recompute})
    assert set(report["allocated"]) == expected and len(expected) > 50


def fresh_counts(problem: Problem, pending: np.ndarray, available: np.ndarray) -> np.ndarray:
    """The knapsack counts from scratch: per block and order, sort the pending claims'
    demands and count how many of the smallest fit."""
    counts = np.zeros((problem.m, problem.dims), dtype=np.int64)
    for j in range(problem.m):
        rows = [
            problem.entry_demand[e]
            for i in np.flatnonzero(pending)
            for e in range(problem.indptr[i], problem.indptr[i + 1])
            if problem.entry_block[e] == j
        ]
        for a in range(problem.dims):
            running = np.cumsum(np.sort([r[a] for r in rows]))
            counts[j, a] = int((running <= available[j, a] + TOLERANCE).sum())
    return counts


@settings(max_examples=200, deadline=None)
@given(problems(), st.data())
def test_lanes_match_fresh_counts_after_grants_and_departures(
    case: tuple[Problem, int], data: st.DataObject
) -> None:
    problem, _ = case
    available = problem.available.copy()
    lanes = SortedLanes(problem, available)
    pending = np.ones(problem.n, dtype=bool)
    for _ in range(data.draw(st.integers(1, 6))):
        left = np.flatnonzero(pending)
        if left.size == 0:
            break
        leaving = np.asarray(
            data.draw(st.lists(st.sampled_from(left.tolist()), min_size=1, max_size=3, unique=True))
        )
        granted = leaving[: data.draw(st.integers(0, leaving.size))]
        for i in granted.tolist():  # granting takes the claim's demand from its blocks
            span = problem.task_entries(i)
            available[problem.entry_block[span]] -= problem.entry_demand[span]
        pending[leaving] = False
        lanes.remove(leaving)
        blocks = np.unique(problem.entry_block[np.isin(problem.entry_task, leaving)])
        lanes.shrink(blocks, available)
        if granted.size < leaving.size:
            lanes.grow(blocks, available)
        assert (lanes.counts() == fresh_counts(problem, pending, available)).all()
