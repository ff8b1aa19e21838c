"""Budget as whole units of 1e-12, so that admission compares exact integers.

Floats round: ten demands of 0.1 sum to 0.9999999999999999 in binary, and a comparison
with a slack (as the policies plan) can let a block end a hair over its capacity. The
ledger therefore also keeps, per block and order, the budget its grants hold as an
integer number of units of `QUANTUM` (1e-12), and admits a grant only if those integers
stay within the capacity's, exactly.

A float becomes units by reading it as the decimal it was written as: a float that is
the nearest float to a decimal with at most 12 digits after the point (0.1, 2.5,
0.000001) stands for that decimal, so ten claims of 0.1 fill a capacity of 1.0 exactly,
as their author means. Any other value (a computed RDP curve) is rounded **up** for a
demand and **down** for a capacity, so the units never under-state what is spent or
over-state what may be. Amounts beyond `SATURATED` units (2.3 million epsilon, far past
any privacy guarantee) saturate: a capacity to `SATURATED`, a demand to `NEVER`, which
no capacity holds, so the integers never overflow.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

SCALE = 10**12
QUANTUM = 1.0 / SCALE
SATURATED = 2**61
NEVER = SATURATED + 1
_FAST_LIMIT = 1000.0
"""Below this, value * 1e12 < 2^50: the float product is within 1/16 of the exact one and
n / 1e12 (n an integer < 2^53) is the correctly rounded float of the decimal n * 1e-12."""


def units_up(values: np.ndarray) -> np.ndarray:
    """Smallest whole number of units not below each (non-negative) value, except that a
    float standing for a 12-digit decimal is that decimal (see the module doc)."""
    return _units(np.asarray(values, dtype=float), up=True)


def units_down(values: np.ndarray) -> np.ndarray:
    """Largest whole number of units not above each (non-negative) value, except that a
    float standing for a 12-digit decimal is that decimal."""
    return _units(np.asarray(values, dtype=float), up=False)


def _units(values: np.ndarray, *, up: bool) -> np.ndarray:
    out = np.empty(values.shape, dtype=np.int64)
    fast = (values >= 0) & (values < _FAST_LIMIT)
    x = values[fast]
    n = np.rint(x * SCALE)
    back = n / SCALE
    n = np.where(back < x, n + 1, n) if up else np.where(back > x, n - 1, n)
    out[fast] = n.astype(np.int64)
    slow = np.flatnonzero(~fast.ravel())
    if slow.size:
        flat = out.reshape(-1)
        source = values.reshape(-1)
        for k in slow.tolist():
            flat[k] = _exact_units(float(source[k]), up=up)
    return out


def _exact_units(value: float, *, up: bool) -> int:
    """The slow path, in exact rational arithmetic: large, infinite or negative values."""
    if math.isnan(value):
        raise ValueError("a budget amount is NaN")
    if value == float("inf"):
        return NEVER if up else SATURATED
    if value <= 0:
        return 0
    exact = Fraction(value) * SCALE
    nearest = round(exact)
    if float(Fraction(nearest, SCALE)) == value:
        units = nearest
    elif up:
        units = -((-exact.numerator) // exact.denominator)
    else:
        units = exact.numerator // exact.denominator
    if units > SATURATED:
        return NEVER if up else SATURATED
    return int(units)
