"""Simulator commands: simulate, sweep, plot, reproduce, workload export."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dpsched.cli.common import console, friendly_errors
from dpsched.cli.options import parse_key_values
from dpsched.cli.tables import rows_table, summary_table
from dpsched.errors import InputError
from dpsched.sim.arrivals import claim_arrivals
from dpsched.sim.config import load_config
from dpsched.sim.plotting import cdf_plot, line_plot, read_table
from dpsched.sim.reproduce import FIGURES, reproduce
from dpsched.sim.results import write_csv
from dpsched.sim.simulator import Simulator, build_tasks, seeds
from dpsched.sim.sweep import load_sweep, run_cells
from dpsched.sim.workloads.alibaba import write_alibaba_csv

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a config key: dotted.key=value (repeatable)"),
]
SWEEP_COLUMNS = ("n_allocated", "total_weight", "mean_delay", "scheduler_time_s", "error")


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )


def register(app: typer.Typer) -> None:
    workload_app = typer.Typer(help="Inspect and export workloads.", no_args_is_help=True)
    app.add_typer(workload_app, name="workload")

    @app.command()
    @friendly_errors
    def simulate(
        config: Annotated[Path, typer.Argument(help="run config (YAML)")],
        set_: SetOption = None,
        out: Annotated[Path | None, typer.Option(help="write results to this directory")] = None,
    ) -> None:
        """Run one simulation; print its summary and write summary.json and CSV tables."""
        parsed = load_config(config, parse_key_values(set_, "--set"))
        with _progress() as bar:
            task = bar.add_task("claims arrived", total=parsed.workload.n_tasks or None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = Simulator(parsed, progress=advance).run()
        console.print(summary_table(result.summary, title=f"{config.name}"))
        if out is not None:
            for path in result.write(out):
                console.print(f"wrote {path}")

    @app.command()
    @friendly_errors
    def sweep(
        sweep_file: Annotated[Path, typer.Argument(help="sweep file: base config and grid")],
        workers: Annotated[int, typer.Option(help="parallel processes")] = os.cpu_count() or 1,
        engine: Annotated[str, typer.Option(help="process (default) or ray")] = "process",
        out: Annotated[Path, typer.Option(help="results table (CSV)")] = Path("sweep.csv"),
    ) -> None:
        """Run every cell of a grid in parallel; one row per cell in one CSV table."""
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
        keys = list(cells[0]) if cells and cells[0] else []
        console.print(rows_table(rows, [*keys, *SWEEP_COLUMNS], title=str(sweep_file)))
        failed = [r for r in rows if r.get("error")]
        for row in failed:
            console.print(f"[red]failed cell[/red] {row}", markup=True)
        console.print(f"wrote {out} ({len(rows)} cells, {len(failed)} failed)")

    @app.command()
    @friendly_errors
    def plot(
        results: Annotated[
            list[Path], typer.Argument(help="a sweep CSV (line) or run directories (cdf)")
        ],
        x: Annotated[str, typer.Option(help="line: column on the x axis")] = "x",
        y: Annotated[str, typer.Option(help="metric column (cdf: a claims.csv column)")] = (
            "n_allocated"
        ),
        hue: Annotated[str, typer.Option(help="one line per value of this column")] = "policy",
        kind: Annotated[str, typer.Option(help="line or cdf")] = "line",
        out: Annotated[Path, typer.Option(help="PNG file")] = Path("plot.png"),
        log_x: Annotated[bool, typer.Option(help="logarithmic x axis")] = False,
    ) -> None:
        """PNG plots: a metric against a swept key, or the CDF of claim delays across runs."""
        if kind == "line":
            if len(results) != 1:
                raise InputError("RESULTS", "a line plot reads exactly one sweep table")
            rows = read_table(results[0])
            path = line_plot(rows, x=x, y=y, hue=hue, out=out, log_x=log_x)
        elif kind == "cdf":
            series: dict[str, list[float]] = {}
            for run in results:
                summary = read_table_summary(run)
                claims = read_table(run / "claims.csv")
                label = str(summary.get(hue, run.name))
                series[label] = [r[y] for r in claims if r.get(y) is not None]
            path = cdf_plot(series, out=out, xlabel=y, title=f"CDF of {y}")
        else:
            raise InputError("--kind", f"must be line or cdf, got {kind!r}")
        console.print(f"wrote {path}")

    @app.command(name="reproduce")
    @friendly_errors
    def reproduce_command(
        figure: Annotated[str, typer.Argument(help=f"all, or one of {', '.join(FIGURES)}")],
        quick: Annotated[bool, typer.Option(help="smaller grids (CI budget)")] = False,
        out: Annotated[Path, typer.Option(help="output directory")] = Path("figures"),
        workers: Annotated[int, typer.Option(help="parallel processes")] = os.cpu_count() or 1,
    ) -> None:
        """Regenerate the papers' headline figures (PNG + CSV) and check their claims."""
        names = list(FIGURES) if figure == "all" else [figure]
        for name in names:
            if name not in FIGURES:
                raise InputError("FIGURE", f"unknown figure {name!r}; all, or {', '.join(FIGURES)}")
        failures = 0
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
            console.print(
                rows_table(
                    table_rows,
                    ["x", *means],
                    title=f"{result.spec.source}: {metric} vs {result.spec.x}",
                )
            )
            for claim, ok in result.checks:
                failures += not ok
                console.print(f"  {'PASS' if ok else 'FAIL'}  {claim}")
            errors = [r for r in result.rows if r.get("error")]
            for row in errors:
                console.print(
                    f"  [red]failed cell[/red] {row['series']} x={row['x']}: {row['error']}"
                )
            console.print("  wrote " + ", ".join(str(p) for p in result.files))
        console.print(
            f"{len(names)} figure(s) in {time.perf_counter() - started:.0f} s; "
            f"{failures} claim(s) did not hold"
        )

    @workload_app.command("export")
    @friendly_errors
    def export(
        config: Annotated[Path, typer.Argument(help="run config whose workload to export")],
        out: Annotated[Path, typer.Option(help="CSV file (Alibaba-DP format)")] = Path("tasks.csv"),
        set_: SetOption = None,
    ) -> None:
        """Write a config's workload as an Alibaba-DP task CSV, to share or replay it."""
        parsed = load_config(config, parse_key_values(set_, "--set"))
        tasks = build_tasks(parsed)
        arrivals = claim_arrivals(parsed, tasks, np.random.default_rng(seeds(parsed.seed)[1]))
        accounting = parsed.make_accounting()
        write_alibaba_csv(out, tasks, arrivals, accounting.alphas)
        console.print(f"wrote {out} ({len(tasks)} tasks)")


def read_table_summary(run: Path) -> dict[str, Any]:
    path = run / "summary.json"
    if not path.is_file():
        raise InputError("RESULTS", f"{run} is not a run directory (no summary.json)")
    data: dict[str, Any] = json.loads(path.read_text())
    return data
