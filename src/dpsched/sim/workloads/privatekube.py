"""PrivateKube's workloads: the §6.1 mice/elephants microbenchmark and the §6.2 Amazon
Reviews macrobenchmark (its Tab. 1 shape).

Both state demands as the papers do, as (epsilon, delta) targets. Basic accounting
charges that epsilon; RDP accounting charges the curve of the mechanism that
dp-accounting calibrates to the same target, so one task list runs in both modes
(PrivateKube Fig. 10 compares them).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dpsched.sim.workloads.base import Task, TaskDemand
from dpsched.sim.workloads.calibration import MechanismFamily, calibrated_mechanism


class PrivateKubeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mice_fraction: float = Field(0.75, ge=0, le=1)
    mice_epsilon: float = Field(0.1, gt=0, description="absolute epsilon (0.01 eps_G for 10)")
    elephant_epsilon: float = Field(1.0, gt=0, description="absolute epsilon (0.1 eps_G)")
    delta: float = Field(1e-9, gt=0, lt=1)
    mechanism: Literal["gaussian", "laplace"] = "gaussian"
    last_block_probability: float = Field(
        1.0, ge=0, le=1, description="P(last block); else the last `many_blocks` blocks"
    )
    many_blocks: int = Field(10, ge=1)


@lru_cache(maxsize=256)
def _demand(family: MechanismFamily, epsilon: float, delta: float) -> TaskDemand:
    return TaskDemand(
        delta=delta, mechanism=calibrated_mechanism(family, epsilon, delta), epsilon=epsilon
    )


def privatekube(n_tasks: int, seed: int, params: PrivateKubeParams, n_blocks: int) -> list[Task]:
    """Mice (75%) and elephants; each reads its last block, or w.p. 1 - p the last 10.

    The single-block experiment is `last_block_probability: 1` (the default); the
    multi-block one is 0.75.
    """
    rng = np.random.default_rng(seed)
    mice = _demand(params.mechanism, params.mice_epsilon, params.delta)
    elephants = _demand(params.mechanism, params.elephant_epsilon, params.delta)
    is_mouse = rng.random(n_tasks) < params.mice_fraction
    one_block = rng.random(n_tasks) < params.last_block_probability
    return [
        Task(
            name="mice" if is_mouse[i] else "elephant",
            demand=mice if is_mouse[i] else elephants,
            n_blocks=1 if one_block[i] else params.many_blocks,
        )
        for i in range(n_tasks)
    ]


ELEPHANT_EPSILONS = (0.5, 1.0, 5.0)
MICE_EPSILONS = (0.01, 0.05, 0.1)
LARGE_WEIGHTS = (10.0, 50.0, 100.0, 500.0)
SMALL_WEIGHTS = (1.0, 5.0, 10.0, 50.0)


class AmazonParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mice_fraction: float = Field(0.75, ge=0, le=1)
    delta: float = Field(1e-9, gt=0, lt=1)
    max_blocks: int = Field(20, ge=1, description="elephants read 1..max_blocks days")
    weights: bool = Field(False, description="DPack Fig. 7b random weights")


def amazon(n_tasks: int, seed: int, params: AmazonParams, n_blocks: int) -> list[Task]:
    """DP-SGD elephants (eps 0.5/1/5 on 1-20 days, P(k) ~ 1/k^2 so most read few days)
    and Laplace/Gaussian statistics mice (eps 0.01/0.05/0.1 on the last day)."""
    rng = np.random.default_rng(seed)
    sizes = np.arange(1, params.max_blocks + 1)
    size_p = 1.0 / sizes**2
    size_p /= size_p.sum()
    tasks = []
    for _ in range(n_tasks):
        if rng.random() < params.mice_fraction:
            family: MechanismFamily = "laplace" if rng.random() < 0.5 else "gaussian"
            epsilon = MICE_EPSILONS[int(rng.integers(len(MICE_EPSILONS)))]
            k = 1
            weight = SMALL_WEIGHTS[int(rng.integers(len(SMALL_WEIGHTS)))]
            name = f"statistics-{family}"
        else:
            family = "subsampled_gaussian"
            epsilon = ELEPHANT_EPSILONS[int(rng.integers(len(ELEPHANT_EPSILONS)))]
            k = int(rng.choice(sizes, p=size_p))
            weight = LARGE_WEIGHTS[int(rng.integers(len(LARGE_WEIGHTS)))]
            name = "dp-sgd"
        tasks.append(
            Task(
                name=f"{name}-eps{epsilon:g}",
                demand=_demand(family, epsilon, params.delta),
                n_blocks=k,
                weight=weight if params.weights else 1.0,
            )
        )
    return tasks
