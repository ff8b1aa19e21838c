"""What a run reports: the summary row, per-claim and per-block tables, the timeline.

The summary's first keys (policy, n_submitted, n_allocated, total_weight,
scheduler_time_s, wall_time_s, mean_delay) are a contract for external scripts.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dpsched.core import ClaimState, Ledger, rows_fit
from dpsched.sim.config import SimConfig

TIMELINE_POINTS = 200
"""Steps kept in the per-block consumption timeline (evenly spaced, last one included)."""

if TYPE_CHECKING:
    from dpsched.sim.simulator import Simulator


@dataclass
class SimResult:
    """Everything a run produced; `summary` is what sweeps and plots read."""

    config: SimConfig
    summary: dict[str, Any]
    claims: list[dict[str, Any]]
    blocks: list[dict[str, Any]]
    timeline: list[dict[str, Any]] = field(default_factory=list)
    ledger: Ledger | None = None

    def write(self, out: str | Path) -> list[Path]:
        """summary.json, config.yaml-equivalent JSON, and the CSV tables under `out`."""
        directory = Path(out)
        directory.mkdir(parents=True, exist_ok=True)
        summary = directory / "summary.json"
        summary.write_text(json.dumps(self.summary, indent=2) + "\n")
        config = directory / "config.json"
        config.write_text(self.config.model_dump_json(indent=2) + "\n")
        written = [summary, config]
        for name, rows in (
            ("claims", self.claims),
            ("blocks", self.blocks),
            ("timeline", self.timeline),
        ):
            path = directory / f"{name}.csv"
            write_csv(path, rows)
            written.append(path)
        return written


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows as CSV with the union of their keys as columns (first seen first): sweep
    cells set different keys, and a failed cell has no metrics. Nested values are
    written as their text."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    with path.open("w", newline="") as handle:
        if not rows:
            return
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows({c: _cell(row.get(c)) for c in columns} for row in rows)


def _cell(value: Any) -> Any:
    return value if not isinstance(value, dict | list) else str(value)


def _quantile(values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q)) if values.size else None


def collect(sim: Simulator, wall_time_s: float) -> SimResult:
    config = sim.config
    ledger = sim.ledger
    fair_n = config.fair_share_n
    usable = ledger.budget.usable
    claims = []
    delays = []
    total_weight = 0.0
    counts = dict.fromkeys(ClaimState, 0)
    fair_allocated = 0
    grants_per_block = np.zeros(len(ledger.blocks), dtype=np.int64)
    for claim in ledger.claims:
        counts[claim.state] += 1
        rows = claim.block_index
        fair = bool(
            rows_fit(claim.demand, ledger.budget.capacity[rows] / fair_n, usable[rows]).all()
        )
        granted = claim.allocated_at is not None
        delay = claim.allocated_at - claim.arrival if claim.allocated_at is not None else None
        if granted:
            delays.append(delay)
            total_weight += claim.weight
            fair_allocated += fair
            grants_per_block[rows] += 1
        task = sim.tasks[int(claim.id[1:])]
        claims.append(
            {
                "id": claim.id,
                "task": task.name,
                "weight": claim.weight,
                "n_blocks": len(claim.block_ids),
                "arrival": claim.arrival,
                "state": claim.state.value,
                "allocated_at": claim.allocated_at,
                "delay": delay,
                "fair_share": fair,
                "reason": claim.reason,
            }
        )
    n_allocated = len(delays)
    delay_array = np.asarray(delays, dtype=float)
    used = sim.engine.used_fraction()
    blocks = [
        {
            "id": spec.id,
            "arrival": spec.arrival,
            "unlocked_fraction": float(ledger.budget.unlocked_fraction[j]),
            "used_fraction": float(used[j]),
            "spent_epsilon": ledger.spent_epsilon(spec.id),
            "delta": spec.delta,
            "n_allocated": int(grants_per_block[j]),
        }
        for j, spec in enumerate(ledger.blocks)
    ]
    steps = sim.timeline
    keep = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), TIMELINE_POINTS)).astype(int))
    timeline = [
        {
            "time": t,
            "block": ledger.blocks[j].id,
            "used_fraction": float(u[j]),
            "unlocked_fraction": float(f[j]),
        }
        for t, u, f in (steps[i] for i in keep)
        for j in range(u.size)
    ]
    violations = ledger.invariant_violations()
    summary: dict[str, Any] = {
        "policy": config.scheduler.policy,
        "n_submitted": len(claims),
        "n_allocated": n_allocated,
        "total_weight": total_weight,
        "scheduler_time_s": sim.scheduler_time_s,
        "wall_time_s": wall_time_s,
        "mean_delay": float(delay_array.mean()) if n_allocated else None,
        "median_delay": _quantile(delay_array, 0.5),
        "p90_delay": _quantile(delay_array, 0.9),
        "max_delay": float(delay_array.max()) if n_allocated else None,
        "n_rejected": counts[ClaimState.REJECTED],
        "n_expired": counts[ClaimState.EXPIRED],
        "n_pending_at_end": counts[ClaimState.PENDING],
        "fair_share_n": fair_n,
        "fair_share_of_allocated": fair_allocated / n_allocated if n_allocated else None,
        "mode": config.scheduler.mode,
        "workload": config.workload.name,
        "accounting": config.accounting,
        "seed": config.seed,
        "n_blocks": len(ledger.blocks),
        "n_steps": sim.steps,
        "end_time": float(sim.env.now),
        "budget_violations": len(violations),
    }
    return SimResult(config, summary, claims, blocks, timeline, ledger)
