"""PNG plots of results: metric vs a swept key (one line per hue), and delay CDFs.

Uses matplotlib's object API (no pyplot), so plotting never needs a display. Tables
name their columns by config key and summary metric (`workload.n_tasks`,
`n_allocated`); axes say what those are, with units (`AXIS_LABELS`).
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dpsched.errors import InputError


def _number(text: str) -> Any:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return {"True": True, "False": False}.get(text, text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def read_table(path: str | Path) -> list[dict[str, Any]]:
    file = Path(path)
    if not file.is_file():
        raise InputError("results", f"no such file: {file}")
    with file.open(newline="") as handle:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _check_columns(rows: Sequence[Mapping[str, Any]], *names: str) -> None:
    if not rows:
        raise InputError("results", "the table has no rows")
    for name in names:
        if name not in rows[0]:
            raise InputError(name, f"no such column; the table has {', '.join(rows[0])}")


AXIS_LABELS: dict[str, str] = {
    # config keys (what sweeps and figures vary)
    "workload.n_tasks": "submitted tasks",
    "blocks.total": "blocks",
    "blocks.initial": "blocks present at the start",
    "scheduler.period": "batch period T (time units)",
    "scheduler.unlocking.n": "N (a block unlocks in N steps)",
    "scheduler.unlocking.lifetime": "data lifetime (time units)",
    "scheduler.timeout": "claim timeout (time units)",
    "workload.params.sigma_blocks": "std. dev. of blocks per task",
    "workload.params.sigma_alpha": "std. dev. of best alpha (orders)",
    "policy": "policy",
    "scheduler.policy": "policy",
    "accounting": "accounting",
    "semantics.kind": "DP semantics",
    # run summary metrics and claims.csv columns
    "n_submitted": "submitted tasks",
    "n_allocated": "allocated tasks",
    "total_weight": "total weight of allocated tasks",
    "scheduler_time_s": "scheduler time (s)",
    "wall_time_s": "wall time (s)",
    "mean_delay": "mean scheduling delay (time units)",
    "median_delay": "median scheduling delay (time units)",
    "p90_delay": "90th percentile scheduling delay (time units)",
    "max_delay": "longest scheduling delay (time units)",
    "delay": "scheduling delay (time units)",
    "n_rejected": "rejected tasks",
    "n_expired": "expired tasks",
    "n_pending_at_end": "tasks still pending at the end",
    "fair_share_of_allocated": "fair-share tasks among the allocated (fraction)",
}
"""Human axis labels, with units, for the columns plots are usually drawn from."""


def axis_label(column: str) -> str:
    """What an axis or legend drawn from `column` should say (the column itself when
    it has no label: any table column can be plotted)."""
    return AXIS_LABELS.get(column, column)


SUMMARY_START = "policy"
"""First column of a run summary: in a sweep table, the swept keys come before it."""


def swept_column(rows: Sequence[Mapping[str, Any]], hue: str) -> str:
    """The x axis a sweep table implies: its first swept key (a column before the
    summary's) that takes more than one value and is not the hue, numeric ones first."""
    if not rows:
        raise InputError("results", "the table has no rows")
    header = list(rows[0])
    keys = header[: header.index(SUMMARY_START)] if SUMMARY_START in header else header
    varying = [
        k
        for k in keys
        if k != hue
        and not (hue == "policy" and k == "scheduler.policy")
        and len({str(r.get(k)) for r in rows}) > 1
    ]
    numeric = [k for k in varying if all(isinstance(r.get(k), int | float) for r in rows)]
    if numeric or varying:
        return (numeric or varying)[0]
    raise InputError("--x", f"no swept column besides {hue!r}; choose one of: {', '.join(header)}")


def line_plot(
    rows: Sequence[Mapping[str, Any]],
    *,
    x: str,
    y: str,
    hue: str,
    out: str | Path,
    title: str | None = None,
    log_x: bool = False,
) -> Path:
    """`line_figure`, written to `out` as PNG."""
    return save(line_figure(rows, x=x, y=y, hue=hue, title=title, log_x=log_x), out)


def line_figure(
    rows: Sequence[Mapping[str, Any]],
    *,
    x: str,
    y: str,
    hue: str,
    title: str | None = None,
    log_x: bool = False,
    xlabel: str | None = None,
    legend: str | None = None,
) -> Figure:
    """Mean of `y` per (hue, x) with a min-max band over repeats (e.g. seeds). Axes and
    legend are labelled by `axis_label` unless `xlabel` / `legend` say otherwise."""
    _check_columns(rows, x, y, hue)
    groups: dict[Any, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        value = row.get(y)
        if row.get("error") or value is None:
            continue
        groups[row[hue]][row[x]].append(float(value))
    if not groups:
        raise InputError(y, "no successful rows with this metric")
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.add_subplot()
    for label in sorted(groups, key=str):
        points = sorted(groups[label].items(), key=lambda item: _sort_key(item[0]))
        xs = [p[0] for p in points]
        means = np.array([np.mean(v) for _, v in points])
        axes.plot(xs, means, marker="o", label=str(label))
        lows = np.array([min(v) for _, v in points])
        highs = np.array([max(v) for _, v in points])
        if (highs > lows).any():
            axes.fill_between(xs, lows, highs, alpha=0.2)
    if log_x:
        axes.set_xscale("log")
    xlabel = xlabel or axis_label(x)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(axis_label(y))
    # Wrapped: a figure's title names its setting and can be wider than the plot.
    axes.set_title(textwrap.fill(title or f"{axis_label(y)} vs {xlabel}", 80), fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(title=legend or axis_label(hue))
    return figure


def cdf_plot(
    series: Mapping[str, Sequence[float]], *, out: str | Path, xlabel: str, title: str
) -> Path:
    """One step curve per series; `xlabel` is a label, or a column `axis_label` knows."""
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.add_subplot()
    for label, values in series.items():
        data = np.sort(np.asarray([v for v in values if v is not None and math.isfinite(v)]))
        if data.size == 0:
            continue
        axes.step(data, np.arange(1, data.size + 1) / data.size, where="post", label=label)
    axes.set_xlabel(axis_label(xlabel))
    axes.set_ylabel("fraction of allocated claims")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    return save(figure, out)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def save(figure: Figure, out: str | Path) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
