"""What a run reports: the summary row, per-claim and per-block tables, the timeline,
and how they are written out (the simulator fills them: `simulator.collect`).

The summary's first keys (policy, n_submitted, n_allocated, total_weight,
scheduler_time_s, wall_time_s, mean_delay) are a contract for external scripts.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpsched.core import Ledger
from dpsched.sim.config import SimConfig


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
