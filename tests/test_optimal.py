"""`optimal` is never worse than the heuristics, its gap is certified by a bound that no
feasible grant exceeds, and interchangeable claims are granted in submission order."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_cli import EXAMPLES, dpsched
from tests.test_policies import brute_force_best, feasible
from tests.test_policies import problems as tiny_problems

from dpsched.cli.tables import status_cell
from dpsched.offline import parse_instance, run_policy
from dpsched.policies import Problem, get_policy
from dpsched.policies import optimal as optimal_module
from dpsched.policies.lagrangian import relax
from dpsched.sim.workloads import mixed


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    n, m, dims = draw(st.integers(1, 30)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    demand = rng.choice([0.1, 0.2, 0.3, 0.5, 0.9, np.inf], size=(n, m, dims))
    demand[rng.random((n, m)) < 0.5] = 0.0
    demand[np.arange(n), rng.integers(0, m, n)] = rng.choice([0.1, 0.3, 0.6], size=(n, dims))
    available = rng.choice([0.0, 0.5, 1.0, 2.0], size=(m, dims))
    available[:, 0] = 1.0
    weights = draw(st.sampled_from([np.ones(n), rng.integers(1, 5, n).astype(float)]))
    return Problem.from_dense(demand, available, weights=weights)


def _mixed(n: int, seed: int) -> object:
    data = mixed(n, 10, seed=seed).to_instance_dict()
    for block in data["blocks"]:
        block.pop("arrival", None)
    return parse_instance(data)


@settings(max_examples=60, deadline=None)
@given(problems())
def test_never_worse_than_any_heuristic_and_feasible(problem: Problem) -> None:
    best = get_policy("optimal").run(problem)
    assert feasible(problem, best.allocated)
    weight = float(problem.weights[best.allocated].sum())
    for name in ("dpack", "area", "dpf", "fcfs"):
        chosen = get_policy(name).run(problem).allocated
        assert weight >= float(problem.weights[chosen].sum()) - 1e-9
    assert best.status == "optimal" and best.mip_gap is not None and best.mip_gap <= 1e-6
    assert best.details["bound"] >= weight - 1e-9


@settings(max_examples=80, deadline=None)
@given(tiny_problems(), st.integers(0, 2**32 - 1))
def test_the_bound_is_above_the_true_optimum_for_any_multipliers(
    problem: Problem, seed: int
) -> None:
    truth = brute_force_best(problem)
    shape, _ = optimal_module.model_shape(problem)
    if shape is not None:
        rng = np.random.default_rng(seed)
        for mu in (np.zeros(shape.entries.size), rng.random(shape.entries.size) * 3.0):
            assert relax(shape, mu).value >= truth - 1e-9
    assert get_policy("optimal").run(problem).details["bound"] >= truth - 1e-9


def test_a_priced_start_finds_what_dpack_misses_when_one_block_binds_every_claim() -> None:
    # Every claim reads block b7; half also read b0..b6 with a smaller demand. dpack's
    # efficiency charges those on eight blocks, but b7 alone binds: the optimum is the
    # smallest demands that fit b7 together.
    tasks = [{"id": f"s{i}", "blocks": ["b7"], "demand": {"epsilon": 0.05}} for i in range(20)]
    every = [f"b{j}" for j in range(8)]
    tasks += [{"id": f"m{i}", "blocks": every, "demand": {"epsilon": 0.03}} for i in range(20)]
    instance = parse_instance(
        {
            "accounting": "basic",
            "blocks": [{"id": f"b{j}", "epsilon": 1.0} for j in range(8)],
            "tasks": tasks,
        }
    )
    demands = np.sort([0.05] * 20 + [0.03] * 20)
    best = int((np.cumsum(demands) <= 1.0 + 1e-9).sum())
    _, report = run_policy(instance, "optimal", explain=0)
    _, heuristic = run_policy(instance, "dpack", explain=0)
    assert report["n_allocated"] == best > heuristic["n_allocated"]
    assert report["status"] == "optimal" and report["mip_gap"] == 0.0


def test_a_time_limit_keeps_the_incumbent_and_certifies_a_gap() -> None:
    instance = _mixed(400, seed=1)
    _, report = run_policy(instance, "optimal", {"time_limit": 0.3}, explain=0)
    _, heuristic = run_policy(instance, "dpack", explain=0)
    assert report["status"] == "time_limit"
    assert report["n_allocated"] >= heuristic["n_allocated"]
    assert 0.0 < report["mip_gap"] <= 1.0
    bound, granted = report["details"]["bound"], report["total_weight"]
    assert report["mip_gap"] == pytest.approx((bound - granted) / granted)


def test_beyond_the_milp_the_best_start_comes_with_a_certified_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(optimal_module, "DISJUNCTIVE_LIMIT", 0)
    instance = _mixed(400, seed=1)
    _, report = run_policy(instance, "optimal", {"time_limit": 60.0}, explain=0)
    _, heuristic = run_policy(instance, "dpack", explain=0)
    assert report["status"] in ("heuristic", "optimal") and report["details"]["milp"] == 0.0
    assert report["runtime_s"] < 10.0  # no solver waiting for the limit
    assert report["n_allocated"] >= heuristic["n_allocated"]
    assert 0.0 <= report["mip_gap"] <= 1.0
    assert report["details"]["bound"] >= report["total_weight"]


def test_the_mixed_workload_is_proven_optimal() -> None:
    instance = _mixed(400, seed=0)
    _, report = run_policy(instance, "optimal", {"time_limit": 60.0}, explain=0)
    _, heuristic = run_policy(instance, "dpack", explain=0)
    assert report["status"] == "optimal" and report["mip_gap"] <= 1e-6
    assert report["n_allocated"] >= heuristic["n_allocated"]


def test_interchangeable_claims_are_granted_in_submission_order() -> None:
    tasks = [{"id": f"t{i}", "blocks": ["b0"], "demand": {"epsilon": 0.3}} for i in range(12)]
    tasks.append({"id": "big", "blocks": ["b0", "b1"], "demand": {"epsilon": 0.7}})
    instance = parse_instance(
        {
            "accounting": "basic",
            "blocks": [{"id": "b0", "epsilon": 1.0}, {"id": "b1", "epsilon": 1.0}],
            "tasks": tasks,
        }
    )
    _, report = run_policy(instance, "optimal", explain=0)
    assert sorted(report["allocated"], key=lambda t: int(t[1:])) == ["t0", "t1", "t2"]


def test_the_cli_prints_the_gap_and_the_json_has_it() -> None:
    out = dpsched("schedule", str(EXAMPLES / "mixed-150.yaml"), "--policy", "optimal")
    assert out.returncode == 0, out.stderr
    assert "optimal (gap " in out.stdout
    done = dpsched(
        "schedule", str(EXAMPLES / "mixed-150.yaml"), "--policy", "optimal", "--json", "-"
    )
    report = json.loads(done.stdout)
    assert report["status"] == "optimal" and 0.0 <= report["mip_gap"] <= 1e-6
    assert report["details"]["bound"] == pytest.approx(report["total_weight"])
    compared = dpsched("compare", str(EXAMPLES / "mixed-150.yaml"), "--policies", "dpack,optimal")
    assert compared.returncode == 0, compared.stderr
    row = next(line for line in compared.stdout.splitlines() if "│ optimal" in line)
    assert "gap " in row


def test_a_bad_option_is_one_line_naming_it() -> None:
    done = dpsched(
        "schedule", str(EXAMPLES / "mixed-150.yaml"), "--policy", "optimal", "-o", "gap=2"
    )
    assert done.returncode != 0
    assert "gap" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_status_cell_says_when_the_heuristic_start_is_the_answer() -> None:
    report = {"status": "time_limit", "mip_gap": 0.0123, "total_weight": 240.0}
    kept = status_cell({**report, "details": {"start_weight": 240.0}})
    improved = status_cell({**report, "details": {"start_weight": 236.0}})
    assert "gap 1.23%" in kept and "heuristic start" in kept
    assert "gap 1.23%" in improved and "heuristic start" not in improved
    assert status_cell({"status": "heuristic", "mip_gap": None, "details": {}}) == "heuristic"
