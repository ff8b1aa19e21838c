"""RDP orders (alphas): the default grid and its validation."""

from __future__ import annotations

import math
from collections.abc import Sequence

from dpsched.errors import InputError

DEFAULT_ALPHAS: tuple[float, ...] = (1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 8, 16, 32, 64)


def validate_alphas(alphas: Sequence[float], field: str = "alphas") -> tuple[float, ...]:
    """Return the orders as a tuple, refusing anything RDP conversion cannot use.

    Orders must be finite, > 1, and strictly increasing: the conversions divide by
    (alpha - 1) and the "smallest order index wins" tie-break needs a stable order.
    """
    values = tuple(float(a) for a in alphas)
    if not values:
        raise InputError(field, "needs at least one RDP order")
    for i, a in enumerate(values):
        if not math.isfinite(a) or a <= 1:
            raise InputError(f"{field}[{i}]", f"RDP order must be a finite number > 1, got {a}")
    for i in range(1, len(values)):
        if values[i] <= values[i - 1]:
            raise InputError(f"{field}[{i}]", "RDP orders must be strictly increasing")
    return values
