from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dpsched.budget import Accounting
from dpsched.core import BlockSpec, Ledger, PerArrival, snapshot
from dpsched.errors import InputError
from dpsched.offline import parse_instance, run_policy
from dpsched.policies import POLICIES, Problem, get_policy, schedule_step
from dpsched.policies.dpack import best_orders
from dpsched.policies.dpf import dpf_order
from dpsched.policies.knapsack import knapsack_values
from dpsched.sim.workloads import mixed

HEURISTICS = ("fcfs", "dpf", "area", "dpack")


def feasible(problem: Problem, chosen: list[int]) -> bool:
    """Independent check of the privacy-knapsack constraint (DPack Eq. 5)."""
    demand = np.zeros((problem.n, problem.m, problem.dims))
    for i in range(problem.n):
        s = problem.task_entries(i)
        demand[i, problem.entry_block[s]] = problem.entry_demand[s]
    used = demand[chosen].sum(axis=0)
    requested = (demand[chosen] != 0).any(axis=(0, 2)) if chosen else np.zeros(problem.m, bool)
    ok_order = (used <= problem.available + 1e-9) & (problem.capacity > 0)
    return bool(np.all(ok_order.any(axis=1) | ~requested))


def brute_force_best(problem: Problem) -> float:
    best = 0.0
    for size in range(problem.n + 1):
        for subset in itertools.combinations(range(problem.n), size):
            if feasible(problem, list(subset)):
                best = max(best, float(problem.weights[list(subset)].sum()))
    return best


def best_knapsack_weight(demand: np.ndarray, weights: np.ndarray, capacity: float) -> float:
    """Brute force over all subsets of one block's items."""
    n = len(weights)
    return max(
        float(weights[list(s)].sum())
        for k in range(n + 1)
        for s in itertools.combinations(range(n), k)
        if demand[list(s), 0].sum() <= capacity + 1e-9
    )


def fig1() -> Problem:
    demand = np.zeros((4, 3))
    demand[0, :] = 0.5
    demand[1, 0] = demand[2, 1] = demand[3, 2] = 0.6
    return Problem.from_dense(demand, np.ones(3))


def fig3() -> Problem:
    """Two blocks, two orders; block 0 packs best at order 0, block 1 at order 1 (DPack Fig. 3)."""
    demand = np.zeros((6, 2, 2))
    demand[0, 0] = demand[1, 0] = (0.5, 1.5)
    demand[2, 0] = (0.6, 0.6)
    demand[3, 1] = demand[4, 1] = (1.5, 0.5)
    demand[5, 1] = (0.6, 0.6)
    return Problem.from_dense(demand, np.ones((2, 2)))


@pytest.mark.parametrize(
    ("policy", "expected"), [("dpf", 1), ("fcfs", 1), ("area", 3), ("dpack", 3), ("optimal", 3)]
)
def test_dpack_figure_1(policy: str, expected: int) -> None:
    result = get_policy(policy).run(fig1())
    assert len(result.allocated) == expected
    assert feasible(fig1(), result.allocated)


def test_dpack_figure_3_rdp_dpf_packs_fewer_than_dpack() -> None:
    problem = fig3()
    counts = {name: len(get_policy(name).run(problem).allocated) for name in POLICIES}
    assert counts["dpf"] == 2
    assert counts["dpack"] == counts["optimal"] == 4
    best, _ = best_orders(problem, np.ones(6, bool), problem.available, 0.05)
    assert best.tolist() == [0, 1]
    assert len(get_policy("dpack").run(problem, {"recompute_every": 1}).allocated) == 4


