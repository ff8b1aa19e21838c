"""Random draws shared by the generators, all from one seeded numpy Generator."""

from __future__ import annotations

import numpy as np

from dpsched.budget import DEFAULT_ALPHAS, Accounting

NORMALIZING_EPSILON = 10.0
NORMALIZING_DELTA = 1e-7
"""The fictional block that Alibaba-DP and the DPack microbenchmark normalise demands by."""


def normalizing_capacity(alphas: tuple[float, ...] = DEFAULT_ALPHAS) -> np.ndarray:
    return Accounting("rdp", alphas).capacity(NORMALIZING_EPSILON, NORMALIZING_DELTA)


def normalized(curve: np.ndarray, alphas: tuple[float, ...] = DEFAULT_ALPHAS) -> np.ndarray:
    """Demand / capacity of the normalising block per order; inf where it has no capacity."""
    capacity = normalizing_capacity(alphas)
    usable = capacity > 0
    out = np.full(curve.shape, np.inf)
    np.divide(curve, capacity, out=out, where=usable)
    return out


def truncated_discrete_gaussian(
    rng: np.random.Generator, mean: float, std: float, *, low: int, high: int, size: int
) -> np.ndarray:
    """round(N(mean, std)) conditioned on [low, high], by rejection (std 0: round(mean))."""
    if std <= 0:
        return np.full(size, int(np.clip(round(mean), low, high)), dtype=np.int64)
    out = np.empty(size, dtype=np.int64)
    filled = 0
    while filled < size:
        draw = np.rint(rng.normal(mean, std, size=2 * (size - filled) + 16)).astype(np.int64)
        draw = draw[(draw >= low) & (draw <= high)]
        take = min(draw.size, size - filled)
        out[filled : filled + take] = draw[:take]
        filled += take
    return out
