"""dpsched side by side with the DPack artifact (columbia/dpack), in one run.

This machine's speed drifts up to 3x from one day to the next, so speed is judged by
ratios measured back to back: the anchor scripts (`../shared/anchor/` beside the clone,
not part of the repository) run the artifact's own schedulers on the same inputs. This
script builds those inputs, prints dpsched's own numbers always, and, when the artifact
is set up (`bash ../shared/anchor/setup.sh GIT_DIR`, GIT_DIR a clone of
github.com/columbia/dpack holding commit 706b990), runs the anchor's `compare.sh`
(offline) and `online.sh` (online) and prints their tables.

    python benchmarks/anchor.py                 # everything
    python benchmarks/anchor.py --quick         # offline mixed n=1,000 and 2,000 tasks only
    python benchmarks/anchor.py --smoke         # dpsched's side on small inputs, seconds
    python benchmarks/anchor.py instance OUT    # just write the offline instance

Inputs: the offline "mixed" microbenchmark (n = 1,000 claims on 10 blocks of (10, 1e-7),
seed 0, explicit RDP curves on the artifact's 12 orders, everything arriving at 0) and
the artifact's own 2,000-task Alibaba-DP CSV (`configs/data/alibaba-dp-2000.csv`), with a
10,000-task CSV drawn from it (rows sampled with replacement, seed 0).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dpsched.offline import parse_instance, run_policy
from dpsched.sim.config import parse_config
from dpsched.sim.simulator import Simulator
from dpsched.sim.workloads import mixed

ROOT = Path(__file__).resolve().parent.parent
ANCHOR = ROOT.parent / "shared" / "anchor"
ARTIFACT_CSV = ROOT / "configs" / "data" / "alibaba-dp-2000.csv"
ANCHOR_PYTHON = (
    Path(os.environ.get("ANCHOR_HOME", Path.home() / ".cache" / "dpsched-anchor"))
    / "venv"
    / "bin"
    / "python"
)


def mixed_instance(n: int = 1000) -> dict[str, Any]:
    """The offline instance the anchor's `mixed.py` reads: explicit curves, explicit blocks."""
    data = mixed(n, 10, seed=0).to_instance_dict()
    for block in data["blocks"]:
        block.pop("arrival", None)
    tasks = parse_instance(data).tasks
    data["tasks"] = [
        {
            "id": claim_id,
            "blocks": list(tasks.block_ids[i]),
            "demand": {"rdp": tasks.demand[tasks.indptr[i]].tolist()},
        }
        for i, claim_id in enumerate(tasks.ids)
    ]
    return data


def sampled_csv(source: Path, n: int, out: Path, seed: int = 0) -> None:
    """n tasks drawn with replacement from an Alibaba-DP CSV, in the same format."""
    with source.open() as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        rows = list(reader)
    picks = np.random.default_rng(seed).integers(0, len(rows), n)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows[i] for i in picks.tolist())


def large_instance(path: Path, n: int = 60_000, blocks: int = 90, seed: int = 0) -> None:
    """n claims on `blocks` blocks with explicit RDP curves drawn from the artifact's CSV,
    each on its task's number of consecutive blocks: the loading case."""
    with ARTIFACT_CSV.open() as handle:
        rows = list(csv.DictReader(handle))
    rng = np.random.default_rng(seed)
    tasks = []
    for i, k in enumerate(rng.integers(0, len(rows), n).tolist()):
        count = min(int(rows[k]["n_blocks"]), blocks)
        last = int(rng.integers(count - 1, blocks))
        tasks.append(
            {
                "id": f"t{i}",
                "blocks": [f"b{j}" for j in range(last - count + 1, last + 1)],
                "demand": {"rdp": json.loads(rows[k]["rdp_epsilons"])},
            }
        )
    data = {
        "accounting": "rdp",
        "alphas": [1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 8, 16, 32, 64],
        "delta": 1e-7,
        "blocks": [{"id": f"b{j}", "epsilon": 10.0, "delta": 1e-7} for j in range(blocks)],
        "tasks": tasks,
    }
    path.write_text(json.dumps(data))