def test_privatekube_figure_4_dpf_n() -> None:
    ledger = Ledger(Accounting("basic"))
    for j in range(2):
        ledger.add_block(BlockSpec(id=f"PB{j + 1}", epsilon=10.0))
    unlocking = PerArrival(10)  # fair share 1 per block
    demands = {"P1": (0.5, 1.5), "P2": (1.0, 1.0), "P3": (1.5, 1.0)}
    granted = {}
    for t, (pid, (d1, d2)) in enumerate(demands.items(), start=1):
        claim = ledger.submit(
            {
                "id": pid,
                "arrival": t,
                "demand_by_block": {"PB1": {"epsilon": d1}, "PB2": {"epsilon": d2}},
            },
            time=t,
        )
        unlocking.on_claim_submitted(ledger, claim, t)
        granted[t] = schedule_step(ledger, POLICIES["dpf"], time=t).granted
    assert granted == {1: [], 2: ["P2"], 3: ["P1"]}
    assert [c.id for c in ledger.pending()] == ["P3"]


def test_dpf_breaks_dominant_ties_with_the_next_share_then_arrival_then_submission() -> None:
    demand = np.array([[1.5, 1.0], [0.5, 1.5], [1.5, 0.5], [0.5, 1.5]])
    problem = Problem.from_dense(
        demand, np.full(2, 3.0), arrival=[0, 0, 1, 0], ids=["d", "c", "b", "a"]
    )
    # c and a tie on both shares and arrival: c was submitted first (ids play no part).
    assert [problem.ids[i] for i in dpf_order(problem)] == ["c", "a", "b", "d"]


def test_weighted_dpf_divides_shares_by_weight() -> None:
    problem = Problem.from_dense(np.array([[0.2], [0.3]]), np.ones(1), weights=[1.0, 3.0])
    assert dpf_order(problem).tolist() == [1, 0]
    assert dpf_order(problem, weighted=False).tolist() == [0, 1]


def test_fcfs_ties_in_submission_order_not_by_id() -> None:
    problem = Problem.from_dense(
        np.full((3, 1), 0.4), np.ones(1), arrival=[0, 0, 0], ids=["z", "b", "a"]
    )
    assert [problem.ids[i] for i in get_policy("fcfs").run(problem).allocated] == ["z", "b"]


def _twelve_together() -> dict[str, object]:
    """t0..t11 arriving together, each 0.25 of a block's 1.0 (basic): room for four."""
    return {
        "accounting": "basic",
        "blocks": [{"id": "b0", "epsilon": 1.0}],
        "tasks": [
            {"id": f"t{i}", "blocks": ["b0"], "demand": {"epsilon": 0.25}} for i in range(12)
        ],
    }


def test_fcfs_on_t0_to_t11_arriving_together_grants_in_file_order() -> None:
    # Compared as strings, t10 and t11 would come before t2.
    _, report = run_policy(parse_instance(_twelve_together()), "fcfs")
    assert report["allocated"] == ["t0", "t1", "t2", "t3"]


@pytest.mark.parametrize("policy", HEURISTICS)
def test_every_heuristic_breaks_exact_ties_in_file_order(policy: str) -> None:
    # Identical claims: whatever the policy's key, the tie-break alone decides.
    _, report = run_policy(parse_instance(_twelve_together()), policy)
    assert sorted(report["allocated"], key=lambda t: int(t[1:])) == ["t0", "t1", "t2", "t3"]


def test_submission_order_survives_a_snapshot() -> None:
    ledger = Ledger(Accounting("basic"))
    ledger.add_block(BlockSpec(id="b0", epsilon=1.0))
    ledger.unlock(np.ones(1), np.asarray([0]))
    for i in range(12):
        ledger.submit({"id": f"t{i}", "blocks": ["b0"], "demand": {"epsilon": 0.25}}, 0.0)
    for copy in (
        snapshot.from_arrays(snapshot.to_arrays(ledger)),
        snapshot.from_dict(snapshot.to_dict(ledger)),
    ):
        copy.submit({"id": "t12", "blocks": ["b0"], "demand": {"epsilon": 0.25}}, 0.0)
        granted = schedule_step(copy, POLICIES["fcfs"], time=0.0).granted
        assert granted == ["t0", "t1", "t2", "t3"]


