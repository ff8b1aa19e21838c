"""The offline "mixed" microbenchmark and a heavy-tailed most-recent-blocks workload.

mixed: each task draws a mechanism (Laplace, Gaussian, DP-SGD) calibrated to
epsilon 0.5 or 1 at delta 1e-7, and reads 1 random block or 10 random blocks with
probability 1/2 each; blocks are (10, 1e-7).
recent_heavy_tail: tasks read their k most recent blocks, k heavy-tailed (Pareto)
in [1, max_blocks], the scale test of DPack §6.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dpsched.budget import Accounting
from dpsched.core import BlockSpec, ClaimSpec
from dpsched.sim.workloads.base import Task, TaskDemand, Workload
from dpsched.sim.workloads.calibration import MechanismFamily, calibrated_mechanism

FAMILIES: tuple[MechanismFamily, ...] = ("laplace", "gaussian", "subsampled_gaussian")
EPSILONS = (0.5, 1.0)
DELTA = 1e-7


def _blocks(n_blocks: int, epsilon: float, delta: float) -> tuple[BlockSpec, ...]:
    return tuple(
        BlockSpec(
            id=f"b{j}", epsilon=epsilon, delta=delta, arrival=float(j), dimensions={"time": j}
        )
        for j in range(n_blocks)
    )


def _demand(rng: np.random.Generator) -> dict[str, object]:
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    epsilon = EPSILONS[int(rng.integers(len(EPSILONS)))]
    return calibrated_mechanism(family, epsilon, DELTA).model_dump()


def mixed(n_tasks: int, n_blocks: int = 10, seed: int = 0, many_blocks: int = 10) -> Workload:
    rng = np.random.default_rng(seed)
    blocks = _blocks(n_blocks, 10.0, DELTA)
    tasks = []
    for i in range(n_tasks):
        k = min(many_blocks, n_blocks) if rng.random() < 0.5 else 1
        chosen = sorted(rng.choice(n_blocks, size=k, replace=False).tolist())
        tasks.append(
            ClaimSpec.model_validate(
                {"id": f"t{i}", "blocks": [f"b{j}" for j in chosen], "demand": _demand(rng)}
            )
        )
    return Workload(Accounting("rdp", delta=DELTA), blocks, tuple(tasks))


def recent_heavy_tail(
    n_tasks: int, n_blocks: int = 90, seed: int = 0, max_blocks: int = 100, shape: float = 1.2
) -> Workload:
    rng = np.random.default_rng(seed)
    blocks = _blocks(n_blocks, 10.0, DELTA)
    sizes = np.minimum(np.floor(rng.pareto(shape, n_tasks) + 1).astype(int), max_blocks)
    tasks = tuple(
        ClaimSpec.model_validate(
            {"id": f"t{i}", "blocks": {"most_recent": int(k)}, "demand": _demand(rng)}
        )
        for i, k in enumerate(sizes)
    )
    return Workload(Accounting("rdp", delta=DELTA), blocks, tasks)


class MixedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    many_blocks: int = Field(10, ge=1, description="block count of the multi-block half")


def mixed_tasks(n_tasks: int, seed: int, params: MixedParams, n_blocks: int) -> list[Task]:
    """The same mix as `mixed`, as online tasks picking their blocks at random on arrival."""
    rng = np.random.default_rng(seed)
    tasks = []
    for _ in range(n_tasks):
        k = params.many_blocks if rng.random() < 0.5 else 1
        family = FAMILIES[int(rng.integers(len(FAMILIES)))]
        epsilon = EPSILONS[int(rng.integers(len(EPSILONS)))]
        demand = TaskDemand(
            delta=DELTA, mechanism=calibrated_mechanism(family, epsilon, DELTA), epsilon=epsilon
        )
        tasks.append(Task(f"{family}-eps{epsilon:g}", demand, n_blocks=k, selection="random"))
    return tasks
