"""DPack Fig. 8 and Tab. 2 on the Kubernetes path: the Alibaba-DP workload goes in as
PrivateBlocks and PrivacyClaims, the operator (kopf) and the service decide, statuses
come out (`deployment.py`: the service process, the emulated API server, the operator).

Setting (DPack §6.4): 4,190 tasks, 10 offline and 20 online blocks, one online block
per time unit; offline T = 25, online T = 5. Time is scaled: one unit is `unit_s` wall
seconds, so the claims' arrival rate stays within what the operator sustains here; the
service's period is T x unit_s, and delays are reported back in units. The same
scenario also runs in the simulator (one engine: the counts should agree, up to the
moments at which rounds fall).

- `online(policy)`: allocated tasks (Tab. 2) and each granted task's scheduling delay,
  from its arrival to its grant, in units (Fig. 8b's CDF).
- `offline(policy, n)`: all blocks, then n claims at once; one scheduling round on the
  n pending claims: the policy's time (the service's `time_s`) and the wall time from the
  round's request to every claim's status written (Fig. 8a: runtime against n).

It uses the simulator's workload generator and the simulator itself (for the
comparison): an experiment spanning two front ends, run by `dpsched reproduce dpack-8`.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dpsched.budget import Accounting
from dpsched.errors import InputError
from dpsched.k8s.tenants import TENANT_PREFIX
from dpsched.lab.deployment import Lab
from dpsched.lab.emulator import EmulatedCluster
from dpsched.sim.arrivals import claim_arrivals
from dpsched.sim.config import SimConfig, parse_config
from dpsched.sim.simulator import Simulator, build_tasks, seeds
from dpsched.sim.workloads.base import Task

API = "dpsched.io/v1"
NAMESPACE = "alibaba"
PAPER_ALLOCATED = {"dpack": 1269, "dpf": 1100}
N_TASKS = 4190
OFFLINE_BLOCKS, ONLINE_BLOCKS = 10, 20
UNLOCK_ROUNDS = 10
"""Rounds over which a block's budget unlocks (1/N each round)."""

POLICIES = ("dpack", "dpf")

Progress = Callable[[str], None]


def sim_config(policy: str, n_tasks: int, period: float, unlock: int) -> SimConfig:
    return parse_config(
        {
            "blocks": {"initial": OFFLINE_BLOCKS, "total": OFFLINE_BLOCKS + ONLINE_BLOCKS},
            "workload": {"name": "alibaba-synthetic", "n_tasks": n_tasks},
            "scheduler": {
                "mode": "batch",
                "policy": policy,
                "period": period,
                "unlocking": {"kind": "per_step", "n": unlock},
            },
        }
    )


@dataclass
class OnlineRun:
    policy: str
    submitted: int
    allocated: int
    simulated: int
    delays: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def _claim_spec(task: Task, accounting: Accounting) -> dict[str, Any]:
    demand = task.demand.spec(accounting).model_dump(mode="json", exclude_none=True)
    return {"blocks": {"most_recent": task.n_blocks}, "demand": demand, "weight": task.weight}


def _block(cluster: EmulatedCluster, j: int) -> None:
    body = {"apiVersion": API, "kind": "PrivateBlock", "metadata": {"name": f"b{j:04d}"}}
    cluster.create(API, "privateblocks", None, {**body, "spec": {"epsilon": 10.0, "delta": 1e-7}})


def _claim(cluster: EmulatedCluster, i: int, spec: dict[str, Any]) -> None:
    meta = {"name": f"t{i:05d}", "namespace": NAMESPACE}
    body = {"apiVersion": API, "kind": "PrivacyClaim", "metadata": meta, "spec": spec}
    cluster.create(API, "privacyclaims", NAMESPACE, body)


def _claims(lab: Lab) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    with lab.admin() as admin:
        admin.headers["X-Dpsched-Tenant"] = TENANT_PREFIX + NAMESPACE
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if cursor is not None:
                params["cursor"] = cursor
            page = admin.get("/v1/claims", params=params).json()
            found += page["claims"]
            cursor = page["next_cursor"]
            if cursor is None:
                return found


