"""What the commands print and write: reasons for every refusal, blocks at their best
order, JSON on every command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.test_cli import EXAMPLES, dpsched
from tests.test_cli_sim import small_config

FIG3 = str(EXAMPLES / "fig3-rdp.yaml")


def test_schedule_explains_what_waits_and_shows_blocks_at_their_best_order() -> None:
    run = dpsched("schedule", FIG3, "--policy", "dpack", "--json", "-")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)  # `--json -`: nothing but the JSON on stdout
    assert sorted(report["allocated"]) == ["T1", "T2", "T4", "T5"]
    # B1 ran T1 and T2 ([0.5, 1.5] each, capacity [1, 1]): alpha=2 is exactly full and
    # alpha=4 is 2 over; B2 symmetrically. T3 and T6 ([0.6, 0.6]) find no room.
    assert report["unallocated"] == [
        {"id": "T3", "reason": "not enough budget left on B1 (needs 0.6 at alpha=2, 0 left)"},
        {"id": "T6", "reason": "not enough budget left on B2 (needs 0.6 at alpha=4, 0 left)"},
    ]
    assert report["n_unallocated"] == 2 and report["rejected"] == []
    assert report["blocks"]["B1"]["remaining"] == [0.0, -2.0]
    assert report["blocks"]["B1"]["best_order"] is None  # no order has room left
    table = dpsched("schedule", FIG3, "--policy", "dpack")
    assert "not allocated (2)" in table.stdout
    assert "needs 0.6 at alpha=2, 0 left" in table.stdout
    header = next(line for line in table.stdout.splitlines() if "spent epsilon" in line)
    assert "best order" in header and "left" in header and "min remaining" not in header
    assert "-2.0000" not in table.stdout  # raw per-order vectors only in --json


def test_schedule_on_fewer_blocks_lists_rejections_with_reasons(tmp_path: Path) -> None:
    path = tmp_path / "rejects.yaml"
    path.write_text(
        "accounting: basic\n"
        "blocks: [{id: b0, epsilon: 1}, {id: b1, epsilon: 1}]\n"
        "tasks:\n"
        "  - {id: big, blocks: [b0], demand: {epsilon: 2}}\n"
        "  - {id: two, blocks: {most_recent: 1}, min_blocks: 2, demand: {epsilon: 0.1}}\n"
        "  - {id: ok, blocks: [b1], demand: {epsilon: 0.5}}\n"
    )
    out = tmp_path / "r.json"
    run = dpsched("schedule", str(path), "--policy", "fcfs", "--json", str(out))
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert report["rejected"] == [
        {
            "id": "big",
            "reason": "demand exceeds the whole capacity of blocks ['b0'] at every order",
        },
        {"id": "two", "reason": "selected 1 block, needs at least 2"},
    ]
    assert report["rejected_ids"] == ["big", "two"]
    assert report["allocated"] == ["ok"] and report["unallocated"] == []
    assert "rejected: can never run (2)" in run.stdout
    assert "selected 1 block, needs at least 2" in run.stdout
    compared = dpsched("compare", str(path), "--policies", "fcfs,dpf")
    assert compared.returncode == 0, compared.stderr
    assert "demand exceeds the whole capacity of blocks ['b0']" in compared.stdout
    assert "not allocated: fcfs 0, dpf 0." in compared.stdout


def test_compare_and_curve_write_json() -> None:
    run = dpsched("compare", FIG3, "--policies", "dpf,dpack", "--json", "-")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["accounting"] == "rdp" and data["n_tasks"] == 6
    assert [p["policy"] for p in data["policies"]] == ["dpf", "dpack"]
    assert [p["n_allocated"] for p in data["policies"]] == [2, 4]
    assert all(len(p["unallocated"]) == 6 - p["n_allocated"] for p in data["policies"])
    run = dpsched("curve", "gaussian", "-p", "sigma=2", "--alphas", "2,4", "--json", "-")
    assert run.returncode == 0, run.stderr
    curve = json.loads(run.stdout)
    assert curve["alphas"] == [2.0, 4.0]
    # Gaussian RDP is alpha / (2 sigma^2): 0.25 and 0.5 for sigma = 2.
    assert curve["rdp"] == [0.25, 0.5]
    assert curve["classic_best"]["alpha"] == 4.0
    assert curve["epsilon"] <= curve["classic_best"]["epsilon"]


def test_simulate_says_where_results_went_or_that_none_were_written(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    run = dpsched("simulate", str(config), "--set", "workload.n_tasks=50")
    assert run.returncode == 0, run.stderr
    assert "nothing written; --out DIR writes" in run.stderr
    out = tmp_path / "out"
    run = dpsched(
        "simulate", str(config), "--set", "workload.n_tasks=50", "--out", str(out), "--json", "-"
    )
    assert run.returncode == 0, run.stderr
    assert f"wrote 5 files to {out}" in run.stderr
    summary = json.loads(run.stdout)
    assert summary == json.loads((out / "summary.json").read_text())


def test_plot_defaults_work_on_a_sweep_table(tmp_path: Path) -> None:
    table = tmp_path / "sweep.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scheduler.policy", "workload.n_tasks", "policy", "n_allocated", "error"])
        for policy in ("fcfs", "dpack"):
            for n, allocated in ((100, 10), (200, 15)):
                writer.writerow([policy, n, policy, allocated + (policy == "dpack"), ""])
    png = tmp_path / "plot.png"
    run = dpsched("plot", str(table), "--out", str(png))
    assert run.returncode == 0, run.stderr
    assert "n_allocated vs workload.n_tasks" in run.stdout  # the swept column, chosen
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_schedule_reports_chosen_blocks_data_and_elastic_grants(tmp_path: Path) -> None:
    path = tmp_path / "claims.yaml"
    path.write_text(
        "accounting: rdp\n"
        "alphas: [2, 4, 8, 16, 32]\n"
        "blocks:\n"
        "  - {id: old, capacity: [5, 5, 5, 5, 5], size: 700}\n"
        "  - {id: mid, capacity: [5, 5, 5, 5, 5], size: 200}\n"
        "  - {id: new, capacity: [0.01, 0.01, 0.01, 0.01, 0.01], size: 900}\n"
        "tasks:\n"
        "  - {id: any2, blocks: {dataset: default}, max_blocks: 2, demand: {zcdp: 0.01}}\n"
        "  - id: sgd\n"
        "    blocks: [old]\n"
        "    demand: {mechanism: gaussian, epsilon: [0.5, 3.0], delta: 1.0e-6}\n"
    )
    run = dpsched("schedule", str(path), "--policy", "fcfs", "--json", "-")
    assert run.returncode == 0, run.stderr
    grants = json.loads(run.stdout)["grants"]
    assert grants["any2"] == {
        "chosen_blocks": ["old", "mid"],  # "new" is too small for it
        "actual_data": 900,
        "granted_epsilon": None,
        "granted_fraction": None,
        "noise": None,
    }
    assert 0.5 <= grants["sgd"]["granted_epsilon"] <= 3.0
    assert set(grants["sgd"]["noise"]) == {"noise_multiplier"}
