"""Alibaba-DP (DPack §6.3): the published task CSV, and a seeded synthetic stand-in.

The CSV format is Alibaba-DP's own (github.com/columbia/alibaba-dp-workload), one
task per row: `epsilon, delta, n_blocks, profit, block_selection_policy,
task_name, alphas, rdp_epsilons, relative_submit_time, normalized_rdp_epsilons`,
list columns as JSON arrays, `relative_submit_time` the gap since the previous
task. Extra columns (the generator also writes `submit_time`, `workload`) are
ignored. Infinite RDP values are written as 1e6, as Alibaba-DP does.

The raw Alibaba GPU trace cannot be downloaded here, so `alibaba_synthetic` is a
SYNTHETIC generator, not the trace: it follows DPack §6.3's mapping of a trace row to a
DP task (machine type -> mechanism family, memory -> epsilon, bytes read -> blocks,
the 1-100 blocks and [0.001, 1] filters) with the artifact generator's parameters where
the paper gives none, and draws the trace's proxies from laws fitted to the DPack
artifact's own Alibaba-DP CSV (see `alibaba_synthetic`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dpsched.budget import (
    DEFAULT_ALPHAS,
    Gaussian,
    Laplace,
    MechanismSpec,
    SubsampledGaussian,
    SubsampledLaplace,
    rdp_curve,
    rdp_to_epsilon,
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


RECORDS_PER_BLOCK = 1000
"""Records per block. The paper gives none; the artifact's generator
(columbia/alibaba-dp-workload, `config/_default.yaml`) has `avg_block_size: 1_000`
and sets `delta = 1 / dataset_size` with `dataset_size = n_blocks * avg_block_size`:
the artifact's CSV has delta = 1 / (1000 n_blocks) on every row."""
EPSILON_FLOOR = 0.1
"""Smallest traditional epsilon (the artifact's `epsilon_min_cpu` = `epsilon_min_gpu`)."""
MAX_EPOCHS = 200
"""Epochs are an affine function of runtime onto [1, `epochs_max` = 200] (artifact)."""
CPU_FAMILIES = ("laplace", "gaussian", "subsampled_laplace")
GPU_FAMILIES = ("subsampled_gaussian", "dp_ftrl")
FAMILIES = CPU_FAMILIES + GPU_FAMILIES
CHUNK = 4096
"""Candidates drawn at a time: a fixed size, so the first k tasks of a longer workload
are the k tasks of a shorter one with the same seed (a load sweep only adds tasks)."""


class AlibabaSyntheticParams(BaseModel):
    """The trace's proxies, as distributions fitted to the artifact's 2,000-task CSV.

    The raw trace is not available here, so the memory and network-read proxies are
    drawn from log-normal laws whose parameters make the filtered workload's marginals
    match the artifact's CSV (tests/test_sim_workloads.py checks them).
    """

    model_config = ConfigDict(extra="forbid")

    gpu_fraction: float = Field(0.53, ge=0, le=1, description="share of GPU tasks before filters")
    eps_log10_mean: float = Field(-1.45, description="mean of log10(epsilon - 0.1)")
    eps_log10_std: float = Field(0.65, gt=0, description="std of log10(epsilon - 0.1)")
    blocks_log10_mean: float = Field(0.7, description="mean of log10 of the blocks proxy")
    blocks_log10_std: float = Field(0.5, gt=0, description="std of log10 of the blocks proxy")


SUBSAMPLED_STEPS: dict[str, tuple[MechanismSpec, ...]] = {
    "subsampled_gaussian": tuple(
        SubsampledGaussian(mechanism="subsampled_gaussian", sigma=sigma, sampling_rate=q)
        for sigma, q in ((4.0, 0.01), (8.0, 0.01), (8.0, 0.064), (16.0, 0.1))
    ),
    "subsampled_laplace": tuple(
        SubsampledLaplace(mechanism="subsampled_laplace", scale=scale, sampling_rate=q)
        for scale, q in ((2.0, 0.064), (4.0, 0.01), (4.0, 0.1), (8.0, 0.064))
    ),
}
"""One training step of each subsampled family, at sampling rates of the artifact's
batches (64 to 4,096 records of n x 1,000) and noise where its calibrated curves lie:
linear in alpha up to 64 within a few percent, as 95% of the artifact CSV's are."""


@lru_cache(maxsize=1)
def _step_curves() -> dict[str, np.ndarray]:
    """Per subsampled family, its one-step dp-accounting curves (one row per step kind)."""
    return {
        family: np.array([rdp_curve(spec, DEFAULT_ALPHAS) for spec in specs])
        for family, specs in SUBSAMPLED_STEPS.items()
    }


