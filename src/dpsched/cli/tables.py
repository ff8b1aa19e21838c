"""Rich tables for the terminal."""

from __future__ import annotations

from typing import Any

from rich.table import Table

SHOWN_ROWS = 20
"""Claims listed in a terminal table; `--json` has them all."""


def number(value: float) -> str:
    """Fixed decimals for everyday budgets, scientific for the extreme ones (no 300-digit
    numbers)."""
    if abs(value) < 1e6:
        return f"{value:.4f}"
    return f"{value:.4g}"


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
            status_cell(r),
            f"{ratio:.3f}",
        )
    return table


def status_cell(report: dict[str, Any]) -> str:
    """The status with `optimal`'s certified gap, and whether a time-limited solver
    found nothing better than its heuristic start (then that start is the answer)."""
    if report["mip_gap"] is None:
        return str(report["status"])
    notes = [f"gap {report['mip_gap']:.2%}"]
    start = report["details"].get("start_weight")
    if report["status"] == "time_limit" and start == report["total_weight"]:
        notes.append("the heuristic start")
    return f"{report['status']} ({', '.join(notes)})"


def blocks_table(report: dict[str, Any]) -> Table:
    """Spend and room per block, at the block's best order (the one that can still admit
    demands); the raw per-order vectors are in `--json` only."""
    rdp = report["accounting"] == "rdp"
    table = Table(title="blocks")
    table.add_column("block")
    table.add_column("spent epsilon", justify="right")
    if rdp:
        table.add_column("best order", justify="right")
    table.add_column("remaining", justify="right")
    table.add_column("left", justify="right")
    for block_id, info in report["blocks"].items():
        row = [block_id, number(info["spent_epsilon"])]
        if rdp:
            order = info["best_order"]
            row.append("-" if order is None else f"alpha={order:g}")
        row += [number(info["remaining_at_best"]), f"{info['remaining_fraction']:.0%}"]
        table.add_row(*row)
    return table


def claims_table(claims: list[dict[str, Any]], title: str, total: int | None = None) -> Table:
    """Claims with their reason (rejected, or not allocated), the first SHOWN_ROWS of
    `total` (default: all of `claims`)."""
    total = len(claims) if total is None else total
    table = Table(title=f"{title} ({total})", title_justify="left")
    table.add_column("claim")
    table.add_column("reason", overflow="fold")
    for claim in claims[:SHOWN_ROWS]:
        table.add_row(claim["id"], claim["reason"])
    if total > SHOWN_ROWS:
        table.add_row("...", f"and {total - SHOWN_ROWS} more (all of them in --json)")
    return table


def id_list(ids: list[str]) -> str:
    """The first SHOWN_ROWS ids, comma-separated."""
    if not ids:
        return "(none)"
    shown = ", ".join(ids[:SHOWN_ROWS])
    return shown if len(ids) <= SHOWN_ROWS else f"{shown}, ... and {len(ids) - SHOWN_ROWS} more"


def curve_table(labels: list[str], curve: list[float], classic: list[float]) -> Table:
    table = Table(title="RDP curve")
    table.add_column("alpha", justify="right")
    table.add_column("RDP epsilon", justify="right")
    table.add_column("DP epsilon via alpha (classic)", justify="right")
    for alpha, value, dp in zip(labels, curve, classic, strict=True):
        table.add_row(alpha, f"{value:.6g}", f"{dp:.6g}")
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
