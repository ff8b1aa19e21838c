"""Alibaba-DP (DPack §6.3): the published task CSV, and a seeded synthetic stand-in.

The CSV format is Alibaba-DP's own (github.com/columbia/alibaba-dp-workload), one
task per row: `epsilon, delta, n_blocks, profit, block_selection_policy,
task_name, alphas, rdp_epsilons, relative_submit_time, normalized_rdp_epsilons`,
list columns as JSON arrays, `relative_submit_time` the gap since the previous
task. Extra columns (the generator also writes `submit_time`, `workload`) are
ignored. Infinite RDP values are written as 1e6, as Alibaba-DP does.

The raw Alibaba GPU trace cannot be downloaded here, so `alibaba_synthetic` is a
SYNTHETIC generator with the same mapping shape, not the trace: CPU tasks get
Laplace / Gaussian / subsampled-Laplace curves, GPU tasks subsampled-Gaussian
(DP-SGD) / DP-FTRL curves; each curve is rescaled so its smallest normalised
demand follows a heavy-tailed (Pareto) law; block counts are heavy-tailed too;
tasks outside 1-100 blocks or a smallest normalised demand outside [0.001, 1] are
dropped and redrawn, as Alibaba-DP filters them.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dpsched.budget import (
    DEFAULT_ALPHAS,
    DpFtrl,
    Gaussian,
    Laplace,
    MechanismSpec,
    SubsampledGaussian,
    SubsampledLaplace,
    rdp_curve,
)
from dpsched.errors import InputError, from_validation_error
from dpsched.sim.workloads.base import Task, TaskDemand
from dpsched.sim.workloads.sampling import normalized

COLUMNS = (
    "epsilon",
    "delta",
    "n_blocks",
    "profit",
    "block_selection_policy",
    "task_name",
    "alphas",
    "rdp_epsilons",
    "relative_submit_time",
    "normalized_rdp_epsilons",
)
SELECTION_POLICIES = {"LatestBlocksFirst": "most_recent", "RandomBlocks": "random"}
INFINITE_RDP = 1e6
MAX_BLOCKS = 100
MIN_NORMALIZED, MAX_NORMALIZED = 1e-3, 1.0


def _json_list(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ValueError("must be a JSON array of numbers") from None
    return value


class AlibabaRow(BaseModel):
    """One CSV row, validated (a bad cell is reported with its row and column)."""

    model_config = ConfigDict(extra="ignore")

    epsilon: float = Field(ge=0)
    delta: float = Field(gt=0, lt=1)
    n_blocks: int = Field(ge=1)
    profit: float = Field(gt=0)
    block_selection_policy: Literal["LatestBlocksFirst", "RandomBlocks"]
    task_name: str
    alphas: list[float] = Field(min_length=1)
    rdp_epsilons: list[float] = Field(min_length=1)
    relative_submit_time: float = Field(ge=0)
    normalized_rdp_epsilons: list[float] = Field(default_factory=list)

    _lists = field_validator("alphas", "rdp_epsilons", "normalized_rdp_epsilons", mode="before")(
        _json_list
    )


def read_alibaba_csv(path: str | Path, n_tasks: int | None = None) -> list[Task]:
    """The first `n_tasks` rows (default: all) of an Alibaba-DP task CSV."""
    file = Path(path)
    if not file.is_file():
        raise InputError("workload.path", f"no such file: {file}")
    tasks: list[Task] = []
    demands: dict[tuple[Any, ...], TaskDemand] = {}
    with file.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError("workload.path", f"{file} lacks columns {missing}")
        for number, raw in enumerate(reader, start=2):
            if n_tasks is not None and len(tasks) >= n_tasks:
                break
            try:
                row = AlibabaRow.model_validate(raw)
            except ValidationError as exc:
                raise from_validation_error(f"{file.name} line {number}", exc) from None
            if len(row.rdp_epsilons) != len(row.alphas):
                raise InputError(
                    f"{file.name} line {number}.rdp_epsilons",
                    f"has {len(row.rdp_epsilons)} values for {len(row.alphas)} alphas",
                )
            key = (row.epsilon, row.delta, tuple(row.alphas), tuple(row.rdp_epsilons))
            demand = demands.get(key)
            if demand is None:
                demand = TaskDemand(
                    delta=row.delta,
                    alphas=tuple(row.alphas),
                    rdp=tuple(row.rdp_epsilons),
                    epsilon=row.epsilon,
                )
                demands[key] = demand
            tasks.append(
                Task(
                    name=row.task_name,
                    demand=demand,
                    n_blocks=row.n_blocks,
                    selection="most_recent"
                    if row.block_selection_policy == "LatestBlocksFirst"
                    else "random",
                    weight=row.profit,
                    gap=row.relative_submit_time,
                )
            )
    if not tasks:
        raise InputError("workload.path", f"{file} has no task rows")
    return tasks


def write_alibaba_csv(
    path: str | Path,
    tasks: Sequence[Task],
    arrivals: np.ndarray,
    alphas: tuple[float, ...] = DEFAULT_ALPHAS,
) -> None:
    """Write tasks in the Alibaba-DP format; gaps come from their arrival times."""
    gaps = np.diff(np.concatenate([[0.0], np.asarray(arrivals, dtype=float)]))
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for task, gap in zip(tasks, gaps, strict=True):
            curve = task.demand.curve(alphas)
            norm = normalized(curve, alphas)
            writer.writerow(
                [
                    repr(task.demand.basic_epsilon),
                    repr(task.demand.delta),
                    task.n_blocks,
                    repr(task.weight),
                    "LatestBlocksFirst" if task.selection == "most_recent" else "RandomBlocks",
                    task.name,
                    json.dumps(list(alphas)),
                    json.dumps(_finite(curve, INFINITE_RDP)),
                    repr(float(gap)),
                    json.dumps(_finite(norm, 10.0)),
                ]
            )


def _finite(values: np.ndarray, cap: float) -> list[float]:
    return [v if math.isfinite(v) else cap for v in values.tolist()]


class AlibabaSyntheticParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gpu_fraction: float = Field(0.5, ge=0, le=1, description="share of GPU (DP-SGD/FTRL) tasks")
    eps_tail: float = Field(0.6, gt=0, description="Pareto shape of the normalised demand")
    eps_scale: float = Field(0.01, gt=0, description="Pareto scale of the normalised demand")
    blocks_tail: float = Field(0.7, gt=0, description="Pareto shape of the block count")
    gpu_blocks_factor: float = Field(
        3.0, ge=1, description="GPU tasks read this many times more blocks"
    )


CPU_FAMILIES = ("laplace", "gaussian", "subsampled_laplace")
GPU_FAMILIES = ("subsampled_gaussian", "dp_ftrl")


def _family_pool(family: str) -> list[MechanismSpec]:
    if family == "laplace":
        return [Laplace(mechanism="laplace", epsilon=e) for e in (0.05, 0.2, 0.5, 1.0, 3.0)]
    if family == "gaussian":
        return [Gaussian(mechanism="gaussian", sigma=s, count=c) for s in (1.0,) for c in (1, 10)]
    if family == "subsampled_laplace":
        return [
            SubsampledLaplace(mechanism="subsampled_laplace", scale=b, sampling_rate=q, steps=100)
            for b in (0.5, 1.0, 2.0)
            for q in (0.01, 0.1)
        ]
    if family == "subsampled_gaussian":
        return [
            SubsampledGaussian(
                mechanism="subsampled_gaussian", sigma=s, sampling_rate=q, steps=1000
            )
            for s in (0.7, 1.0, 2.0)
            for q in (0.001, 0.01)
        ]
    return [DpFtrl(mechanism="dp_ftrl", sigma=s, steps=1000) for s in (1.0, 5.0)]


@lru_cache(maxsize=1)
def _shapes() -> dict[str, list[np.ndarray]]:
    """Per family, curves over DEFAULT_ALPHAS scaled to a smallest normalised demand of 1."""
    shapes: dict[str, list[np.ndarray]] = {}
    for family in CPU_FAMILIES + GPU_FAMILIES:
        shapes[family] = []
        for spec in _family_pool(family):
            curve = rdp_curve(spec, DEFAULT_ALPHAS)
            smallest = float(np.min(normalized(curve)))
            if math.isfinite(smallest) and smallest > 0:
                shapes[family].append(curve / smallest)
    return shapes


def alibaba_synthetic(
    n_tasks: int, seed: int, params: AlibabaSyntheticParams, n_blocks: int
) -> list[Task]:
    rng = np.random.default_rng(seed)
    shapes = _shapes()
    tasks: list[Task] = []
    while len(tasks) < n_tasks:
        batch = 2 * (n_tasks - len(tasks)) + 16
        gpu = rng.random(batch) < params.gpu_fraction
        eps_min = params.eps_scale * (1.0 + rng.pareto(params.eps_tail, batch))
        blocks = np.floor(1.0 + rng.pareto(params.blocks_tail, batch)).astype(np.int64)
        blocks = np.where(gpu, np.ceil(blocks * params.gpu_blocks_factor), blocks).astype(np.int64)
        family_pick = rng.random(batch)
        shape_pick = rng.random(batch)
        keep = (eps_min >= MIN_NORMALIZED) & (eps_min <= MAX_NORMALIZED) & (blocks <= MAX_BLOCKS)
        for i in np.flatnonzero(keep):
            if len(tasks) >= n_tasks:
                break
            families = GPU_FAMILIES if gpu[i] else CPU_FAMILIES
            family = families[int(family_pick[i] * len(families))]
            pool = shapes[family]
            shape = pool[int(shape_pick[i] * len(pool))]
            curve = shape * float(eps_min[i])
            tasks.append(
                Task(
                    name=f"{'gpu' if gpu[i] else 'cpu'}-{family}",
                    demand=TaskDemand(
                        delta=1e-7 if not gpu[i] else 1e-9,
                        alphas=DEFAULT_ALPHAS,
                        rdp=tuple(curve.tolist()),
                    ),
                    n_blocks=int(blocks[i]),
                )
            )
    return tasks
