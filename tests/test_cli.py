from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONTRACT_KEYS = {
    "policy",
    "allocated",
    "n_allocated",
    "total_weight",
    "runtime_s",
    "status",
    "mip_gap",
    "blocks",
}


def dpsched(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dpsched", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_schedule_writes_the_json_contract(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    run = dpsched(
        "schedule", str(EXAMPLES / "fig1-basic.yaml"), "--policy", "dpack", "--json", str(out)
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert set(report) >= CONTRACT_KEYS
    assert report["policy"] == "dpack"
    assert sorted(report["allocated"]) == ["T2", "T3", "T4"]
    assert report["n_allocated"] == 3 and report["total_weight"] == 3.0
    assert report["status"] == "heuristic" and report["mip_gap"] is None
    assert report["runtime_s"] >= 0
    assert report["blocks"]["B1"] == {
        "remaining": [pytest.approx(0.4)],
        "spent_epsilon": pytest.approx(0.6),
        "best_order": None,
        "remaining_at_best": pytest.approx(0.4),
        "remaining_fraction": pytest.approx(0.4),
    }
    # T1 asks 0.5 of each block, and only 0.4 is left once T2-T4 ran.
    assert report["rejected"] == [] and report["rejected_ids"] == []
    assert report["unallocated"] == [
        {
            "id": "T1",
            "reason": "not enough budget left on B1 (needs 0.5, 0.4 left), "
            "B2 (needs 0.5, 0.4 left), B3 (needs 0.5, 0.4 left)",
        }
    ]


def test_schedule_optimal_with_options_and_time_limit(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = dpsched(
        "schedule",
        str(EXAMPLES / "fig3-rdp.yaml"),
        "--policy",
        "optimal",
        "--time-limit",
        "30",
        "--json",
        str(out),
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert report["status"] == "optimal" and report["n_allocated"] == 4
    run = dpsched(
        "schedule",
        str(EXAMPLES / "fig3-rdp.yaml"),
        "--policy",
        "dpack",
        "-o",
        "recompute_every=1",
        "-o",
        "eta=0.1",
    )
    assert run.returncode == 0, run.stderr


def test_compare_prints_one_row_per_policy() -> None:
    run = dpsched("compare", str(EXAMPLES / "fig3-rdp.yaml"))
    assert run.returncode == 0, run.stderr
    rows = {
        line.split("│")[1].strip(): line for line in run.stdout.splitlines() if line.count("│") > 5
    }
    assert set(rows) == {"fcfs", "dpf", "area", "dpack", "optimal", "rr"}
    assert "2/6" in rows["dpf"] and "4/6" in rows["dpack"]


def test_curve_prints_rdp_and_dp() -> None:
    run = dpsched(
        "curve",
        "subsampled_gaussian",
        "-p",
        "sigma=1.0",
        "-p",
        "sampling_rate=0.01",
        "-p",
        "steps=1000",
    )
    assert run.returncode == 0, run.stderr
    assert "improved conversion epsilon" in run.stdout
    run = dpsched(
        "curve",
        "composition",
        "-p",
        "parts=[{mechanism: laplace, scale: 2}, {mechanism: gaussian, sigma: 2}]",
    )
    assert run.returncode == 0, run.stderr


BASE = {
    "accounting": "rdp",
    "blocks": [{"id": "b0", "epsilon": 10, "delta": 1e-7}],
    "tasks": [{"id": "t0", "blocks": ["b0"], "demand": {"mechanism": "gaussian", "sigma": 2.0}}],
}


def variant(path: str, value: object) -> dict[str, object]:
    data = json.loads(json.dumps(BASE))
    target = data
    keys = path.split("/")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    target[keys[-1] if not keys[-1].isdigit() else int(keys[-1])] = value
    return data


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (variant("tasks/0/blocks", ["nope"]), "tasks.t0.blocks: unknown block 'nope'"),
        (variant("tasks/0/demand", {"rdp": [0.1, 0.2]}), "tasks.t0.demand.rdp: needs 12 values"),
        (variant("blocks/0/epsilon", -1), "blocks.b0.epsilon: Input should be greater than 0"),
        (variant("blocks/0/epsilon", 1e308), "blocks.b0.epsilon: Input should be less than"),
        (
            variant("tasks/0/demand", {"mechanism": "laplace", "epsilon": float("nan")}),
            "tasks.t0.demand.epsilon",
        ),
        (variant("alphas", [0.5, 2]), "alphas[0]: RDP order must be a finite number > 1"),
        ({**BASE, "blocks": BASE["blocks"] * 2}, "blocks.b0.id: duplicate block id 'b0'"),
        ({**BASE, "tasks": BASE["tasks"] * 2}, "tasks.t0.id: duplicate task id 't0'"),
        (variant("tasks/0/weight", 0), "tasks.t0.weight: Input should be greater than 0"),
        (variant("tasks/0/id", 7), "tasks[0].id: Input should be a valid string"),
        (variant("accounting", "fancy"), "accounting"),
    ],
)
def test_invalid_instances_fail_with_one_clear_line(
    tmp_path: Path, data: dict[str, object], field: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    run = dpsched("schedule", str(path))
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.strip().splitlines() if line]
    assert len(lines) == 1, run.stderr
    assert field in lines[0]


def test_bad_cli_arguments_are_one_line_errors(tmp_path: Path) -> None:
    run = dpsched(
        "schedule", str(EXAMPLES / "fig1-basic.yaml"), "--policy", "dpack", "-o", "bogus=1"
    )
    assert run.returncode == 2 and "bogus: unknown key" in run.stderr
    run = dpsched(
        "schedule", str(EXAMPLES / "fig1-basic.yaml"), "--policy", "dpf", "--time-limit", "3"
    )
    assert run.returncode == 2 and "only the optimal policy" in run.stderr
    run = dpsched("schedule", str(tmp_path / "missing.yaml"))
    assert run.returncode == 2 and "missing.yaml" in run.stderr and "Traceback" not in run.stderr
