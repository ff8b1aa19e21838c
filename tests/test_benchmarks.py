"""Every benchmark's smoke mode runs and prints its table, so that none rots unnoticed.

Each script runs as its users run it (`python benchmarks/NAME.py --smoke`, a fresh
process with this interpreter, from the repository root); smoke modes check no timing
target, so these tests assert on what the tables say, never on how fast. The scripts
spend much of their time starting processes and servers and waiting for them, so they
all start together, three at a time, and each test waits for its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = ("service", "cli", "k8s_operator", "simulate", "optimal", "anchor", "run")
"""Longest first, so that the three at a time finish close together."""


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[str]]]:
    """The scripts the selected tests read (`test_NAME_smoke...` reads NAME), started."""
    tests = [item.name for item in request.session.items if item.module is request.module]
    wanted = [n for n in BENCHMARKS if any(t.startswith(f"test_{n}_smoke") for t in tests)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        yield {name: pool.submit(_run, name) for name in wanted}


def smoke(runs: dict[str, Future[str]], name: str) -> str:
    """The script's standard output; it must have exited 0."""
    return runs[name].result()


def _run(name: str) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), "--smoke"],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def table(text: str) -> tuple[list[str], list[list[str]]]:
    """The header and body rows of the one table rich printed."""
    header = [line for line in text.splitlines() if line.startswith("┃")]
    body = [line for line in text.splitlines() if line.startswith("│")]
    assert len(header) == 1, text
    return _cells(header[0], "┃"), [_cells(line, "│") for line in body]


def _cells(line: str, bar: str) -> list[str]:
    return [cell.strip() for cell in line.strip(bar).split(bar)]


def test_run_smoke_schedules_every_case(runs: dict[str, Future[str]]) -> None:
    out = smoke(runs, "run")
    assert "dpsched scheduling benchmarks (smoke" in out
    header, rows = table(out)
    assert header == [
        "workload",
        "n",
        "blocks",
        "policy",
        "runtime (s)",
        "target (s)",
        "allocated",
        "status",
        "peak RSS (MB)",
    ]
    assert [(r[0], r[3]) for r in rows] == [
        ("mixed", "fcfs"),
        ("mixed", "dpf"),
        ("mixed", "area"),
        ("mixed", "dpack"),
        ("mixed", "dpack recompute_every=1"),
        ("mixed", "optimal"),
        ("recent-heavy-tail", "dpf"),
        ("recent-heavy-tail", "dpack"),
    ]
    assert all(int(r[6]) > 0 for r in rows)
    assert rows[5][7] == "optimal"  # 50 claims: proven within its time limit


def test_simulate_smoke_runs_both_cases(runs: dict[str, Future[str]]) -> None:
    header, rows = table(smoke(runs, "simulate"))
    assert header == [
        "case",
        "wall (s)",
        "target",
        "scheduler (s)",
        "steps",
        "allocated",
        "peak MB",
        "ok",
    ]
    assert [r[0].split()[0] for r in rows] == ["dpack", "fcfs"]
    assert all(int(r[4]) > 1 and 0 < int(r[5]) <= 1000 for r in rows)


def test_cli_smoke_runs_every_command(runs: dict[str, Future[str]]) -> None:
    header, rows = table(smoke(runs, "cli"))
    assert header == ["case", "wall (s)", "target", "peak RSS (MB)", "ok"]
    assert [r[0] for r in rows] == [
        "dpsched --help",
        "dpsched --version",
        "schedule fig1-basic.yaml (4 tasks)",
        "schedule fig3-rdp.yaml (6 tasks, rdp)",
        "schedule 1,000 tasks, JSON (0 MB)",
        "same, --json report",
        "schedule 1,000 tasks, YAML (0 MB)",
    ]


def test_optimal_smoke_never_grants_less_than_dpack(runs: dict[str, Future[str]]) -> None:
    header, rows = table(smoke(runs, "optimal"))
    assert header == ["case", "dpack", "optimal", "status", "gap", "bound", "optimal (s)"]
    assert [r[0] for r in rows] == [
        "mixed n=200 x 10",
        "alibaba-synthetic 2,000 x 90",
        "recent-heavy-tail 2,000 x 90",
        "artifact-csv 1,000 x 90",  # from configs/data/, in the repository
    ]
    for row in rows:
        assert int(row[2]) >= int(row[1]) > 0, row  # optimal never grants less than dpack


def test_anchor_smoke_runs_dpsched_alone(runs: dict[str, Future[str]]) -> None:
    out = smoke(runs, "anchor")
    lines = out.splitlines()
    start = lines.index("case                   policy allocated scheduler_s")
    assert lines[start - 1].startswith("dpsched alone (")
    rows = [line.split() for line in lines[start + 1 : start + 7]]
    assert [(r[0], r[1]) for r in rows] == [
        ("mixed-200", "dpack"),
        ("mixed-200", "dpf"),
        ("mixed-200", "fcfs"),
        ("alibaba-dp-300/110", "dpack"),
        ("alibaba-dp-300/110", "dpf"),
        ("alibaba-dp-300/110", "fcfs"),
    ]
    assert all(int(r[2]) > 0 for r in rows)
    assert lines[start + 7].startswith("load 5,000 claims x 90 blocks")
    # The artifact's own code is never run in smoke mode, set up or not.
    assert "no DPack artifact set up" in out or "side by side skipped in smoke mode" in out, out


def test_service_smoke_counts_only_2xx_as_acknowledged(
    runs: dict[str, Future[str]],
) -> None:
    out = smoke(runs, "service")
    header, rows = table(out)
    assert header == ["case", "measured", "target", "ok"]
    cases = [r[0] for r in rows]
    assert cases[0].startswith("sqlite: acknowledged (2xx) ops/s (16 clients, ")
    assert cases[1:5] == [
        "sqlite: p99 latency (acknowledged)",
        "sqlite: other answers (count x status)",
        "sqlite: claims archived during the run (retention 1 s)",
        "sqlite: raw durable commits/s (one-row transactions)",
    ]
    assert cases[5].startswith("round, 2,000 pending claims on 100 blocks (dpack, ")
    assert cases[6].startswith("cold restart, ") and cases[6].endswith("(every claim kept)")
    assert cases[7].endswith("(finished claims forgotten)")
    assert cases[8] == "server peak RSS with 2,000 claims"
    assert float(rows[0][1].replace(",", "")) > 0
    # Other answers are listed by status, never folded into the acknowledged count.
    others = rows[2][1]
    assert others == "none" or all(
        part.split(" x ")[1][0] in "45" for part in others.split(", ")
    ), others


def test_k8s_operator_smoke_allocates_every_claim(runs: dict[str, Future[str]]) -> None:
    header, rows = table(smoke(runs, "k8s_operator"))
    assert header == [
        "policy",
        "load",
        "claims",
        "allocated",
        "mean ms",
        "p50 ms",
        "p99 ms",
        "claims/s",
    ]
    assert [r[:4] for r in rows] == [["dpack", "20/s", "10", "10"]]
