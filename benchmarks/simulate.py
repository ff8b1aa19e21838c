"""Online simulator benchmarks: `python benchmarks/simulate.py` prints one table.

Targets (2-core machine), whole simulation wall time including workload generation:
alibaba-synthetic, 100 initial blocks, T=10, N=1000 per-step unlocking, dpack
re-solving every 50 grants: 10,000 claims on 130 blocks < 10 s; 60,000 claims on
190 blocks < 60 s and < 2 GB peak memory. FCFS with 100,000 claims < 20 s (the
simulator core must not be the bottleneck). Each case runs in its own process so
its peak memory is its own. Exit status 1 if a target is missed.

`--smoke` runs the same two kinds of case on 1,000 claims with budget unlocked in 50
steps instead of 1,000 (a few seconds) and checks no target: it is there so that CI
notices when the benchmark itself breaks.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from dpsched.sim.config import parse_config
from dpsched.sim.simulator import Simulator


def config(
    n_tasks: int, total_blocks: int, policy: str, unlock_steps: int = 1000
) -> dict[str, Any]:
    return {
        "seed": 0,
        "accounting": "rdp",
        "blocks": {"initial": 100, "total": total_blocks, "epsilon": 10, "delta": 1e-7},
        "workload": {"name": "alibaba-synthetic", "n_tasks": n_tasks},
        "scheduler": {
            "policy": policy,
            "mode": "batch",
            "period": 10,
            "unlocking": {"kind": "per_step", "n": unlock_steps},
            "options": {"recompute_every": 50} if policy == "dpack" else {},
        },
    }


CASES: dict[str, tuple[dict[str, Any], float, float]] = {
    "dpack 10k claims / 130 blocks": (config(10_000, 130, "dpack"), 10.0, 2048.0),
    "dpack 60k claims / 190 blocks": (config(60_000, 190, "dpack"), 60.0, 2048.0),
    "fcfs 100k claims / 130 blocks": (config(100_000, 130, "fcfs"), 20.0, 2048.0),
}
SMOKE_CASES: dict[str, tuple[dict[str, Any], float, float]] = {
    "dpack 1k claims / 110 blocks, N=50": (config(1000, 110, "dpack", 50), 10.0, 2048.0),
    "fcfs 1k claims / 110 blocks, N=50": (config(1000, 110, "fcfs", 50), 20.0, 2048.0),
}


def run_case(name: str) -> dict[str, Any]:
    start = time.perf_counter()
    result = Simulator(parse_config({**CASES, **SMOKE_CASES}[name][0])).run()
    return {
        "wall_s": time.perf_counter() - start,
        "scheduler_s": result.summary["scheduler_time_s"],
        "allocated": result.summary["n_allocated"],
        "steps": result.summary["n_steps"],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="only the 10k-claim case")
    parser.add_argument("--smoke", action="store_true", help="1,000-claim cases, no target checked")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return 0
    title = "dpsched online simulation benchmarks"
    if args.smoke:
        title += " (smoke: targets not checked)"
    table = Table(title=title)
    for column in (
        "case",
        "wall (s)",
        "target",
        "scheduler (s)",
        "steps",
        "allocated",
        "peak MB",
        "ok",
    ):
        table.add_column(column, justify="left" if column == "case" else "right")
    missed = 0
    cases = SMOKE_CASES if args.smoke else CASES
    names = list(cases)[:1] if args.quick else list(cases)
    for name in names:
        out = subprocess.run(
            [sys.executable, __file__, "--case", name],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        _, target_s, target_mb = cases[name]
        ok = row["wall_s"] < target_s and row["peak_mb"] < target_mb
        missed += not ok and not args.smoke
        table.add_row(
            name,
            f"{row['wall_s']:.1f}",
            f"< {target_s:g}",
            f"{row['scheduler_s']:.1f}",
            str(row["steps"]),
            str(row["allocated"]),
            f"{row['peak_mb']:.0f}",
            "yes" if ok else "NO",
        )
    Console(width=120).print(table)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
