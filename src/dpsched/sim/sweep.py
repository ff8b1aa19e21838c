"""Grids of simulations: every combination of some config keys, run in parallel.

A sweep file names a base config and a grid of dotted keys:

    base: alibaba.yaml          # relative to the sweep file (or `config:` inline)
    grid:
      scheduler.policy: [fcfs, dpf, dpack]
      seed: [0, 1, 2]

Cells run in a process pool (or on Ray with `engine="ray"`, imported only then: the
cluster at `RAY_ADDRESS` if that is set, else a private local Ray of `workers` CPUs on
the loopback interface, shut down when the sweep ends). A failing cell becomes a row
with its error; the other cells still run.
"""

from __future__ import annotations

import itertools
import os
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from dpsched.errors import DpschedError, InputError
from dpsched.readers import read_mapping
from dpsched.sim.config import load_config, parse_config
from dpsched.sim.simulator import Simulator

Cell = dict[str, Any]
Row = dict[str, Any]


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[Cell]:
    """Every combination of the grid's values, in a stable order."""
    for key, values in grid.items():
        if not isinstance(values, list | tuple) or not values:
            raise InputError(f"grid.{key}", "must be a non-empty list of values")
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def load_sweep(path: str | Path) -> tuple[dict[str, Any], list[Cell]]:
    """(base config as a mapping, cells) from a sweep file."""
    file = Path(path)
    data = read_mapping(file, "sweep")
    unknown = set(data) - {"base", "config", "grid"}
    if unknown:
        raise InputError(f"sweep.{sorted(unknown)[0]}", "unknown key")
    if ("base" in data) == ("config" in data):
        raise InputError("sweep", "give exactly one of 'base' (a config file) or 'config'")
    if "base" in data:
        base_path = file.parent / str(data["base"])
        base = read_mapping(base_path, "sweep.base")
        load_config(base_path)  # validates, and resolves its workload path
        workload = base.get("workload")
        if isinstance(workload, dict) and isinstance(workload.get("path"), str):
            workload["path"] = str((base_path.parent / workload["path"]).resolve())
    else:
        base = data["config"]
        if not isinstance(base, dict):
            raise InputError("sweep.config", "must be a mapping")
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise InputError("sweep.grid", "must be a mapping of key: [values]")
    cells = expand_grid(grid)
    for cell in cells:
        parse_config(base, cell)  # every cell is validated before anything runs
    return base, cells


def run_cell(base: Mapping[str, Any], cell: Cell) -> Row:
    """One simulation; its summary with the cell's keys in front. Never raises."""
    try:
        result = Simulator(parse_config(base, cell)).run()
    except DpschedError as exc:
        return {**cell, "error": str(exc)}
    except Exception as exc:  # a crashed cell is reported, the sweep goes on
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return {**cell, "error": f"internal error: {last}"}
    return {**cell, **result.summary, "error": None}


def run_cells(
    base: Mapping[str, Any],
    cells: Sequence[Cell],
    *,
    workers: int = 1,
    engine: str = "process",
    on_row: Callable[[int, Row], None] | None = None,
) -> list[Row]:
    """Rows in cell order; `on_row(index, row)` as each finishes (for progress)."""
    rows: list[Row | None] = [None] * len(cells)
    for index, row in _execute(base, cells, workers, engine):
        rows[index] = row
        if on_row is not None:
            on_row(index, row)
    return [r for r in rows if r is not None]


def _execute(
    base: Mapping[str, Any], cells: Sequence[Cell], workers: int, engine: str
) -> Iterator[tuple[int, Row]]:
    if workers < 1:
        raise InputError("--workers", f"must be >= 1, got {workers}")
    if engine == "ray":
        yield from _execute_ray(base, cells, workers)
        return
    if engine != "process":
        raise InputError("--engine", f"must be 'process' or 'ray', got {engine!r}")
    if workers == 1 or len(cells) <= 1:
        for index, cell in enumerate(cells):
            yield index, run_cell(base, cell)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(cells))) as pool:
        futures = {pool.submit(run_cell, dict(base), cell): i for i, cell in enumerate(cells)}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _execute_ray(
    base: Mapping[str, Any], cells: Sequence[Cell], workers: int
) -> Iterator[tuple[int, Row]]:
    address = os.environ.get("RAY_ADDRESS") or None
    if address is None:
        # Read by ray at import (named for macOS and Windows, where it is the default): a
        # local Ray then binds its node to 127.0.0.1 rather than the host's address, so a
        # one-machine sweep opens no port to the network.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray  # noqa: PLC0415 - optional extra, imported only on request
    except ImportError:
        raise InputError(
            "--engine", "ray is not installed; install the extra: pip install 'dpsched[ray]'"
        ) from None
    started = not ray.is_initialized()  # else the caller's Ray, left to the caller
    if started and address is not None:
        try:
            ray.init(address=address)  # an existing cluster: "auto", "host:port", "ray://..."
        except (ConnectionError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise InputError("RAY_ADDRESS", f"cannot use the Ray at {address}: {reason}") from None
    elif started:
        ray.init(address="local", num_cpus=workers, include_dashboard=False)
    try:
        remote = ray.remote(run_cell)
        snapshot: Mapping[str, Any] = dict(base)  # shipped once, shared by the cells
        base_ref = ray.put(snapshot)
        pending = {remote.remote(base_ref, cell): i for i, cell in enumerate(cells)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)
    finally:
        if started:
            ray.shutdown()
