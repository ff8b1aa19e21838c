"""`dpsched reproduce dpack-8 --quick`: DPack's Kubernetes experiment end to end (the
Alibaba-DP workload as custom resources through the operator), in about a minute."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dpsched.errors import InputError
from dpsched.lab.fig8 import figures, redraw


def test_reproduce_dpack_8_quickly_through_the_operator(tmp_path: Path) -> None:
    command = ["reproduce", "dpack-8", "--quick", "--out", str(tmp_path), "--json", "-"]
    run = subprocess.run(
        [sys.executable, "-m", "dpsched", *command],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    online = {row["policy"]: row for row in report["online"]}
    assert set(online) == {"dpack", "dpf"}
    for row in online.values():
        assert row["tasks"] == 200
        granted, simulated = row["allocated (kubernetes)"], row["allocated (simulator)"]
        # One engine: the operator path grants what the simulator grants, up to when
        # rounds fall in wall time (DPF, which follows arrival order, moves most).
        assert granted > 0 and abs(granted - simulated) <= 0.2 * simulated
        assert row["median delay (units)"] >= 0
    assert {(r["policy"], r["tasks"]) for r in report["offline"]} == {
        (p, n) for p in ("dpack", "dpf") for n in (100, 200)
    }
    assert all(r["round (s)"] > 0 and r["to statuses (s)"] > 0 for r in report["offline"])
    for name in ("dpack-8a.png", "dpack-8b.png"):
        assert (tmp_path / name).stat().st_size > 1000
    with (tmp_path / "dpack-8.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    cdf = [r for r in rows if r["experiment"] == "delay_cdf" and r["series"] == "dpack"]
    assert len(cdf) == online["dpack"]["allocated (kubernetes)"]
    assert float(cdf[-1]["value"]) == 1.0


def test_fig_8_redraws_from_its_committed_table_with_human_labels(tmp_path: Path) -> None:
    table = Path(__file__).resolve().parents[1] / "docs" / "figures" / "dpack-8.csv"
    with table.open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    labels = {
        name: (axis.get_xlabel(), axis.get_ylabel(), axis.get_legend().get_title().get_text())
        for name, figure in figures(rows).items()
        for axis in figure.axes
    }
    assert labels == {
        "dpack-8a.png": ("submitted tasks", "time (s)", "policy"),
        "dpack-8b.png": ("scheduling delay (time units)", "fraction of granted tasks", "policy"),
    }
    assert [p.name for p in redraw(table, tmp_path)] == ["dpack-8a.png", "dpack-8b.png"]
    assert all(p.stat().st_size > 1000 for p in tmp_path.iterdir())
    bad = tmp_path / "other.csv"
    bad.write_text("policy,x\n")
    with pytest.raises(InputError, match="not a dpack-8 table"):
        redraw(bad, tmp_path)
