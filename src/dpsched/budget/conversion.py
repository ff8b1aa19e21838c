"""RDP -> (epsilon, delta) conversions, used to report what a block has spent."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def rdp_to_epsilon(alphas: Sequence[float], curve: ArrayLike, delta: float) -> float:
    """Tightest available conversion (`dp_accounting.rdp.compute_epsilon`).

    Zero spend is reported as exactly 0: no mechanism ran, so nothing leaked, even
    though the conversion formula alone would return log(1/delta)/(alpha-1) > 0.
    """
    values = np.asarray(curve, dtype=float)
    if not np.any(values):
        return 0.0
    from dp_accounting import rdp  # slow to import: only when a report needs it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epsilon, _ = rdp.compute_epsilon(list(alphas), list(values), delta)
    return float(epsilon)


def rdp_to_epsilon_classic(alphas: Sequence[float], curve: ArrayLike, delta: float) -> float:
    """Mironov's classic bound min_alpha eps(alpha) + ln(1/delta)/(alpha-1), the papers' Eq. 2."""
    values = np.asarray(curve, dtype=float)
    if not np.any(values):
        return 0.0
    orders = np.asarray(alphas, dtype=float)
    return float(np.min(values + math.log(1.0 / delta) / (orders - 1.0)))
