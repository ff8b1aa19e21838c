"""Simulator commands end to end: simulate, sweep, plot, reproduce, workload export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml
from tests.test_cli import dpsched

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SUMMARY_CONTRACT = {
    "policy",
    "n_submitted",
    "n_allocated",
    "total_weight",
    "scheduler_time_s",
    "wall_time_s",
    "mean_delay",
}


def small_config(tmp_path: Path) -> Path:
    config = {
        "seed": 0,
        "accounting": "rdp",
        "blocks": {"initial": 3, "total": 8, "epsilon": 10, "delta": 1e-7},
        "workload": {"name": "alibaba-synthetic", "n_tasks": 300, "params": {}},
        "scheduler": {
            "policy": "dpack",
            "mode": "batch",
            "period": 2,
            "unlocking": {"kind": "lifetime", "lifetime": 5},
            "timeout": None,
            "options": {},
        },
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_simulate_writes_summary_and_tables(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = dpsched("simulate", str(small_config(tmp_path)), "--set", "seed=4", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "n_allocated" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= SUMMARY_CONTRACT
    assert summary["seed"] == 4 and summary["policy"] == "dpack"
    with (out / "claims.csv").open() as handle:
        claims = list(csv.DictReader(handle))
    assert len(claims) == summary["n_submitted"] == 300
    assert sum(c["state"] == "allocated" for c in claims) == summary["n_allocated"]
    with (out / "blocks.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 8
    assert (out / "timeline.csv").stat().st_size > 0


def test_simulate_bad_override_is_one_line(tmp_path: Path) -> None:
    done = dpsched("simulate", str(small_config(tmp_path)), "--set", "scheduler.mode=sometimes")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: config.scheduler.mode")
    assert len(done.stderr.strip().splitlines()) == 1


def test_sweep_then_plot_line_and_cdf(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "base": config.name,
                "grid": {"scheduler.policy": ["fcfs", "dpack"], "workload.n_tasks": [100, 200]},
            }
        )
    )
    table = tmp_path / "sweep.csv"
    done = dpsched("sweep", str(sweep), "--workers", "2", "--out", str(table))
    assert done.returncode == 0, done.stderr
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(r["error"] == "" for r in rows)
    png = tmp_path / "line.png"
    done = dpsched(
        "plot", str(table), "--x", "workload.n_tasks", "--y", "n_allocated", "--out", str(png)
    )
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"

    runs = []
    for policy in ("fcfs", "dpack"):
        out = tmp_path / policy
        assert (
            dpsched(
                "simulate", str(config), "--set", f"scheduler.policy={policy}", "--out", str(out)
            ).returncode
            == 0
        )
        runs.append(str(out))
    cdf = tmp_path / "cdf.png"
    done = dpsched("plot", *runs, "--kind", "cdf", "--y", "delay", "--out", str(cdf))
    assert done.returncode == 0, done.stderr
    assert cdf.read_bytes()[:4] == b"\x89PNG"
    bad = dpsched("plot", str(table), "--x", "seed", "--y", "happiness", "--out", str(png))
    assert bad.returncode == 2 and "happiness: no such column" in bad.stderr


def test_workload_export_replays_as_the_alibaba_workload(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    tasks = tmp_path / "tasks.csv"
    done = dpsched("workload", "export", str(config), "--out", str(tasks))
    assert done.returncode == 0, done.stderr
    replay = yaml.safe_load(config.read_text())
    replay["workload"] = {"name": "alibaba", "path": str(tasks)}
    replay_path = tmp_path / "replay.yaml"
    replay_path.write_text(yaml.safe_dump(replay))
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert dpsched("simulate", str(config), "--out", str(out_a)).returncode == 0
    assert dpsched("simulate", str(replay_path), "--out", str(out_b)).returncode == 0
    original = json.loads((out_a / "summary.json").read_text())
    replayed = json.loads((out_b / "summary.json").read_text())
    assert replayed["n_submitted"] == original["n_submitted"]

    def claims(out: Path) -> list[tuple[str, str]]:
        with (out / "claims.csv").open() as handle:
            return [(r["task"], r["weight"]) for r in csv.DictReader(handle)]

    assert claims(out_b) == claims(out_a)
    # The format rescales arrivals to span the block arrivals, so the replay's times
    # (and hence a few decisions) may shift slightly, never the workload itself.
    assert abs(replayed["n_allocated"] - original["n_allocated"]) <= 0.05 * original["n_allocated"]


def test_shipped_alibaba_trace_config_runs() -> None:
    done = dpsched("simulate", str(CONFIGS / "alibaba-trace.yaml"), "--set", "horizon=40")
    assert done.returncode == 0, done.stderr
    assert "n_allocated" in done.stdout


def test_reproduce_rejects_unknown_figures() -> None:
    done = dpsched("reproduce", "fig-99")
    assert done.returncode == 2 and "unknown figure 'fig-99'" in done.stderr
