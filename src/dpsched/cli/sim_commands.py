"""Simulator commands: simulate, sweep, plot, reproduce, workload export."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from dpsched.cli.common import (
    Command,
    JsonOut,
    check_output_dir,
    check_output_file,
    command_group,
    console,
    errors,
    friendly_errors,
    json_to_stdout,
    write_json,
)
from dpsched.cli.names import FIGURE_NAMES
from dpsched.cli.options import parse_key_values
from dpsched.errors import InputError

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", metavar="KEY=VALUE", help="override a config key: dotted.key=value"
    ),
]
Workers = Annotated[int, typer.Option(metavar="N", help="parallel processes")]
CPUS = os.cpu_count() or 1
SWEEP_COLUMNS = ("n_allocated", "total_weight", "mean_delay", "scheduler_time_s", "error")


def _progress() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    )


def _reproduce_kubernetes(quick: bool, out: Path, json_out: Path | None) -> None:
    """DPack Fig. 8 / Tab. 2 through the operator path (`dpsched.lab.fig8`: without the
    lab extra, its import fails with one line naming it)."""
    from dpsched.cli.tables import rows_table
    from dpsched.lab.fig8 import PAPER_ALLOCATED, report

    show = not json_to_stdout(json_out)
    started = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("dpack-8", total=None)
        result = report(quick, out, lambda text: bar.update(task, description=text))
    rows = [
        {
            "policy": run.policy,
            "tasks": run.submitted,
            "allocated (kubernetes)": run.allocated,
            "allocated (simulator)": run.simulated,
            "paper": PAPER_ALLOCATED[run.policy],
            "median delay (units)": statistics.median(run.delays) if run.delays else None,
        }
        for run in result.online
    ]
    runtime = [
        {"policy": o.policy, "tasks": o.n, "round (s)": o.round_s, "to statuses (s)": o.wall_s}
        for o in result.offline
    ]
    if show:
        console.print(rows_table(rows, list(rows[0]), title="DPack Tab. 2 (online, T = 5)"))
        console.print(
            rows_table(runtime, list(runtime[0]), title="DPack Fig. 8a (offline, one round)")
        )
        console.print("  wrote " + ", ".join(str(p) for p in result.files))
    errors.print(f"dpack-8 in {time.perf_counter() - started:.0f} s", markup=False)
    if json_out is not None:
        write_json(json_out, {"online": rows, "offline": runtime})


commands = typer.Typer()
"""This module's top-level commands, added to the root app by `register`."""

workload_app = command_group("Inspect and export workloads.")


