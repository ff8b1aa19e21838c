"""Scheduling-core benchmarks: `python benchmarks/run.py` prints one table.

Targets (2-core machine): mixed n=1,000 on 10 blocks: dpack < 0.05 s, dpack
recomputing after every grant < 0.2 s (the DPack artifact takes 7-8 s: see
benchmarks/anchor.py for the side-by-side ratio); optimal exact at n=200 < 10 s. 60,000 claims
on 90 blocks (1-100 most recent, heavy-tailed): dpack < 5 s, dpf < 2 s, peak
memory < 2 GB. Runtime is the policy's own time (problem building excluded).

`--smoke` runs every case on a small instance (a few seconds in all) and checks no
target: it is there so that CI notices when the benchmark itself breaks.
"""

from __future__ import annotations

import argparse
import resource
import sys
from dataclasses import dataclass, replace

from rich.console import Console
from rich.table import Table

from dpsched.core import AllUnlocked, Ledger
from dpsched.policies import get_policy, problem_from_ledger
from dpsched.sim.workloads import Workload, mixed, recent_heavy_tail


@dataclass(frozen=True)
class Case:
    workload: str
    n: int
    blocks: int
    policy: str
    options: tuple[tuple[str, object], ...]
    target_s: float
    smoke_n: int
    """Claims with `--smoke`."""


CASES = (
    Case("mixed", 1000, 10, "fcfs", (), 0.05, 200),
    Case("mixed", 1000, 10, "dpf", (), 0.05, 200),
    Case("mixed", 1000, 10, "area", (), 0.05, 200),
    Case("mixed", 1000, 10, "dpack", (), 0.05, 200),
    Case("mixed", 1000, 10, "dpack", (("recompute_every", 1),), 0.2, 200),
    Case("mixed", 200, 10, "optimal", (("time_limit", 60.0),), 10.0, 50),
    Case("recent-heavy-tail", 60000, 90, "dpf", (), 2.0, 2000),
    Case("recent-heavy-tail", 60000, 90, "dpack", (), 5.0, 2000),
)


def build(case: Case) -> Workload:
    if case.workload == "mixed":
        return mixed(case.n, case.blocks, seed=0)
    return recent_heavy_tail(case.n, case.blocks, seed=0)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the 60,000-claim cases")
    parser.add_argument(
        "--smoke", action="store_true", help="every case on a small instance, no target checked"
    )
    args = parser.parse_args()
    title = "dpsched scheduling benchmarks"
    if args.smoke:
        title += " (smoke: small instances, targets not checked)"
    table = Table(title=title)
    for column in (
        "workload",
        "n",
        "blocks",
        "policy",
        "runtime (s)",
        "target (s)",
        "allocated",
        "status",
        "peak RSS (MB)",
    ):
        table.add_column(
            column, justify="left" if column in ("workload", "policy", "status") else "right"
        )
    cache: dict[tuple[str, int, int], Workload] = {}
    failures = 0
    for full in CASES:
        if args.quick and full.n > 10000:
            continue
        case = replace(full, n=full.smoke_n) if args.smoke else full
        key = (case.workload, case.n, case.blocks)
        if key not in cache:
            cache[key] = build(case)
        workload = cache[key]
        ledger = Ledger(workload.accounting)
        for block in workload.blocks:
            AllUnlocked().on_block_added(ledger, ledger.add_block(block), 0.0)
        for task in workload.tasks:
            ledger.submit(task, time=0.0)
        problem = problem_from_ledger(ledger)
        options = dict(case.options)
        result = get_policy(case.policy).run(problem, options)
        label = case.policy + "".join(f" {k}={v}" for k, v in case.options if k != "time_limit")
        ok = result.runtime_s < case.target_s
        failures += not ok and not args.smoke
        table.add_row(
            case.workload,
            str(case.n),
            str(case.blocks),
            label,
            f"[{'green' if ok else 'red'}]{result.runtime_s:.4f}[/]",
            f"{case.target_s:g}",
            str(len(result.allocated)),
            result.status,
            f"{peak_rss_mb():.0f}",
        )
    Console(width=150).print(table)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