def load_seconds(path: Path) -> float:
    """A JSON instance parsed, validated and in a ledger, in a fresh process."""
    code = (
        "import sys, time; t = time.perf_counter(); "
        "from dpsched.offline import load_instance; "
        "load_instance(sys.argv[1]).ledger(); print(time.perf_counter() - t)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return float(done.stdout)


@dataclass(frozen=True)
class Sizes:
    """How much of each case one run does."""

    mixed: int
    """Claims of the offline mixed instance."""
    repeats: int
    """Offline runs per policy (the best time is kept)."""
    csv_rows: int | None
    """Rows of the artifact's CSV replayed online (None: all 2,000)."""
    sampled: bool
    """Also replay the 10,000-task CSV drawn from it."""
    large: int
    """Claims of the loading case."""


FULL = Sizes(mixed=1000, repeats=3, csv_rows=None, sampled=True, large=60_000)
QUICK = Sizes(mixed=1000, repeats=3, csv_rows=None, sampled=False, large=60_000)
SMOKE = Sizes(mixed=200, repeats=1, csv_rows=300, sampled=False, large=5_000)
"""Every code path of dpsched's side in a few seconds; never the artifact's (minutes)."""


def online_config(path: Path, total: int, policy: str, rows: int | None = None) -> dict[str, Any]:
    """The anchor's online.sh configuration, as a dict (`rows`: the CSV's first rows only)."""
    scheduler: dict[str, Any] = {
        "policy": policy,
        "mode": "batch",
        "period": 10,
        "unlocking": {"kind": "lifetime", "lifetime": 30},
    }
    if policy == "dpack":
        scheduler["options"] = {"recompute_every": 50}
    workload: dict[str, Any] = {"name": "alibaba", "path": str(path)}
    if rows is not None:
        workload["n_tasks"] = rows
    return {
        "seed": 0,
        "accounting": "rdp",
        "blocks": {"initial": 100, "total": total, "epsilon": 10, "delta": 1e-7},
        "workload": workload,
        "scheduler": scheduler,
    }


def own_numbers(work: Path, sizes: Sizes) -> list[dict[str, Any]]:
    """dpsched alone: offline policy times and online scheduler CPU times."""
    rows: list[dict[str, Any]] = []
    label = f"mixed-{sizes.mixed}"
    instance = parse_instance(json.loads((work / f"{label}.json").read_text()))
    for policy, options in (("dpack", {"recompute_every": 1}), ("dpf", {}), ("fcfs", {})):
        best = float("inf")
        for _ in range(sizes.repeats):
            _, report = run_policy(instance, policy, options, explain=0)
            best = min(best, report["runtime_s"])
        rows.append({"case": label, "policy": policy, "n": report["n_allocated"], "s": best})
    csv_label = "alibaba-dp-2000" if sizes.csv_rows is None else f"alibaba-dp-{sizes.csv_rows}"
    cases = [(ARTIFACT_CSV, 110, f"{csv_label}/110")]
    if sizes.sampled:
        cases.append((work / "alibaba-dp-10000.csv", 130, "alibaba-dp-10000/130"))
    for path, total, case in cases:
        for policy in ("dpack", "dpf", "fcfs"):
            config = online_config(path, total, policy, sizes.csv_rows)
            summary = Simulator(parse_config(config)).run().summary
            rows.append(
                {
                    "case": case,
                    "policy": policy,
                    "n": summary["n_allocated"],
                    "s": summary["scheduler_time_s"],
                }
            )
    return rows


def anchor_tables(work: Path, quick: bool) -> None:
    # The CLI of this interpreter's environment, on PATH or not (`.venv/bin/python ...`).
    beside = Path(sys.executable).with_name("dpsched")
    cli = str(beside) if beside.exists() else shutil.which("dpsched") or "dpsched"
    env = {**os.environ, "DPSCHED": cli, "PY": sys.executable}
    runs = [["bash", str(ANCHOR / "compare.sh"), str(work / "mixed-1000.json")]]
    runs.append(["bash", str(ANCHOR / "online.sh"), str(ARTIFACT_CSV), "110"])
    if not quick:
        runs.append(["bash", str(ANCHOR / "online.sh"), str(work / "alibaba-dp-10000.csv"), "130"])
    for command in runs:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line and not line.startswith("wrote")]
        print("\n".join(lines), flush=True)
        if done.returncode != 0:
            print(f"{command[1]} failed ({done.returncode}): {done.stderr.strip()}", flush=True)


def side_by_side(work: Path, quick: bool, smoke: bool) -> None:
    """The artifact's tables when it is set up; otherwise how to set it up (its absence is
    never an error: dpsched's numbers above stand alone)."""
    if not (ANCHOR_PYTHON.exists() and ANCHOR.exists()):
        print(
            f"\nno DPack artifact set up (looked for the anchor scripts in {ANCHOR} and the"
            f" artifact's venv at {ANCHOR_PYTHON}): for the side-by-side ratios, put the anchor"
            " scripts in ../shared/anchor beside the clone, clone github.com/columbia/dpack"
            " (commit 706b990) and run `bash ../shared/anchor/setup.sh GIT_DIR`"
        )
    elif smoke:
        print(f"\nDPack artifact set up at {ANCHOR_PYTHON}: side by side skipped in smoke mode")
    else:
        print("\nside by side with the DPack artifact (ratio = artifact time / dpsched time)")
        anchor_tables(work, quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=["all", "instance"], default="all")
    parser.add_argument("out", nargs="?", help="with `instance`: the JSON file to write")
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-task case")
    parser.add_argument(
        "--smoke", action="store_true", help="dpsched's side on small inputs only (seconds)"
    )
    args = parser.parse_args()
    if args.what == "instance":
        Path(args.out or "mixed-1000.json").write_text(json.dumps(mixed_instance()))
        return
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / f"mixed-{sizes.mixed}.json").write_text(json.dumps(mixed_instance(sizes.mixed)))
        if sizes.sampled:
            sampled_csv(ARTIFACT_CSV, 10_000, work / "alibaba-dp-10000.csv")
        start = time.perf_counter()
        rows = own_numbers(work, sizes)
        print(f"dpsched alone ({time.perf_counter() - start:.1f} s)")
        print(f"{'case':<22} {'policy':<6} {'allocated':>9} {'scheduler_s':>11}")
        for row in rows:
            print(f"{row['case']:<22} {row['policy']:<6} {row['n']:>9} {row['s']:>11.4f}")
        large_instance(work / "large.json", sizes.large)
        size = (work / "large.json").stat().st_size / 1e6
        seconds = load_seconds(work / "large.json")
        print(
            f"load {sizes.large:,} claims x 90 blocks ({size:.0f} MB JSON): {seconds:.2f} s"
            f" (target 3 s at 60,000)"
        )
        side_by_side(work, args.quick, args.smoke)


if __name__ == "__main__":
    main()