@commands.command(cls=Command)
@friendly_errors
def simulate(
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="run config (YAML)")],
    set_: SetOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="write summary.json, config.json, claims.csv, blocks.csv and timeline.csv to DIR",
        ),
    ] = None,
    json_out: JsonOut = None,
) -> None:
    """Run one simulation and print its summary (--out DIR keeps all its tables)."""
    from dpsched.cli.tables import summary_table
    from dpsched.sim.config import load_config
    from dpsched.sim.simulator import Simulator

    check_output_dir(out, "--out")
    check_output_file(json_out, "--json")
    parsed = load_config(config, parse_key_values(set_, "--set"))
    with _progress() as bar:
        task = bar.add_task("claims arrived", total=parsed.workload.n_tasks or None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = Simulator(parsed, progress=advance).run()
    if not json_to_stdout(json_out):
        console.print(summary_table(result.summary, title=f"{config.name}"))
    if out is not None:
        written = result.write(out)
        errors.print(
            f"wrote {len(written)} files to {out}: " + ", ".join(p.name for p in written),
            markup=False,
        )
    else:
        errors.print(
            "nothing written; --out DIR writes the summary and the per-claim, per-block "
            "and timeline tables",
            markup=False,
        )
    if json_out is not None:
        write_json(json_out, result.summary)


@commands.command(cls=Command)
@friendly_errors
def sweep(
    sweep_file: Annotated[
        Path, typer.Argument(metavar="SWEEP", help="sweep file: base config and grid")
    ],
    workers: Workers = CPUS,
    engine: Annotated[
        str, typer.Option(metavar="ENGINE", help="process (default) or ray")
    ] = "process",
    out: Annotated[Path, typer.Option(metavar="FILE", help="results table (CSV)")] = Path(
        "sweep.csv"
    ),
    json_out: JsonOut = None,
) -> None:
    """Run every cell of a grid in parallel; one row per cell in one CSV table."""
    from dpsched.cli.tables import rows_table
    from dpsched.sim.results import write_csv
    from dpsched.sim.sweep import load_sweep, run_cells

    check_output_file(out, "--out")
    check_output_file(json_out, "--json")
    base, cells = load_sweep(sweep_file)
    with _progress() as bar:
        task = bar.add_task("cells", total=len(cells))
        rows = run_cells(
            base,
            cells,
            workers=workers,
            engine=engine,
            on_row=lambda _i, _r: bar.advance(task),
        )
    write_csv(out, rows)
    failed = [r for r in rows if r.get("error")]
    if not json_to_stdout(json_out):
        keys = list(cells[0]) if cells and cells[0] else []
        console.print(rows_table(rows, [*keys, *SWEEP_COLUMNS], title=str(sweep_file)))
        for row in failed:
            console.print(f"[red]failed cell[/red] {row}", markup=True)
    errors.print(f"wrote {out} ({len(rows)} cells, {len(failed)} failed)", markup=False)
    if json_out is not None:
        write_json(json_out, {"cells": rows, "failed": len(failed)})


@commands.command(cls=Command)
@friendly_errors
def plot(
    results: Annotated[
        list[Path],
        typer.Argument(metavar="RESULTS", help="a sweep CSV (line) or run directories (cdf)"),
    ],
    x: Annotated[
        str | None,
        typer.Option(metavar="COLUMN", help="line: x axis (default: the swept column)"),
    ] = None,
    y: Annotated[
        str, typer.Option(metavar="COLUMN", help="metric (cdf: a claims.csv column)")
    ] = "n_allocated",
    hue: Annotated[
        str, typer.Option(metavar="COLUMN", help="one line per value of this column")
    ] = "policy",
    kind: Annotated[str, typer.Option(metavar="KIND", help="line or cdf")] = "line",
    out: Annotated[Path, typer.Option(metavar="FILE", help="PNG file")] = Path("plot.png"),
    log_x: Annotated[bool, typer.Option(help="logarithmic x axis")] = False,
    json_out: JsonOut = None,
) -> None:
    """PNG plots: a metric against a swept key, or the CDF of claim delays across runs."""
    from dpsched.sim.plotting import cdf_plot, line_plot, read_table, swept_column

    check_output_file(out, "--out")
    check_output_file(json_out, "--json")
    if kind == "line":
        if len(results) != 1:
            raise InputError("RESULTS", "a line plot reads exactly one sweep table")
        rows = read_table(results[0])
        x_column = x or swept_column(rows, hue)
        y_label = f"{y} vs {x_column}"
        path = line_plot(rows, x=x_column, y=y, hue=hue, out=out, log_x=log_x)
    elif kind == "cdf":
        series: dict[str, list[float]] = {}
        for run in results:
            summary = _run_summary(run)
            claims = read_table(run / "claims.csv")
            label = str(summary.get(hue, run.name))
            series[label] = [r[y] for r in claims if r.get(y) is not None]
        path = cdf_plot(series, out=out, xlabel=y, title=f"CDF of {y}")
        y_label = f"CDF of {y}"
    else:
        raise InputError("--kind", f"must be line or cdf, got {kind!r}")
    if not json_to_stdout(json_out):
        console.print(f"wrote {path} ({y_label})", highlight=False)
    if json_out is not None:
        write_json(json_out, {"plot": str(path), "kind": kind, "y": y, "hue": hue})


@commands.command(name="reproduce", cls=Command)
@friendly_errors
def reproduce_command(
    figure: Annotated[
        str,
        typer.Argument(
            metavar="FIGURE",
            help=f"all, or one of {', '.join(FIGURE_NAMES)}; or dpack-8 (Kubernetes "
            "path, not in all: about 30 minutes, 2 with --quick)",
        ),
    ],
    quick: Annotated[bool, typer.Option(help="smaller grids (CI budget)")] = False,
    out: Annotated[Path, typer.Option(metavar="DIR", help="output directory")] = Path("figures"),
    workers: Workers = CPUS,
    json_out: JsonOut = None,
) -> None:
    """Regenerate the papers' headline figures (PNG + CSV) and check their claims."""
    from dpsched.cli.tables import rows_table
    from dpsched.sim.reproduce import reproduce

    if figure == "dpack-8":
        check_output_dir(out, "--out")
        check_output_file(json_out, "--json")
        _reproduce_kubernetes(quick, out, json_out)
        return

    names = list(FIGURE_NAMES) if figure == "all" else [figure]
    for name in names:
        if name not in FIGURE_NAMES:
            raise InputError(
                "FIGURE", f"unknown figure {name!r}; all, or {', '.join(FIGURE_NAMES)}"
            )
    check_output_dir(out, "--out")
    check_output_file(json_out, "--json")
    show = not json_to_stdout(json_out)
    failures = 0
    summary: list[dict[str, Any]] = []
    started = time.perf_counter()
    for name in names:
        with _progress() as bar:
            task = bar.add_task(name, total=None)

            def advance(_index: int, _row: dict[str, Any], task: Any = task) -> None:
                bar.advance(task)

            result = reproduce(name, quick=quick, out=out, workers=workers, on_row=advance)
        metric = result.spec.metrics[0]
        means = result.means[metric]
        xs = sorted({x for per in means.values() for x in per})
        table_rows = [{"x": x, **{s: means[s].get(x) for s in means}} for x in xs]
        errors_ = [r for r in result.rows if r.get("error")]
        failures += sum(not ok for _, ok in result.checks)
        summary.append(
            {
                "figure": name,
                "metric": metric,
                "x": result.spec.x,
                "means": table_rows,
                "checks": [{"claim": c, "holds": ok} for c, ok in result.checks],
                "failed_cells": len(errors_),
                "files": [str(p) for p in result.files],
            }
        )
        if not show:
            continue
        console.print(
            rows_table(
                table_rows,
                ["x", *means],
                title=f"{result.spec.source}: {metric} vs {result.spec.x}",
            )
        )
        for claim, ok in result.checks:
            console.print(f"  {'PASS' if ok else 'FAIL'}  {claim}")
        for row in errors_:
            console.print(f"  [red]failed cell[/red] {row['series']} x={row['x']}: {row['error']}")
        console.print("  wrote " + ", ".join(str(p) for p in result.files))
    errors.print(
        f"{len(names)} figure(s) in {time.perf_counter() - started:.0f} s; "
        f"{failures} claim(s) did not hold",
        markup=False,
    )
    if json_out is not None:
        write_json(json_out, {"figures": summary, "failed_checks": failures})


@workload_app.command("export", cls=Command)
@friendly_errors
def export(
    config: Annotated[
        Path, typer.Argument(metavar="CONFIG", help="run config whose workload to export")
    ],
    out: Annotated[Path, typer.Option(metavar="FILE", help="CSV file (Alibaba-DP format)")] = Path(
        "tasks.csv"
    ),
    set_: SetOption = None,
    json_out: JsonOut = None,
) -> None:
    """Write a config's workload as an Alibaba-DP task CSV, to share or replay it."""
    import numpy as np

    from dpsched.sim.arrivals import claim_arrivals
    from dpsched.sim.config import load_config
    from dpsched.sim.simulator import build_tasks, seeds
    from dpsched.sim.workloads.alibaba import write_alibaba_csv

    check_output_file(out, "--out")
    check_output_file(json_out, "--json")
    parsed = load_config(config, parse_key_values(set_, "--set"))
    tasks = build_tasks(parsed)
    arrivals = claim_arrivals(parsed, tasks, np.random.default_rng(seeds(parsed.seed)[1]))
    accounting = parsed.make_accounting()
    write_alibaba_csv(out, tasks, arrivals, accounting.alphas)
    if not json_to_stdout(json_out):
        console.print(f"wrote {out} ({len(tasks)} tasks)", highlight=False)
    if json_out is not None:
        write_json(json_out, {"file": str(out), "tasks": len(tasks)})


def register(app: typer.Typer) -> None:
    """Add this module's commands and command groups to the root app."""
    app.registered_commands += commands.registered_commands
    app.add_typer(workload_app, name="workload")


def _run_summary(run: Path) -> dict[str, Any]:
    from dpsched.readers import read_mapping

    if not (run / "summary.json").is_file():
        raise InputError("RESULTS", f"{run} is not a run directory (no summary.json)")
    return read_mapping(run / "summary.json", "RESULTS")
