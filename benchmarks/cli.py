"""Command-line benchmarks: `python benchmarks/cli.py` prints one table.

Start-up (median of 5 runs, each a fresh process): `dpsched --help` and
`--version` < 0.3 s, a 4-task `schedule` < 1 s; with rdp accounting < 1.5 s, because
its report converts RDP spend to (epsilon, delta) with dp-accounting, whose import
alone takes 0.6-0.7 s here (scipy.signal and scipy.optimize come with it).

Large instances (one run each): a generated 303,000-task instance on 50 blocks,
~55 MB as JSON, scheduled with dpack end to end (load, ledger, policy, report) < 10 s
and < 2 GB; the same instance as ~50 MB of YAML within 3x of the JSON time. The
instance is generated from a seed into a temporary directory and deleted afterwards
(never committed).

`--smoke` runs every case once, the large ones on 1,000 tasks (a few seconds), and checks
no target: it is there so that CI notices when the benchmark itself breaks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
DPSCHED = [sys.executable, "-m", "dpsched"]
ALPHAS = [1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 8, 16, 32, 64]


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float


def run(args: list[str]) -> Run:
    """One fresh process: its wall time and peak resident memory."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [*DPSCHED, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        error = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"dpsched {' '.join(args)} failed: {error}")
    return Run(seconds, usage.ru_maxrss / 1024)


def median_run(args: list[str], repeats: int = 5) -> Run:
    runs = [run(args) for _ in range(repeats)]
    return Run(statistics.median(r.seconds for r in runs), max(r.peak_mb for r in runs))


def large_instance(n_tasks: int, n_blocks: int, seed: int = 0) -> dict[str, object]:
    """Tasks of the shapes big instances have: 70% explicit block lists with RDP vectors
    (k ~ Pareto(1.2) blocks), 15% most-recent selectors with Gaussian mechanisms, 15%
    dataset selectors with a `where` condition and weight 2."""
    rng = np.random.default_rng(seed)
    blocks = [
        {
            "id": f"b{j}",
            "epsilon": 10,
            "delta": 1e-7,
            "dataset": "web",
            "arrival": j,
            "dimensions": {"time": j},
        }
        for j in range(n_blocks)
    ]
    base = np.asarray(ALPHAS) * 0.002
    kind = rng.random(n_tasks)
    sizes = np.minimum(np.floor(rng.pareto(1.2, n_tasks) + 1), n_blocks).astype(int)
    scales = rng.uniform(0.2, 5.0, n_tasks)
    tasks: list[dict[str, object]] = []
    for i in range(n_tasks):
        k = int(sizes[i])
        if kind[i] < 0.7:
            chosen = sorted(rng.choice(n_blocks, size=k, replace=False).tolist())
            vector = [float(f"{v:.6g}") for v in base * scales[i]]
            tasks.append(
                {"id": f"t{i}", "blocks": [f"b{j}" for j in chosen], "demand": {"rdp": vector}}
            )
        elif kind[i] < 0.85:
            sigma = float(rng.choice([2.0, 4.0, 8.0]))
            tasks.append(
                {
                    "id": f"t{i}",
                    "blocks": {"most_recent": k},
                    "demand": {"mechanism": "gaussian", "sigma": sigma},
                }
            )
        else:
            tasks.append(
                {
                    "id": f"t{i}",
                    "weight": 2,
                    "blocks": {"dataset": "web", "where": [f"time >= {i % n_blocks}"]},
                    "demand": {"mechanism": "laplace", "epsilon": 0.05},
                }
            )
    return {"accounting": "rdp", "alphas": ALPHAS, "blocks": blocks, "tasks": tasks}


def write_yaml(path: Path, instance: dict[str, object]) -> None:
    """YAML as PyYAML writes it by default: block mappings, flow lists and leaf mappings
    (JSON flow syntax is YAML)."""
    with path.open("w") as out:
        out.write(f"accounting: {instance['accounting']}\nalphas: {json.dumps(ALPHAS)}\n")
        for key in ("blocks", "tasks"):
            out.write(f"{key}:\n")
            for item in instance[key]:  # type: ignore[attr-defined]
                lines = [f"{k}: {json.dumps(v)}" for k, v in item.items()]
                out.write("- " + "\n  ".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="start-up only (no large instance)")
    parser.add_argument("--tasks", type=int, default=303_000, help="tasks of the large instance")
    parser.add_argument(
        "--smoke", action="store_true", help="each case once, 1,000 tasks, no target checked"
    )
    args = parser.parse_args()
    repeats, tasks = (1, 1000) if args.smoke else (5, args.tasks)
    title = "dpsched command-line benchmarks"
    if args.smoke:
        title += " (smoke: targets not checked)"
    table = Table(title=title)
    for column in ("case", "wall (s)", "target", "peak RSS (MB)", "ok"):
        table.add_column(column, justify="left" if column == "case" else "right")
    missed = 0

    def row(case: str, result: Run, target_s: float, target_mb: float | None = None) -> None:
        nonlocal missed
        ok = result.seconds < target_s and (target_mb is None or result.peak_mb < target_mb)
        missed += not ok and not args.smoke
        target = f"< {target_s:.3g} s" + (f", < {target_mb:g} MB" if target_mb else "")
        table.add_row(
            case, f"{result.seconds:.2f}", target, f"{result.peak_mb:.0f}", "yes" if ok else "NO"
        )

    row("dpsched --help", median_run(["--help"], repeats), 0.3)
    row("dpsched --version", median_run(["--version"], repeats), 0.3)
    row(
        "schedule fig1-basic.yaml (4 tasks)",
        median_run(["schedule", "examples/fig1-basic.yaml"], repeats),
        1.0,
    )
    row(
        "schedule fig3-rdp.yaml (6 tasks, rdp)",
        median_run(["schedule", "examples/fig3-rdp.yaml"], repeats),
        1.5,
    )
    if not args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            instance = large_instance(tasks, 50)
            as_json, as_yaml = Path(tmp) / "large.json", Path(tmp) / "large.yaml"
            as_json.write_text(json.dumps(instance))
            write_yaml(as_yaml, instance)
            del instance
            sizes = {p.suffix: p.stat().st_size / 1e6 for p in (as_json, as_yaml)}
            n = f"{tasks:,} tasks"
            json_run = run(["schedule", str(as_json)])
            row(f"schedule {n}, JSON ({sizes['.json']:.0f} MB)", json_run, 10.0, 2000)
            row(
                "  same, --json report",
                run(["schedule", str(as_json), "--json", str(Path(tmp) / "r.json")]),
                10.0,
                2000,
            )
            yaml_run = run(["schedule", str(as_yaml)])
            row(
                f"schedule {n}, YAML ({sizes['.yaml']:.0f} MB)",
                yaml_run,
                3 * json_run.seconds,
                2000,
            )
    Console(width=120).print(table)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