def _statuses(cluster: EmulatedCluster) -> list[str | None]:
    items = cluster.http.get(cluster.path(API, "privacyclaims", NAMESPACE)).json()["items"]
    return [(item.get("status") or {}).get("phase") for item in items]


def online(
    policy: str,
    *,
    n_tasks: int = N_TASKS,
    unit_s: float = 8.0,
    period: float = 5.0,
    unlock: int = UNLOCK_ROUNDS,
    progress: Progress | None = None,
) -> OnlineRun:
    config = sim_config(policy, n_tasks, period, unlock)
    tasks = build_tasks(config)
    arrivals = claim_arrivals(config, tasks, np.random.default_rng(seeds(config.seed)[1]))
    accounting = config.make_accounting()
    specs = [_claim_spec(task, accounting) for task in tasks]
    simulated = int(Simulator(config, tasks).run().summary["n_allocated"])
    events = [(0.0, "block", j) for j in range(OFFLINE_BLOCKS)]
    events += [(float(t), "block", OFFLINE_BLOCKS + t - 1) for t in range(1, ONLINE_BLOCKS + 1)]
    events += [(float(a), "claim", i) for i, a in enumerate(arrivals.tolist())]
    events.sort(key=lambda e: (e[0], e[1] != "block"))
    service = {
        "accounting": "rdp",
        "scheduler": {
            "policy": policy,
            "period": period * unit_s,
            "unlocking": {"kind": "per_step", "n": unlock},
        },
    }
    with Lab(service) as lab:
        start = time.monotonic()
        for at, kind, index in events:
            time.sleep(max(0.0, start + at * unit_s - time.monotonic()))
            if kind == "block":
                _block(lab.cluster, index)
            else:
                _claim(lab.cluster, index, specs[index])
            if progress is not None and kind == "block":
                progress(f"{policy}: t = {at:g}, block {index + 1} of 30")
        if progress is not None:
            progress(f"{policy}: all arrived; {unlock + 1} more rounds")
        # The last block unlocks over `unlock` rounds: run them all, and one more.
        end = start + (ONLINE_BLOCKS + (unlock + 1) * period) * unit_s
        while time.monotonic() < end:
            time.sleep(min(1.0, end - time.monotonic()))
        claims = _claims(lab)
        granted = [c for c in claims if c["allocated_at"] is not None]
        phases = _statuses(lab.cluster)
        delays = [(c["allocated_at"] - c["arrival"]) / unit_s for c in granted]
        return OnlineRun(
            policy=policy,
            submitted=len(claims),
            allocated=phases.count("Allocated"),
            simulated=simulated,
            delays=sorted(delays),
            wall_s=time.monotonic() - start,
        )


@dataclass
class OfflineRun:
    policy: str
    n: int
    round_s: float
    wall_s: float
    allocated: int


def offline(policy: str, n: int, progress: Progress | None = None) -> OfflineRun:
    """All 30 blocks and n claims first (a period longer than the run: T = 25 units),
    then one round on the n pending claims."""
    config = sim_config(policy, n, 25.0, 1)
    tasks = build_tasks(config)
    accounting = config.make_accounting()
    service = {"accounting": "rdp", "scheduler": {"policy": policy, "period": 3600.0}}
    with Lab(service) as lab:
        for j in range(OFFLINE_BLOCKS + ONLINE_BLOCKS):
            _block(lab.cluster, j)
        for i, task in enumerate(tasks):
            _claim(lab.cluster, i, _claim_spec(task, accounting))
        deadline = time.monotonic() + 60 + n
        while sum(p is not None for p in _statuses(lab.cluster)) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only some of {n} claims were submitted in time")
            time.sleep(0.2)
        if progress is not None:
            progress(f"{policy}: {n} claims pending, one round")
        start = time.monotonic()
        with lab.admin() as admin:
            round_s = float(admin.post("/v1/schedule").json()["time_s"])
        allocated = len([c for c in _claims(lab) if c["state"] == "allocated"])
        while _statuses(lab.cluster).count("Allocated") < allocated:
            time.sleep(0.05)
        return OfflineRun(policy, n, round_s, time.monotonic() - start, allocated)


@dataclass
class Report:
    online: list[OnlineRun]
    offline: list[OfflineRun]
    files: list[Path]


