"""`optimal` against dpack (issue 12 §3): granted claims, status, certified gap, time.

    python benchmarks/optimal.py                  # every case, 60 s limits
    python benchmarks/optimal.py --quick          # mixed n = 1,000 only
    python benchmarks/optimal.py --time-limit 30
    python benchmarks/optimal.py --smoke          # every case, small, 1 s limits

Cases:
- mixed n = 1,000 on 10 blocks (seed 0, every block at t = 0). Target: within 60 s,
  optimal >= dpack and a certified gap <= 2%.
- alibaba-synthetic: 60,000 tasks (seed 0) on 90 blocks, each reading its most recent
  n_blocks as the workload's tasks do online (so every task reads the last block).
- recent-heavy-tail: benchmarks/run.py's 60,000 x 90 case.
- artifact-csv: the anchor's loading case (benchmarks/anchor.py: 60,000 claims x 90
  blocks, curves from the DPack artifact's CSV in configs/data/).

Times are the policy's own (`runtime_s`: problem building and loading excluded).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dpsched.budget.orders import DEFAULT_ALPHAS
from dpsched.offline import Instance, load_instance, parse_instance, run_policy
from dpsched.sim.workloads import mixed, recent_heavy_tail
from dpsched.sim.workloads.registry import generate_tasks

BLOCKS = 90
DELTA = 1e-7
SMOKE_TIME_LIMIT = 1.0


def mixed_offline(n: int) -> Instance:
    data = mixed(n, 10, seed=0).to_instance_dict()
    for block in data["blocks"]:
        block.pop("arrival", None)
    return parse_instance(data)


def alibaba_synthetic(n: int) -> Instance:
    tasks = generate_tasks("alibaba-synthetic", n_tasks=n, seed=0, params={}, n_blocks=BLOCKS)
    alphas = DEFAULT_ALPHAS
    return parse_instance(
        {
            "accounting": "rdp",
            "alphas": list(alphas),
            "delta": DELTA,
            "blocks": [{"id": f"b{j}", "epsilon": 10.0, "delta": DELTA} for j in range(BLOCKS)],
            "tasks": [
                {
                    "id": f"t{i}",
                    "blocks": [f"b{j}" for j in range(BLOCKS - min(t.n_blocks, BLOCKS), BLOCKS)],
                    "demand": {"rdp": t.demand.curve(alphas).tolist()},
                }
                for i, t in enumerate(tasks)
            ],
        }
    )


def heavy_tail(n: int) -> Instance:
    data = recent_heavy_tail(n, BLOCKS, seed=0).to_instance_dict()
    for block in data["blocks"]:
        block.pop("arrival", None)
    return parse_instance(data)


def artifact_csv(n: int) -> Instance:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from anchor import large_instance  # noqa: PLC0415 (benchmarks/ on the path)

    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "large.json"
        large_instance(path, n)
        return load_instance(path)


CASES: dict[str, tuple[Callable[[int], Instance], int, int]] = {
    "mixed n={n:,} x 10": (mixed_offline, 1000, 200),
    "alibaba-synthetic {n:,} x 90": (alibaba_synthetic, 60_000, 2000),
    "recent-heavy-tail {n:,} x 90": (heavy_tail, 60_000, 2000),
    "artifact-csv {n:,} x 90": (artifact_csv, 60_000, 1000),
}
"""Name (with its size), builder, full size, smoke size."""


def row(name: str, instance: Instance, time_limit: float) -> list[str]:
    _, dpack = run_policy(instance, "dpack", explain=0)
    _, best = run_policy(instance, "optimal", {"time_limit": time_limit}, explain=0)
    gap = "-" if best["mip_gap"] is None else f"{best['mip_gap']:.2%}"
    bound = best["details"].get("bound")
    return [
        name,
        str(dpack["n_allocated"]),
        str(best["n_allocated"]),
        best["status"],
        gap,
        "-" if bound is None else f"{bound:g}",
        f"{best['runtime_s']:.1f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="mixed n = 1,000 only")
    parser.add_argument(
        "--smoke", action="store_true", help=f"every case, small, {SMOKE_TIME_LIMIT:g} s limits"
    )
    parser.add_argument("--time-limit", type=float, default=None, help="seconds (default 60)")
    args = parser.parse_args()
    time_limit = args.time_limit
    if time_limit is None:
        time_limit = SMOKE_TIME_LIMIT if args.smoke else 60.0
    table = Table(title=f"optimal vs dpack, {time_limit:g} s limit")
    headers = ("case", "dpack", "optimal", "status", "gap", "bound", "optimal (s)")
    for header in headers:
        table.add_column(header, justify="left" if header in ("case", "status") else "right")
    for name, (build, full, small) in CASES.items():
        if args.quick and not name.startswith("mixed"):
            continue
        n = small if args.smoke else full
        table.add_row(*row(name.format(n=n), build(n), time_limit))
    Console(width=150).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
