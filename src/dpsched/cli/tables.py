"""Rich tables for the terminal."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table

from dpsched.budget import Accounting


def comparison_table(reports: list[dict[str, Any]], title: str) -> Table:
    best = max((r["total_weight"] for r in reports), default=0.0)
    table = Table(title=title)
    for column in ("policy", "allocated", "weight", "runtime (s)", "status", "vs best"):
        table.add_column(column, justify="left" if column in ("policy", "status") else "right")
    for r in reports:
        ratio = r["total_weight"] / best if best > 0 else 1.0
        table.add_row(
            r["policy"],
            f"{r['n_allocated']}/{r['n_tasks']}",
            f"{r['total_weight']:g}",
            f"{r['runtime_s']:.4f}",
            r["status"] + (f" (gap {r['mip_gap']:.2%})" if r["mip_gap"] else ""),
            f"{ratio:.3f}",
        )
    return table


def blocks_table(report: dict[str, Any]) -> Table:
    table = Table(title="blocks")
    table.add_column("block")
    table.add_column("spent epsilon", justify="right")
    table.add_column("min remaining", justify="right")
    for block_id, info in report["blocks"].items():
        table.add_row(block_id, f"{info['spent_epsilon']:.4f}", f"{min(info['remaining']):.4f}")
    return table


def curve_table(accounting: Accounting, curve: np.ndarray, classic: np.ndarray) -> Table:
    table = Table(title="RDP curve")
    table.add_column("alpha", justify="right")
    table.add_column("RDP epsilon", justify="right")
    table.add_column("DP epsilon via alpha (classic)", justify="right")
    for alpha, value, dp in zip(accounting.alphas, curve, classic, strict=True):
        table.add_row(f"{alpha:g}", f"{value:.6g}", f"{dp:.6g}")
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def rows_table(rows: list[dict[str, Any]], columns: list[str], title: str) -> Table:
    """Any list of result rows, one column per key (missing values shown as '-')."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(_fmt(row.get(c)) for c in columns))
    return table


def summary_table(summary: dict[str, Any], title: str) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, _fmt(value))
    return table