@lru_cache(maxsize=1)
def _conversion_offsets() -> np.ndarray:
    """Row n - 1: the b with which dp-accounting converts a curve r to (epsilon, delta =
    1 / (1000 n)) as min over orders of r + b (its `compute_epsilon`, read at r = 1)."""
    return np.array(
        [
            [
                rdp_to_epsilon((a,), (1.0,), 1.0 / (n * RECORDS_PER_BLOCK)) - 1.0
                for a in DEFAULT_ALPHAS
            ]
            for n in range(1, MAX_BLOCKS + 1)
        ]
    )


@lru_cache(maxsize=4096)
def _laplace_curve(epsilon: float) -> np.ndarray:
    """Cached by epsilon: building the mechanism spec costs more than computing the curve."""
    return rdp_curve(Laplace(mechanism="laplace", epsilon=epsilon), DEFAULT_ALPHAS)


@dataclass(frozen=True)
class _Candidates:
    """A chunk of candidate tasks: the trace row's proxies, drawn in one go."""

    family: np.ndarray
    """Index into FAMILIES."""
    epsilon: np.ndarray
    blocks: np.ndarray
    epochs: np.ndarray
    tightness: np.ndarray
    """Where in the artifact's [0.9, 1] calibration band a subsampled curve lands."""
    step: np.ndarray
    """Uniform in [0, 1): which one-step curve of SUBSAMPLED_STEPS a subsampled task
    repeats."""
    gap: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, params: AlibabaSyntheticParams) -> _Candidates:
        gpu = rng.random(CHUNK) < params.gpu_fraction
        pick = rng.random(CHUNK)
        family = np.where(
            gpu,
            len(CPU_FAMILIES) + np.floor(pick * len(GPU_FAMILIES)),
            np.floor(pick * len(CPU_FAMILIES)),
        ).astype(np.int64)
        memory = 10.0 ** rng.normal(params.eps_log10_mean, params.eps_log10_std, CHUNK)
        reads = 10.0 ** rng.normal(params.blocks_log10_mean, params.blocks_log10_std, CHUNK)
        return cls(
            family=family,
            epsilon=np.array([float(f"{e:.3g}") for e in EPSILON_FLOOR + memory]),
            blocks=np.maximum(1, np.floor(reads)).astype(np.int64),
            epochs=rng.integers(1, MAX_EPOCHS + 1, CHUNK),
            tightness=rng.uniform(0.9, 1.0, CHUNK),
            step=rng.random(CHUNK),
            gap=rng.exponential(1.0, CHUNK),
        )

    def take(self, rows: np.ndarray) -> _Candidates:
        return _Candidates(
            self.family[rows],
            self.epsilon[rows],
            self.blocks[rows],
            self.epochs[rows],
            self.tightness[rows],
            self.step[rows],
            self.gap[rows],
        )

    def curves(self) -> np.ndarray:
        """One RDP curve per candidate (blocks must be in 1..100), mapped from its row as
        the artifact's generator maps a trace row."""
        curves = np.zeros((self.family.size, len(DEFAULT_ALPHAS)))
        records = self.blocks * RECORDS_PER_BLOCK
        # Artifact: "Only one step for Laplace because they are already very costly
        # RDP-wise".
        for i in np.flatnonzero(self.family == FAMILIES.index("laplace")):
            curves[i] = _laplace_curve(float(self.epsilon[i]))
        # Gaussians: the artifact's classic calibration of one release (its
        # `compute_gaussian_demands`: sigma = sqrt(2 ln(1.25 / delta)) / epsilon, Dwork
        # and Roth Thm. A.1), composed `epochs` times on CPU and ceil(ln(records)) times
        # for DP-FTRL, the paper's "composition of Gaussians". A Gaussian's RDP is
        # inversely proportional to sigma^2 and adds up over releases: dp-accounting's
        # curve at sigma = 1, scaled by releases / sigma^2.
        gaussian = self.family == FAMILIES.index("gaussian")
        ftrl = self.family == FAMILIES.index("dp_ftrl")
        releases = np.where(gaussian, self.epochs, np.ceil(np.log(records)))
        inverse_variance = self.epsilon**2 / (2.0 * np.log(1.25 * records))
        scale = np.where(gaussian | ftrl, releases * inverse_variance, 0.0)
        unit = rdp_curve(Gaussian(mechanism="gaussian", sigma=1.0), DEFAULT_ALPHAS)
        curves += scale[:, None] * unit[None, :]
        # Subsampled mechanisms: the artifact searches the noise until the curve converts
        # to an epsilon in [0.9, 1] x the target (`approx_ratio=0.1`), and its CSV's
        # conversions spread over that band. We calibrate the number of steps of one
        # dp-accounting step instead (RDP adds up over steps): the least number whose
        # conversion reaches `tightness` x epsilon; 0 (then filtered) if none can.
        offsets = _conversion_offsets()[self.blocks - 1]
        for name, kinds in _step_curves().items():
            rows = np.flatnonzero(self.family == FAMILIES.index(name))
            one_step = kinds[(self.step[rows] * len(kinds)).astype(np.int64)]
            usable = np.isfinite(one_step) & (one_step > 0)
            target = (self.tightness[rows] * self.epsilon[rows])[:, None] - offsets[rows]
            needed = np.where(usable, target / np.where(usable, one_step, 1.0), -np.inf)
            curves[rows] = np.maximum(needed.max(axis=1), 0.0)[:, None] * one_step
        return curves


