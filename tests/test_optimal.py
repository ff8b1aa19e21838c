"""`optimal` is never worse than the heuristics, certifies its gap on a time limit, and
grants interchangeable claims in submission order."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_cli import EXAMPLES, dpsched

from dpsched.offline import parse_instance, run_policy
from dpsched.policies import Problem, get_policy
from dpsched.policies import optimal as optimal_module
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


@settings(max_examples=60, deadline=None)
@given(problems())
def test_never_worse_than_any_heuristic(problem: Problem) -> None:
    best = get_policy("optimal").run(problem)
    weight = float(problem.weights[best.allocated].sum())
    for name in ("dpack", "area", "dpf", "fcfs"):
        chosen = get_policy(name).run(problem).allocated
        assert weight >= float(problem.weights[chosen].sum()) - 1e-9
    assert best.status == "optimal" and best.mip_gap is not None and best.mip_gap <= 1e-6


def test_a_time_limit_keeps_the_incumbent_and_certifies_a_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The big-M rows (used beyond DISJUNCTIVE_LIMIT) leave a gap HiGHS cannot close in 1 s.
    monkeypatch.setattr(optimal_module, "DISJUNCTIVE_LIMIT", 0)
    data = mixed(1000, 10, seed=0).to_instance_dict()
    for block in data["blocks"]:
        block.pop("arrival", None)
    instance = parse_instance(data)
    _, report = run_policy(instance, "optimal", {"time_limit": 1.0}, explain=0)
    _, heuristic = run_policy(instance, "dpack", explain=0)
    assert report["status"] == "time_limit"
    assert report["n_allocated"] >= heuristic["n_allocated"]
    assert 0.0 < report["mip_gap"] < 1.0


def test_the_tight_formulation_proves_the_optimum_on_the_mixed_workload() -> None:
    data = mixed(400, 10, seed=0).to_instance_dict()
    for block in data["blocks"]:
        block.pop("arrival", None)
    instance = parse_instance(data)
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


def test_the_cli_prints_the_gap_and_the_json_has_it(tmp_path: object) -> None:
    out = dpsched("schedule", str(EXAMPLES / "mixed-150.yaml"), "--policy", "optimal")
    assert out.returncode == 0, out.stderr
    assert "optimal (gap " in out.stdout
    done = dpsched(
        "schedule", str(EXAMPLES / "mixed-150.yaml"), "--policy", "optimal", "--json", "-"
    )
    report = json.loads(done.stdout)
    assert report["status"] == "optimal" and 0.0 <= report["mip_gap"] <= 1e-6


def test_a_bad_option_is_one_line_naming_it() -> None:
    done = dpsched(
        "schedule", str(EXAMPLES / "mixed-150.yaml"), "--policy", "optimal", "-o", "gap=2"
    )
    assert done.returncode != 0
    assert "gap" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