def test_unknown_options_and_policies_are_refused() -> None:
    with pytest.raises(InputError, match="bogus: unknown key"):
        get_policy("dpack").options({"bogus": 1})
    with pytest.raises(InputError, match="recompute_every"):
        get_policy("dpack").options({"recompute_every": -1})
    with pytest.raises(InputError, match="unknown policy"):
        get_policy("lottery")


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    n = draw(st.integers(1, 7))
    m = draw(st.integers(1, 3))
    dims = draw(st.integers(1, 3))
    values = st.floats(0.05, 1.2, allow_nan=False)
    demand = np.zeros((n, m, dims))
    for i in range(n):
        blocks = draw(st.lists(st.integers(0, m - 1), min_size=1, max_size=m, unique=True))
        for j in blocks:
            demand[i, j] = [draw(values) for _ in range(dims)]
    available = np.array([[draw(st.floats(0.0, 2.0)) for _ in range(dims)] for _ in range(m)])
    capacity = available + np.array(
        [[draw(st.floats(0.0, 1.0)) for _ in range(dims)] for _ in range(m)]
    )
    weights = [draw(st.sampled_from([1.0, 1.0, 2.0, 5.0, 0.5])) for _ in range(n)]
    return Problem.from_dense(demand, available, capacity=capacity, weights=weights)


@given(problems())
def test_every_policy_is_feasible_and_optimal_is_optimal(problem: Problem) -> None:
    weights = {}
    for name in POLICIES:
        result = get_policy(name).run(problem)
        assert feasible(problem, result.allocated), name
        assert len(set(result.allocated)) == len(result.allocated)
        weights[name] = float(problem.weights[result.allocated].sum())
    assert weights["optimal"] == pytest.approx(brute_force_best(problem))
    for name in HEURISTICS:
        assert weights[name] <= weights["optimal"] + 1e-9


@given(
    st.lists(st.tuples(st.floats(0.01, 1.0), st.integers(1, 9)), min_size=1, max_size=9),
    st.floats(0.1, 3.0),
)
def test_knapsack_exact_regimes_match_brute_force(
    items: list[tuple[float, int]], capacity: float
) -> None:
    demand = np.array([[d] for d, _ in items])
    for weights in (np.array([float(w) for _, w in items]), np.ones(len(items))):
        best = best_knapsack_weight(demand, weights, capacity)
        values, eta = knapsack_values(demand, weights, np.array([capacity]), 0.05)
        assert eta == 0.0
        assert values[0] == pytest.approx(best)


@given(
    st.lists(st.tuples(st.floats(0.01, 1.0), st.floats(0.1, 10.0)), min_size=2, max_size=9),
    st.floats(0.1, 3.0),
)
def test_knapsack_fptas_is_within_eta(items: list[tuple[float, float]], capacity: float) -> None:
    demand = np.array([[d] for d, _ in items])
    weights = np.array([w for _, w in items]) + 0.001  # non-integral: forces the FPTAS
    best = best_knapsack_weight(demand, weights, capacity)
    eta = 0.1
    values, used = knapsack_values(demand, weights, np.array([capacity]), eta)
    assert used <= eta + 1e-12
    assert best / (1 + eta) - 1e-9 <= values[0] <= best + 1e-9


def test_optimal_returns_its_incumbent_on_time_limit() -> None:
    instance = parse_instance(mixed(400, 10, seed=1).to_instance_dict())
    _, report = run_policy(instance, "optimal", {"time_limit": 0.05})
    assert report["status"] == "time_limit"
    assert report["mip_gap"] is not None and report["mip_gap"] > 0
    _, dpack_report = run_policy(instance, "dpack")
    assert report["n_allocated"] <= 400
    assert dpack_report["n_allocated"] > 0


def test_dpack_beats_dpf_and_nears_optimal_on_the_mixed_workload() -> None:
    instance = parse_instance(mixed(150, 10, seed=3).to_instance_dict())
    n = {
        p: run_policy(instance, p, {"time_limit": 60.0} if p == "optimal" else {})[1]["n_allocated"]
        for p in POLICIES
    }
    assert n["dpack"] > n["dpf"] > n["fcfs"]
    assert n["dpack"] >= 0.9 * n["optimal"]