def alibaba_synthetic(
    n_tasks: int, seed: int, params: AlibabaSyntheticParams, n_blocks: int
) -> list[Task]:
    """SYNTHETIC Alibaba-DP tasks, following DPack §6.3's mapping of a trace row.

    Quoted from §6.3 ("The Alibaba-DP Workload"), with what stands in for the trace:
    - "We use machine type (CPU/GPU) as a proxy for DP mechanism type. [...] We map each
      CPU-based task to one of the {Laplace, Gaussian, Subsampled Laplace} curves and
      each GPU-based task to one of the {composition of Subsampled Gaussians,
      composition of Gaussians} curves, at random." A task is GPU-based with
      probability `gpu_fraction`; its family is uniform within its machine type (the
      artifact's `cpu_mechanisms_frequencies` / `gpu_mechanisms_frequencies` are all 1).
    - "We use memory usage as a proxy for privacy usage by setting traditional DP
      epsilon as an affine transformation of memory usage (in GB hours). [...] the
      privacy budget might follow a similar distribution (e.g. a power law with many
      tasks having small requests and a long tail of tasks with large requests)."
      epsilon = 0.1 + M with log10 M ~ Normal(`eps_log10_mean`, `eps_log10_std`): the
      artifact maps memory onto [0.1, 1000], and its CSV's epsilon - 0.1 is log-normal
      (median 0.04, ten times that at its 90th percentile). Rounded to 3 significant
      digits so tasks share their curves.
    - "We compute the number of blocks required by each task as an affine function of
      the bytes read through the network." n_blocks = max(1, floor(R)) with log10 R ~
      Normal(`blocks_log10_mean`, `blocks_log10_std`) (the artifact floors its affine
      map and turns 0 into 1; its CSV has 23% single-block tasks, median 4).
    - "Finally, all tasks request the most recent blocks that arrived in the system and
      are assigned a weight of 1."
    - "We truncate the workload [...] cutting off tasks that request more than 100
      blocks or whose smallest normalized RDP epsilon is not in [0.001, 1]." Candidates
      are dropped, and more drawn, until `n_tasks` remain.
    - Arrivals: each task carries the gap since the previous one (the trace's
      `relative_submit_time`, which the simulator scales to span the block arrivals); the
      artifact's CSV gaps are exponential with mean 1, so these are too.
    The delta and per-family parameters the paper leaves out are the artifact's (see
    `RECORDS_PER_BLOCK`, `MAX_EPOCHS`, `_Candidates.curves`). `n_blocks` (the run's) is
    not used: a task asking for more blocks than have arrived reads those that have.
    """
    del n_blocks
    rng = np.random.default_rng(seed)
    tasks: list[Task] = []
    while len(tasks) < n_tasks:
        drawn = _Candidates.draw(rng, params)
        candidates = drawn.take(np.flatnonzero(drawn.blocks <= MAX_BLOCKS))
        curves = candidates.curves()
        smallest = normalized(curves).min(axis=1)
        kept = np.flatnonzero((smallest >= MIN_NORMALIZED) & (smallest <= MAX_NORMALIZED))
        for i in kept[: n_tasks - len(tasks)]:
            n = int(candidates.blocks[i])
            tasks.append(
                Task(
                    name=f"{FAMILIES[int(candidates.family[i])]}-eps={candidates.epsilon[i]:.2e}",
                    demand=TaskDemand(
                        delta=1.0 / (n * RECORDS_PER_BLOCK),
                        alphas=DEFAULT_ALPHAS,
                        rdp=tuple(curves[i].tolist()),
                    ),
                    n_blocks=n,
                    gap=float(candidates.gap[i]),
                )
            )
    return tasks