def report(quick: bool, out: Path, progress: Progress | None = None) -> Report:
    """Both experiments for dpack and dpf; writes dpack-8.csv, dpack-8a.png (runtime
    against submitted tasks) and dpack-8b.png (scheduling delay CDF)."""
    if quick:
        runs = [online(p, n_tasks=200, unit_s=0.5, unlock=4, progress=progress) for p in POLICIES]
        sizes: tuple[int, ...] = (100, 200)
    else:
        runs = [online(p, unit_s=7.0, progress=progress) for p in POLICIES]
        sizes = (1000, 2000, N_TASKS)
    offline_runs = [offline(p, n, progress) for p in POLICIES for n in sizes]
    out.mkdir(parents=True, exist_ok=True)
    rows = _rows(runs, offline_runs)
    csv_path = out / "dpack-8.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)
    files = [csv_path, *plots(rows, out)]
    return Report(runs, offline_runs, files)


CSV_HEADER = ("experiment", "series", "x", "value")


def _rows(runs: list[OnlineRun], offline_runs: list[OfflineRun]) -> list[list[Any]]:
    """The figure's data as dpack-8.csv holds it (`series` is the policy)."""
    rows: list[list[Any]] = []
    for run in runs:
        rows.append(["online_allocated", run.policy, run.submitted, run.allocated])
        rows.append(["online_simulated", run.policy, run.submitted, run.simulated])
        for rank, delay in enumerate(run.delays, 1):
            rows.append(["delay_cdf", run.policy, f"{delay:.6g}", rank / len(run.delays)])
    for o in offline_runs:
        rows.append(["round_s", o.policy, o.n, f"{o.round_s:.6g}"])
        rows.append(["statuses_s", o.policy, o.n, f"{o.wall_s:.6g}"])
    return rows


def redraw(csv_path: Path, out: Path) -> list[Path]:
    """Draw the figures again from a dpack-8.csv (no 28-minute run)."""
    with csv_path.open(newline="") as handle:
        reader = csv.reader(handle)
        if tuple(next(reader)) != CSV_HEADER:
            raise InputError(str(csv_path), f"not a dpack-8 table (header {CSV_HEADER})")
        return plots(list(reader), out)


def plots(rows: list[list[Any]], out: Path) -> list[Path]:
    """dpack-8a.png and dpack-8b.png from the table's rows, saved in `out`."""
    saved = []
    for name, figure in figures(rows).items():
        figure.savefig(out / name, dpi=120)
        saved.append(out / name)
    return saved


def figures(rows: list[list[Any]]) -> dict[str, Figure]:
    """The two figures by file name, from the table's rows."""
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for experiment, policy, x, value in rows:
        series.setdefault((experiment, policy), []).append((float(x), float(value)))
    runtime = Figure(figsize=(5, 3.5))
    axis = runtime.subplots()
    for policy in POLICIES:
        for experiment, marker, style, what in (
            ("round_s", "o", "-", "scheduling round"),
            ("statuses_s", "s", "--", "until every status is written"),
        ):
            points = sorted(series.get((experiment, policy), []))
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            axis.plot(xs, ys, marker=marker, ls=style, label=f"{policy}: {what}")
    axis.set_xlabel("submitted tasks")
    axis.set_ylabel("time (s)")
    axis.set_title("DPack Fig. 8a on the Kubernetes path (offline)")
    axis.legend(title="policy", fontsize=7, title_fontsize=7)
    runtime.tight_layout()
    cdf = Figure(figsize=(5, 3.5))
    axis = cdf.subplots()
    for policy in POLICIES:
        points = series.get(("delay_cdf", policy), [])
        granted = series.get(("online_allocated", policy), [(0.0, 0.0)])[0][1]
        axis.step(
            [p[0] for p in points],
            [p[1] for p in points],
            where="post",
            label=f"{policy} ({granted:.0f} granted)",
        )
    axis.set_xlabel("scheduling delay (time units)")
    axis.set_ylabel("fraction of granted tasks")
    axis.set_title("DPack Fig. 8b on the Kubernetes path (online, T = 5)")
    axis.legend(title="policy", fontsize=7, title_fontsize=7)
    cdf.tight_layout()
    return {"dpack-8a.png": runtime, "dpack-8b.png": cdf}
