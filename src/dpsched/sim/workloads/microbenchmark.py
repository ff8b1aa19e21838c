"""DPack §6.2 microbenchmark: two heterogeneity knobs over a pool of real RDP curves.

The pool holds curves of five mechanism families (Laplace, subsampled Laplace,
Gaussian, subsampled Gaussian, Laplace+Gaussian composition) computed by
dp-accounting. Each curve is normalised by a (10, 1e-7) block and bucketed by its
best order in {3, 4, 5, 6, 8, 16, 32, 64}. A task draws a bucket index from a
truncated discrete Gaussian centred on alpha = 5 (std `sigma_alpha`), a curve
uniformly from that bucket, and is rescaled so its smallest normalised demand is
`eps_min` (scaling keeps the best order). Its block count is a truncated discrete
Gaussian (mean `mu_blocks`, std `sigma_blocks`) and the blocks are picked at random.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dpsched.budget import (
    DEFAULT_ALPHAS,
    Composition,
    Gaussian,
    Laplace,
    MechanismSpec,
    SubsampledGaussian,
    SubsampledLaplace,
    rdp_curve,
)
from dpsched.core.exact import SCALE, units_down
from dpsched.sim.workloads.base import Task, TaskDemand
from dpsched.sim.workloads.sampling import (
    NORMALIZING_DELTA,
    normalized,
    normalizing_capacity,
    truncated_discrete_gaussian,
)

BUCKET_ALPHAS: tuple[float, ...] = (3, 4, 5, 6, 8, 16, 32, 64)
CENTER_BUCKET = BUCKET_ALPHAS.index(5)


class MicrobenchmarkParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mu_blocks: float = Field(1.0, ge=1)
    sigma_blocks: float = Field(0.0, ge=0)
    sigma_alpha: float = Field(0.0, ge=0)
    eps_min: float = Field(0.1, gt=0, le=1, description="smallest normalised demand of a task")


def _pool_mechanisms() -> list[tuple[str, MechanismSpec]]:
    pool: list[tuple[str, MechanismSpec]] = []
    for eps in np.geomspace(0.05, 5.0, 25):
        pool.append(("laplace", Laplace(mechanism="laplace", epsilon=float(eps))))
    for sigma in (0.5, 1.0, 2.0, 5.0):
        pool.append(("gaussian", Gaussian(mechanism="gaussian", sigma=sigma)))
    for sigma in (0.5, 0.7, 1.0, 2.0, 4.0):
        for q in (0.001, 0.01, 0.1):
            spec = SubsampledGaussian(
                mechanism="subsampled_gaussian", sigma=sigma, sampling_rate=q, steps=100
            )
            pool.append(("subsampled_gaussian", spec))
    for scale in (0.5, 1.0, 2.0):
        for q in (0.01, 0.1, 0.5):
            sl = SubsampledLaplace(
                mechanism="subsampled_laplace", scale=scale, sampling_rate=q, steps=100
            )
            pool.append(("subsampled_laplace", sl))
    for eps in (0.1, 0.3, 1.0):
        for sigma in (1.0, 3.0):
            parts: list[MechanismSpec] = [
                Laplace(mechanism="laplace", epsilon=eps),
                Gaussian(mechanism="gaussian", sigma=sigma),
            ]
            pool.append(("laplace_gaussian", Composition(mechanism="composition", parts=parts)))
    return pool


@lru_cache(maxsize=1)
def curve_buckets() -> dict[float, list[tuple[str, np.ndarray]]]:
    """(family, curve over DEFAULT_ALPHAS scaled to a smallest normalised demand of 1),
    grouped by best order."""
    buckets: dict[float, list[tuple[str, np.ndarray]]] = {a: [] for a in BUCKET_ALPHAS}
    for family, spec in _pool_mechanisms():
        norm = normalized(rdp_curve(spec, DEFAULT_ALPHAS))
        if not np.isfinite(norm).any():
            continue
        best = DEFAULT_ALPHAS[int(np.argmin(norm))]
        if best in buckets:
            buckets[best].append((family, rdp_curve(spec, DEFAULT_ALPHAS) / float(np.min(norm))))
    return buckets


def exact_share(curve: np.ndarray, eps_min: float) -> np.ndarray:
    """`eps_min` times a curve whose smallest normalised demand is 1, with that smallest
    demand set to exactly eps_min of the block's capacity in the ledger's integer units
    (rounded down): 1/eps_min such tasks fill a block exactly, as the paper means, where
    float products would overshoot it by an ulp and the exact admission would refuse the
    last one. The other orders keep the curve's shape (they are off by under 1e-12)."""
    capacity_units = units_down(normalizing_capacity())
    best = int(np.argmin(normalized(curve)))
    share = Fraction(str(eps_min))  # the decimal as written: 0.1 is exactly a tenth
    target = int(capacity_units[best] * share) / SCALE
    scaled: np.ndarray = curve * (target / float(curve[best]))
    scaled[best] = target
    return scaled


def microbenchmark(
    n_tasks: int, seed: int, params: MicrobenchmarkParams, n_blocks: int
) -> list[Task]:
    rng = np.random.default_rng(seed)
    buckets = curve_buckets()
    sizes = truncated_discrete_gaussian(
        rng, params.mu_blocks, params.sigma_blocks, low=1, high=max(n_blocks, 1), size=n_tasks
    )
    bucket_index = truncated_discrete_gaussian(
        rng, CENTER_BUCKET, params.sigma_alpha, low=0, high=len(BUCKET_ALPHAS) - 1, size=n_tasks
    )
    demands: dict[tuple[float, int], TaskDemand] = {}
    tasks = []
    for i in range(n_tasks):
        alpha = BUCKET_ALPHAS[int(bucket_index[i])]
        pick = int(rng.integers(len(buckets[alpha])))
        key = (alpha, pick)
        if key not in demands:
            curve = exact_share(buckets[alpha][pick][1], params.eps_min)
            demands[key] = TaskDemand(
                delta=NORMALIZING_DELTA,
                alphas=DEFAULT_ALPHAS,
                rdp=tuple(curve.tolist()),
            )
        family = buckets[alpha][pick][0]
        tasks.append(
            Task(
                name=f"{family}-alpha{alpha:g}",
                demand=demands[key],
                n_blocks=int(sizes[i]),
                selection="random",
            )
        )
    return tasks
