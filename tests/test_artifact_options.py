"""The DPack artifact's modelling choices as simulator options (issue 12 §4): stepped
lifetime unlocking, the first new block at t=0, initial tasks at t=0 and the first
arrival at t=0; each checked alone, then together on a hand-computable CSV and on the
artifact's own 2,000-task CSV against its simulator's counts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dpsched.budget import Accounting
from dpsched.core import BlockSpec, Ledger, Lifetime
from dpsched.errors import InputError
from dpsched.sim.arrivals import claim_arrivals
from dpsched.sim.config import load_config, parse_config
from dpsched.sim.simulator import Simulator
from dpsched.sim.workloads.alibaba import COLUMNS, read_alibaba_csv

REPO = Path(__file__).resolve().parents[1]
ARTIFACT_CONFIG = REPO / "configs" / "artifact-alibaba.yaml"
ARTIFACT_CSV = REPO / "configs" / "data" / "alibaba-dp-2000.csv"
# The artifact's own simulator run to its end on ARTIFACT_CSV with 110 blocks
# (../shared/anchor/online.py CSV 110 --drain, columbia/dpack @ 706b990, 2026-11-26).
ARTIFACT_DRAINED = {"dpack": 1060, "dpf": 900, "fcfs": 514}


def unlocked_at(unlocking: Lifetime, arrival: float, time: float) -> float:
    ledger = Ledger(Accounting("basic"))
    ledger.add_block(BlockSpec(id="b", epsilon=1.0, arrival=arrival))
    unlocking.on_tick(ledger, time)
    return float(ledger.budget.unlocked_fraction[0])


@pytest.mark.parametrize(
    ("time", "fraction"),
    [
        (0.0, 0.0),
        (2.49, 0.0),
        (2.5, 0.25),
        (4.99, 0.25),
        (5.0, 0.5),
        (9.99, 0.75),
        (10, 1),
        (20, 1),
    ],
)
def test_stepped_lifetime_unlocks_a_step_at_each_boundary(time: float, fraction: float) -> None:
    # lifetime 10 in 4 steps: a quarter of the block every 2.5 time units.
    assert unlocked_at(Lifetime(10.0, steps=4), 0.0, time) == fraction


def test_stepped_lifetime_counts_a_step_due_exactly_at_the_round() -> None:
    # The artifact's setting: 1/1000 every 0.03. A block of t=1 has had exactly 300 steps
    # at t=10 (9 / 0.03 is 300.00000000000006 in floats, 9 * 1000 / 30 exactly 300).
    assert unlocked_at(Lifetime(30.0, steps=1000), 1.0, 10.0) == 0.3
    assert unlocked_at(Lifetime(30.0, steps=1000), 0.0, 10.0) == 0.333
    assert unlocked_at(Lifetime(30.0, steps=1000), 1.0, 30.99) == 0.999
    assert unlocked_at(Lifetime(30.0, steps=1000), 1.0, 31.0) == 1.0


def test_linear_lifetime_is_unchanged() -> None:
    assert unlocked_at(Lifetime(10.0), 0.0, 2.5) == 0.25
    assert unlocked_at(Lifetime(10.0), 1.0, 3.0) == 0.2


def test_stepped_lifetime_refuses_a_bad_step_count() -> None:
    with pytest.raises(InputError, match=r"unlocking\.steps"):
        Lifetime(10.0, steps=0)


BASE: dict[str, Any] = {
    "blocks": {"initial": 2, "total": 5},
    "workload": {"name": "mixed", "n_tasks": 6},
    "scheduler": {"mode": "batch", "unlocking": {"kind": "lifetime", "lifetime": 4}},
}


def test_first_block_arrival() -> None:
    assert parse_config(BASE).blocks.arrival_times().tolist() == [0, 0, 1, 2, 3]
    shifted = parse_config(BASE, {"blocks.first_arrival": 0}).blocks.arrival_times()
    assert shifted.tolist() == [0, 0, 0, 1, 2]
    late = parse_config(BASE, {"blocks.first_arrival": 0.5, "blocks.interval": 2})
    assert late.blocks.arrival_times().tolist() == [0, 0, 0.5, 2.5, 4.5]
    result = Simulator(parse_config(BASE, {"blocks.first_arrival": 0})).run()
    assert [b["arrival"] for b in result.blocks] == [0, 0, 0, 1, 2]


def write_csv(path: Path, rows: list[tuple[int, float, float]]) -> Path:
    """One task per (n_blocks, epsilon, relative_submit_time), on its latest blocks."""
    lines = [",".join(COLUMNS)]
    for n_blocks, epsilon, gap in rows:
        lines.append(
            f'{epsilon},1e-07,{n_blocks},1,LatestBlocksFirst,t,"[2]","[{epsilon}]",{gap},"[0.1]"'
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def arrivals_for(path: Path, **arrival: Any) -> list[float]:
    config = parse_config(
        {
            "blocks": {"initial": 1, "total": 3},
            "workload": {"name": "alibaba", "path": str(path), "arrival": arrival},
        }
    )
    times = claim_arrivals(config, read_alibaba_csv(path), np.random.default_rng(0))
    return [float(t) for t in times]


def test_initial_tasks_and_first_arrival(tmp_path: Path) -> None:
    # Gaps 5, 1, 1, 1 (sum 8) scaled to the 2 time units of block arrivals: 0.25 per unit.
    path = write_csv(tmp_path / "t.csv", [(1, 1.0, 5), (1, 1.0, 1), (1, 1.0, 1), (1, 1.0, 1)])
    # Ours: each gap before its task, the last task when the last block arrives.
    assert arrivals_for(path) == [1.25, 1.5, 1.75, 2.0]
    # The artifact's: 2 tasks at t=0, the process starts at t=0 and spaces the rest by
    # the trace's gaps from its first row (the last 2 gaps go unused).
    assert arrivals_for(path, initial=2, first_arrival=0) == [0, 0, 0, 1.25]
    assert arrivals_for(path, initial=2) == [0, 0, 1.25, 1.5]
    assert arrivals_for(path, first_arrival=0.5) == [0.5, 1.75, 2.0, 2.25]
    assert arrivals_for(path, initial=4) == [0, 0, 0, 0]


def test_initial_tasks_and_first_arrival_for_generated_arrivals(tmp_path: Path) -> None:
    tasks = read_alibaba_csv(write_csv(tmp_path / "t.csv", [(1, 1.0, 1)] * 5))

    def times(**arrival: Any) -> np.ndarray:
        config = parse_config(BASE, {"workload.arrival": arrival})
        return claim_arrivals(config, tasks, np.random.default_rng(7))

    assert times(kind="constant", rate=2).tolist() == [0, 0.5, 1, 1.5, 2]
    assert times(kind="constant", rate=2, initial=2).tolist() == [0, 0, 0, 0.5, 1]
    assert times(kind="constant", rate=2, first_arrival=1).tolist() == [1, 1.5, 2, 2.5, 3]
    default, at_zero = times(kind="poisson"), times(kind="poisson", first_arrival=0)
    # The same draws; by default the first is spent before the first arrival.
    assert at_zero[0] == 0 and np.allclose(at_zero[1:], default[:-1])
    # The initial tasks' share of the default rate goes: 3 later tasks over 3 time units.
    assert np.allclose(times(kind="poisson", initial=2)[2:], default[:3] * 5 / 3)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"scheduler.unlocking": {"kind": "per_step", "n": 4, "steps": 2}}, "unlocking.steps"),
        ({"scheduler.unlocking": {"kind": "lifetime", "lifetime": 4, "steps": 0}}, "steps"),
        ({"scheduler.unlocking": {"kind": "lifetime", "lifetime": 4, "steps": 1.5}}, "steps"),
        ({"blocks.first_arrival": -1}, "blocks.first_arrival"),
        ({"blocks.first_arrival": "never"}, "blocks.first_arrival"),
        ({"workload.arrival.initial": -1}, "workload.arrival.initial"),
        ({"workload.arrival.first_arrival": float("nan")}, "workload.arrival.first_arrival"),
    ],
)
def test_bad_values_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError, match=rf"config\.\S*{re.escape(field)}:"):
        parse_config(BASE, overrides)


def test_more_initial_tasks_than_the_workload_is_refused() -> None:
    config = parse_config(BASE, {"workload.arrival.initial": 7})
    with pytest.raises(InputError, match=r"workload\.arrival\.initial: 7 initial tasks, but"):
        Simulator(config)


def test_artifact_options_on_a_small_csv_match_a_hand_computation(tmp_path: Path) -> None:
    # Blocks b0 (initial) and b1 at t=0, b2 at t=1; each unlocks half of its 10 at 2 time
    # units after its arrival, the rest at 4. Tasks read their latest block: t0, t1, t2 at
    # t=0 (two initial, then the process's first arrival) read b1, t3 at 5 x 0.25 = 1.25
    # reads b2. FCFS rounds every time unit:
    #   t=2: b1 has 5 unlocked: t0 (6) waits, t1 (4) is granted; t2 (5) no longer fits.
    #   t=3: b2 has 5 unlocked: t3 (2) is granted.
    #   t=4: b1 has 10, 4 spent: t0 (6) is granted; t2 (5) can never fit now.
    path = write_csv(tmp_path / "t.csv", [(1, 6.0, 5), (1, 4.0, 1), (1, 5.0, 1), (1, 2.0, 1)])
    config: dict[str, Any] = {
        "accounting": "basic",
        "blocks": {"initial": 1, "total": 3, "epsilon": 10, "first_arrival": 0},
        "workload": {
            "name": "alibaba",
            "path": str(path),
            "arrival": {"kind": "trace", "initial": 2, "first_arrival": 0},
        },
        "scheduler": {
            "policy": "fcfs",
            "mode": "batch",
            "period": 1,
            "unlocking": {"kind": "lifetime", "lifetime": 4, "steps": 2},
        },
    }
    result = Simulator(parse_config(config)).run()
    assert [c["arrival"] for c in result.claims] == [0, 0, 0, 1.25]
    assert [c["allocated_at"] for c in result.claims] == [4, 2, None, 3]
    assert result.ledger is not None
    assert [result.ledger.claim(c["id"]).block_index.tolist() for c in result.claims] == [
        [1],
        [1],
        [1],
        [2],
    ]
    # Linear unlocking (ours) grants t3 a round earlier: at t=2, b2 has 2.5 unlocked.
    linear = Simulator(parse_config(config, {"scheduler.unlocking.steps": None})).run()
    assert [c["allocated_at"] for c in linear.claims] == [4, 2, None, 2]


@pytest.mark.parametrize("policy", sorted(ARTIFACT_DRAINED))
def test_artifact_config_is_within_one_percent_of_the_artifact(policy: str) -> None:
    assert ARTIFACT_CSV.is_file(), f"{ARTIFACT_CSV} is missing: it belongs to the repository"
    options = {"recompute_every": 50} if policy == "dpack" else {}
    config = load_config(
        ARTIFACT_CONFIG, {"scheduler.policy": policy, "scheduler.options": options}
    )
    assert Path(config.workload.path or "").resolve() == ARTIFACT_CSV.resolve()
    allocated = Simulator(config).run().summary["n_allocated"]
    expected = ARTIFACT_DRAINED[policy]
    assert abs(allocated - expected) <= 0.01 * expected, (policy, allocated, expected)
