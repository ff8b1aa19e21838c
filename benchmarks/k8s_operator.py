"""Kubernetes operator overhead: `python benchmarks/k8s_operator.py` prints one table.

A whole deployment on loopback (`dpsched.lab.deployment`: the service as a real process, the
emulated API server, kopf in a thread). PrivacyClaims are created one after another on
blocks with room for all of them; for each, the wall time from its creation (the POST
returning) to its status showing the engine's decision (Pending or Allocated) is the
operator's per-claim overhead: the kopf handler's submission through the API, the
scheduling round that follows (the service's period, 0.05 s here, is part of it) and
the journal mirror writing the status. Two loads: claims paced (10 a second by
default: the overhead of one claim) and a burst (all at once: the rate the pipeline
sustains, with the queueing it causes). Reported: mean, p50 and p99, and the rate at
which created claims reach Allocated.

`--smoke` runs one deployment (dpack, 10 claims at 20 a second; each deployment takes
about 10 s to start and stop): it is there so that CI notices when the benchmark itself
breaks. It still fails if a claim is not allocated.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from dpsched.lab.deployment import Lab

API = "dpsched.io/v1"


def measure(n_claims: int, policy: str, rate: float | None = None) -> dict[str, Any]:
    """`rate`: claims created per second (None: back to back, a burst)."""
    config = {"accounting": "basic", "scheduler": {"policy": policy, "period": 0.05}}
    with Lab(config, sync_interval=0.05) as lab:
        cluster = lab.cluster
        for j in range(4):
            body = {"apiVersion": API, "kind": "PrivateBlock", "metadata": {"name": f"b{j}"}}
            cluster.create(API, "privateblocks", None, {**body, "spec": {"epsilon": 1000.0}})
        created: dict[str, float] = {}
        decided: dict[str, float] = {}
        allocated: dict[str, float] = {}
        done = threading.Event()

        def watch() -> None:
            with httpx.Client(base_url=cluster.url, timeout=30) as http:  # its own connection
                poll(http)

        def poll(http: httpx.Client) -> None:
            while not done.is_set():
                items = http.get(cluster.path(API, "privacyclaims", "bench")).json()
                now = time.perf_counter()
                for item in items.get("items", []):
                    name = item["metadata"]["name"]
                    phase = (item.get("status") or {}).get("phase")
                    if phase and name not in decided:
                        decided[name] = now
                    if phase == "Allocated" and name not in allocated:
                        allocated[name] = now
                if len(allocated) >= n_claims:
                    return
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.perf_counter()
        for i in range(n_claims):
            if rate is not None:
                time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            name = f"c{i:05d}"
            meta = {"name": name, "namespace": "bench"}
            spec = {"blocks": [f"b{i % 4}"], "demand": {"epsilon": 0.1}}
            claim = {"apiVersion": API, "kind": "PrivacyClaim", "metadata": meta, "spec": spec}
            cluster.create(API, "privacyclaims", "bench", claim)
            created[name] = time.perf_counter()
        watcher.join(timeout=120 + n_claims)
        done.set()
        end = max(allocated.values(), default=time.perf_counter())
    latency = np.array([decided[n] - created[n] for n in created if n in decided]) * 1000
    return {
        "policy": policy,
        "load": "burst" if rate is None else f"{rate:g}/s",
        "claims": n_claims,
        "decided": int(latency.size),
        "allocated": len(allocated),
        "mean_ms": float(latency.mean()) if latency.size else None,
        "p50_ms": float(np.percentile(latency, 50)) if latency.size else None,
        "p99_ms": float(np.percentile(latency, 99)) if latency.size else None,
        "claims_per_s": len(allocated) / (end - start),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=1000, help="claims in the burst")
    parser.add_argument("--paced", type=int, default=200, help="claims at --rate per second")
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument("--smoke", action="store_true", help="one deployment: dpack, 10 claims")
    args = parser.parse_args()
    if args.smoke:
        rows = [measure(10, "dpack", 20.0)]
    else:
        rows = [
            measure(n, policy, rate)
            for n, rate in ((args.paced, args.rate), (args.claims, None))
            for policy in ("fcfs", "dpack")
        ]
    table = Table(title="dpsched operator: CR created -> status written (per claim)")
    columns = ("policy", "load", "claims", "allocated", "mean ms", "p50 ms", "p99 ms", "claims/s")
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row["policy"],
            row["load"],
            str(row["claims"]),
            str(row["allocated"]),
            f"{row['mean_ms']:.0f}",
            f"{row['p50_ms']:.0f}",
            f"{row['p99_ms']:.0f}",
            f"{row['claims_per_s']:.1f}",
        )
    Console().print(table)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)
    return 0 if all(r["allocated"] == r["claims"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
