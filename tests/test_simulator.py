"""The simulator: modes, unlocking, timeouts, termination, reproducibility, orderings."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.figure import Figure

from dpsched.core import ClaimState, snapshot
from dpsched.policies import POLICIES, problem_from_ledger, schedule_step
from dpsched.sim.config import load_config, parse_config
from dpsched.sim.plotting import line_figure, read_table
from dpsched.sim.reproduce import (
    FIGURES,
    _gain_grows,
    _ordered,
    _ratio_at_least,
    _ratio_at_most,
    figure_plots,
    reproduce,
)
from dpsched.sim.results import SimResult
from dpsched.sim.simulator import Simulator
from dpsched.sim.sweep import expand_grid, run_cells

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FIGURES_DIR = Path(__file__).resolve().parents[1] / "docs" / "figures"
MIXED = {
    "blocks": {"initial": 4, "total": 10},
    "workload": {"name": "mixed", "n_tasks": 120, "params": {"many_blocks": 3}},
}


def run(base: dict[str, Any], **overrides: Any) -> SimResult:
    return Simulator(parse_config(base, overrides)).run()


def assert_sound(result: SimResult) -> None:
    summary = result.summary
    assert summary["budget_violations"] == 0
    assert result.ledger is not None and result.ledger.invariant_violations() == []
    states = [c["state"] for c in result.claims]
    assert summary["n_submitted"] == len(result.claims)
    assert summary["n_allocated"] == sum(c["allocated_at"] is not None for c in result.claims)
    assert summary["n_expired"] == states.count("expired")
    assert summary["total_weight"] == pytest.approx(
        sum(c["weight"] for c in result.claims if c["allocated_at"] is not None)
    )
    for claim in result.claims:
        if claim["delay"] is not None:
            assert claim["delay"] >= 0


MODES = [
    ("offline", {"kind": "none"}),
    ("offline", {"kind": "per_arrival", "n": 5}),
    ("batch", {"kind": "none"}),
    ("batch", {"kind": "per_arrival", "n": 5}),
    ("batch", {"kind": "per_step", "n": 4}),
    ("batch", {"kind": "lifetime", "lifetime": 6}),
    ("on_arrival", {"kind": "none"}),
    ("on_arrival", {"kind": "per_arrival", "n": 5}),
    ("on_arrival", {"kind": "per_step", "n": 4}),
    ("on_arrival", {"kind": "lifetime", "lifetime": 6}),
]


@pytest.mark.parametrize(("mode", "unlocking"), MODES, ids=str)
def test_every_mode_and_unlocking_runs_soundly(mode: str, unlocking: dict[str, Any]) -> None:
    result = run(MIXED, **{"scheduler.mode": mode, "scheduler.unlocking": unlocking})
    assert_sound(result)
    assert 0 < result.summary["n_allocated"] < 120
    if mode == "offline":
        assert result.summary["n_steps"] == 1
        assert all(c["arrival"] == 0 for c in result.claims)
    if unlocking["kind"] in ("per_step", "lifetime"):
        # Time-based unlocking keeps stepping until everything is released or useless.
        assert result.summary["end_time"] >= 6


def test_runs_are_reproducible_and_policies_see_the_same_arrivals() -> None:
    first = run(MIXED, **{"scheduler.unlocking": {"kind": "per_step", "n": 4}})
    again = run(MIXED, **{"scheduler.unlocking": {"kind": "per_step", "n": 4}})
    assert first.claims == again.claims and first.blocks == again.blocks
    other = run(MIXED, **{"scheduler.policy": "fcfs"})
    assert [(c["arrival"], c["task"]) for c in other.claims] == [
        (c["arrival"], c["task"]) for c in first.claims
    ]
    reseeded = run(MIXED, seed=1)
    assert [c["arrival"] for c in reseeded.claims] != [c["arrival"] for c in first.claims]


def test_blocks_and_claims_arrive_on_schedule() -> None:
    result = run(
        MIXED, **{"blocks.interval": 2.0, "workload.arrival": {"kind": "constant", "rate": 10}}
    )
    arrivals = [b["arrival"] for b in result.blocks]
    assert arrivals == [0, 0, 0, 0, 2, 4, 6, 8, 10, 12]
    claim_times = [c["arrival"] for c in result.claims]
    assert claim_times[:3] == pytest.approx([0.0, 0.1, 0.2])
    # A claim reading random blocks only picks among blocks that have arrived.
    for claim in result.ledger.claims if result.ledger else []:
        index = [int(b[1:]) for b in claim.block_ids]
        assert all(result.blocks[i]["arrival"] <= claim.arrival for i in index)


def test_batch_steps_every_period_and_claims_wait_for_the_next_step() -> None:
    result = run(
        MIXED,
        **{"scheduler.period": 2.5, "scheduler.unlocking": {"kind": "per_step", "n": 3}},
    )
    granted = {c["allocated_at"] for c in result.claims if c["allocated_at"] is not None}
    assert all(t % 2.5 == 0 for t in granted)
    assert result.summary["mean_delay"] > 0


def test_timeouts_expire_claims_that_wait_too_long() -> None:
    result = run(
        MIXED,
        **{
            "scheduler.timeout": 1.0,
            "scheduler.unlocking": {"kind": "per_step", "n": 20},
            "workload.n_tasks": 300,
        },
    )
    assert_sound(result)
    assert result.summary["n_expired"] > 0
    for claim in result.claims:
        if claim["delay"] is not None:
            assert claim["delay"] <= 1.0 + 1e-9
    assert result.summary["n_pending_at_end"] == 0


def test_claims_that_can_never_fit_are_counted_as_rejected() -> None:
    huge = {
        "blocks": {"initial": 2, "epsilon": 0.5},
        "accounting": "basic",
        "workload": {"name": "mixed", "n_tasks": 20},
    }
    result = run(huge)
    assert result.summary["n_rejected"] > 0
    assert all(
        c["state"] == "rejected" for c in result.claims if c["reason"] and "exceeds" in c["reason"]
    )


def test_horizon_stops_a_run_early() -> None:
    result = run(
        MIXED, horizon=3.0, **{"scheduler.unlocking": {"kind": "lifetime", "lifetime": 100}}
    )
    assert result.summary["end_time"] == pytest.approx(3.0)


def test_fairness_and_spent_budget_are_reported() -> None:
    result = run(MIXED, **{"metrics.fair_share_n": 1})
    assert result.summary["fair_share_of_allocated"] == 1.0
    spent = [b["spent_epsilon"] for b in result.blocks]
    assert max(spent) > 0
    assert all(s <= 10.0 + 1e-6 for s in spent)
    assert all(0 <= b["used_fraction"] <= 1 for b in result.blocks)


@given(
    case=st.fixed_dictionaries(
        {
            "scheduler.policy": st.sampled_from(["fcfs", "dpf", "area", "dpack"]),
            "scheduler.mode": st.sampled_from(["batch", "on_arrival"]),
            "scheduler.unlocking": st.sampled_from([m[1] for m in MODES]),
            "scheduler.timeout": st.one_of(st.none(), st.floats(0.5, 5)),
            "accounting": st.sampled_from(["basic", "rdp"]),
            "seed": st.integers(0, 10_000),
        }
    )
)
def test_budget_invariant_holds_for_any_online_run(case: dict[str, Any]) -> None:
    base = {
        "blocks": {"initial": 2, "total": 6},
        "workload": {
            "name": "privatekube",
            "n_tasks": 60,
            "params": {"last_block_probability": 0.5, "many_blocks": 3},
        },
    }
    result = run(base, **case)
    assert_sound(result)
    ledger = result.ledger
    assert ledger is not None
    # Nothing granted after its deadline, nothing granted twice.
    for claim in ledger.claims:
        if claim.state is ClaimState.ALLOCATED and claim.timeout is not None:
            assert claim.allocated_at is not None
            assert claim.allocated_at <= claim.arrival + claim.timeout + 1e-9


def test_steps_on_relevant_claims_decide_like_the_policy_on_every_pending_claim() -> None:
    """schedule_step hands each policy only the claims that can matter (and reuses fit
    bounds across steps); over a run of unlocks and steps, every policy must grant
    exactly what it grants when it sees every pending claim."""
    sim = Simulator(parse_config(MIXED, {"scheduler.mode": "offline"}))
    for _ in range(6):
        sim._add_block(0.0)
    for i in range(len(sim.tasks)):
        sim._submit(i, 0.0)
    for name, policy in POLICIES.items():
        if name == "optimal":
            continue
        fast = snapshot.from_dict(snapshot.to_dict(sim.ledger))
        full = snapshot.from_dict(snapshot.to_dict(sim.ledger))
        granted = 0
        for step, fraction in enumerate((0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0)):
            for ledger in (fast, full):
                ledger.unlock(np.full(ledger.budget.capacity.shape[0], fraction))
            problem = problem_from_ledger(full)
            expected = [problem.ids[i] for i in policy.run(problem).allocated]
            for claim_id in expected:
                full.allocate(claim_id, request_id=f"a{claim_id}", time=float(step))
            assert schedule_step(fast, policy, float(step)).granted == expected, (name, step)
            granted += len(expected)
        assert 0 < granted < len(sim.tasks), name  # contention: the comparison has teeth


def test_expected_orderings_on_small_seeded_runs() -> None:
    micro = {
        "blocks": {"initial": 20},
        "workload": {
            "name": "microbenchmark",
            "n_tasks": 120,
            "params": {"eps_min": 0.1, "mu_blocks": 10, "sigma_blocks": 10},
        },
        "scheduler": {"mode": "offline"},
    }
    dpf = run(micro, **{"scheduler.policy": "dpf"}).summary["n_allocated"]
    dpack = run(micro, **{"scheduler.policy": "dpack"}).summary["n_allocated"]
    assert dpack >= 1.3 * dpf

    single = load_config(CONFIGS / "privatekube-single-block.yaml", {"workload.n_tasks": 300})
    dpf_n = Simulator(single).run().summary["n_allocated"]
    fcfs = Simulator(
        parse_config(
            single.model_dump(mode="json"),
            {"scheduler.policy": "fcfs", "scheduler.unlocking": {"kind": "none"}},
        )
    ).run()
    assert dpf_n > 1.5 * fcfs.summary["n_allocated"]

    multi = {
        "blocks": {"initial": 1, "total": 8},
        "workload": {
            "name": "privatekube",
            "n_tasks": 2000,
            "params": {"last_block_probability": 0.75},
        },
        "scheduler": {
            "policy": "dpf",
            "mode": "batch",
            "unlocking": {"kind": "per_arrival", "n": 50},
        },
    }
    basic = run(multi, accounting="basic").summary["n_allocated"]
    rdp = run(multi, accounting="rdp").summary["n_allocated"]
    assert rdp >= 2 * basic


def test_sweep_reports_failed_cells_and_keeps_going() -> None:
    cells = expand_grid({"scheduler.policy": ["fcfs", "dpack"], "workload.n_tasks": [20, 40]})
    assert len(cells) == 4
    cells.append({"workload.name": "alibaba"})  # no path: fails at run time
    rows = run_cells(MIXED, cells, workers=2)
    assert [r.get("scheduler.policy") for r in rows[:4]] == ["fcfs", "fcfs", "dpack", "dpack"]
    assert all(r["error"] is None and r["n_submitted"] in (20, 40) for r in rows[:4])
    assert "workload.path" in rows[4]["error"]
    assert "ray" not in sys.modules


def test_reproduce_a_figure_quickly(tmp_path: Path) -> None:
    result = reproduce("privatekube-6", quick=True, out=tmp_path)
    assert all(ok for _, ok in result.checks)
    assert (tmp_path / "privatekube-6.png").stat().st_size > 1000
    assert (tmp_path / "privatekube-6.csv").is_file()
    assert set(FIGURES) >= {
        "dpack-4a",
        "dpack-4b",
        "dpack-5",
        "dpack-6a",
        "dpack-6b",
        "dpack-7a",
        "dpack-7b",
        "dpack-9",
        "privatekube-6",
        "privatekube-10",
        "privatekube-12",
    }


def _labels(figure: Figure) -> list[str]:
    (axes,) = figure.axes
    legend = axes.get_legend()
    assert legend is not None
    return [axes.get_xlabel(), axes.get_ylabel(), legend.get_title().get_text()]


def _assert_human(label: str) -> None:
    """Words, not a table's column: no config key (`workload.n_tasks`), no metric name
    (`n_allocated`)."""
    assert label and "_" not in label and not re.search(r"\w\.\w", label), label


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_committed_figures_redraw_from_their_csv_with_human_labels(name: str) -> None:
    spec = FIGURES[name]
    plots = figure_plots(spec, read_table(FIGURES_DIR / f"{name}.csv"))
    assert all((FIGURES_DIR / file).is_file() for file in plots)  # the committed PNGs
    assert len(plots) == len(spec.metrics)
    for figure in plots.values():
        xlabel, ylabel, legend = _labels(figure)
        assert legend in ("policy", "accounting", "DP semantics")
        for label in (xlabel, ylabel):
            _assert_human(label)


def test_plot_labels_swept_keys_and_metrics_for_humans() -> None:
    """`dpsched plot` on a sweep table: the axes say what the columns mean, with units."""
    rows = [
        {"workload.n_tasks": n, "policy": p, "n_allocated": n // k, "scheduler_time_s": 0.1}
        for n in (100, 200)
        for p, k in (("dpf", 3), ("dpack", 2))
    ]
    figure = line_figure(rows, x="workload.n_tasks", y="n_allocated", hue="policy")
    assert _labels(figure) == ["submitted tasks", "allocated tasks", "policy"]
    figure = line_figure(rows, x="workload.n_tasks", y="scheduler_time_s", hue="policy")
    assert _labels(figure)[1] == "scheduler time (s)"


def test_figure_checks_state_the_papers_claims() -> None:
    """The claim checks `reproduce` runs, on made-up means: the orderings are strict where
    the paper's claim is, and a gain "grows" when it is above its smallest-x value."""
    means = {
        "dpack": {0: 100.0, 1: 150.0, 2: 130.0},
        "dpf": {0: 100.0, 1: 100.0, 2: 120.0},
        "fcfs": {0: 90.0, 1: 80.0, 2: 120.0},
    }
    assert _ordered("dpack", "dpf", "fcfs").holds(means)
    assert not _ordered("dpack", "dpf", "fcfs", strict=True).holds(means)  # ties at x 0, 2
    assert _ordered("dpack", "fcfs", strict=True).holds(means)
    assert _gain_grows("dpack", "dpf").holds(means)  # 1.0 -> 1.5 -> 1.08
    assert not _gain_grows("dpf", "fcfs").holds(means)  # 1.11 -> 1.25 -> 1.0
    assert _ratio_at_least("dpack", "dpf", 1.4, "some").holds(means)
    assert not _ratio_at_least("dpack", "dpf", 1.4).holds(means)
    assert _ratio_at_least("dpf", "fcfs", 1.0, from_x=1).holds(means)
    assert _ratio_at_most("dpf", "dpack", 1.0).holds(means)
    assert not _ratio_at_most("dpack", "dpf", 1.05).holds(means)
    assert _ratio_at_least("dpack", "dpf", 1.3, "some").claim == "dpack >= 1.3 x dpf at some x"
