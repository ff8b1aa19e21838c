"""PNG plots of results: metric vs a swept key (one line per hue), and delay CDFs.

Uses matplotlib's object API (no pyplot), so plotting never needs a display.
"""

from __future__ import annotations

import csv
import math
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
    xlabel: str | None = None,
) -> Path:
    """Mean of `y` per (hue, x) with a min-max band over repeats (e.g. seeds)."""
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
    axes.set_xlabel(xlabel or x)
    axes.set_ylabel(y)
    axes.set_title(title or f"{y} vs {x}", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(title=hue)
    return _save(figure, out)


def cdf_plot(
    series: Mapping[str, Sequence[float]], *, out: str | Path, xlabel: str, title: str
) -> Path:
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.add_subplot()
    for label, values in series.items():
        data = np.sort(np.asarray([v for v in values if v is not None and math.isfinite(v)]))
        if data.size == 0:
            continue
        axes.step(data, np.arange(1, data.size + 1) / data.size, where="post", label=label)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("fraction of allocated claims")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    return _save(figure, out)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def _save(figure: Figure, out: str | Path) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
