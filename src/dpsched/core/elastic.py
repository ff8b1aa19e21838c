"""How far an elastic grant grows: a claim granted at the bottom of its range takes the
most of the range that its blocks still hold, right after the policy granted it (so
growing never takes what the policy gave another claim).

An epsilon range (`ElasticDemand`): the least noise whose curve fits, by bisection; the
grant records the epsilon and the noise to run with, and the claim is charged that
mechanism's curve. Explicit vectors (`min_demand` below `demand`): the largest fraction
of the way from the minimum to the full demand that fits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dpsched.budget import Accounting
from dpsched.budget.curves import elastic_epsilon
from dpsched.core.block_budget import BlockBudget
from dpsched.core.claims import Claim
from dpsched.core.exact import units_up
from dpsched.core.resolution import Resolver

ELASTIC_TOLERANCE = 1e-6
"""Relative precision of an elastic grant's noise (bisection stops within it, on the
side that fits)."""


def grown(
    claim: Claim, budget: BlockBudget, resolver: Resolver, accounting: Accounting
) -> tuple[np.ndarray, dict[str, float]]:
    """The demand an allocated elastic claim grows to, and what it was granted: the
    most its blocks hold now (the unlocked budget plus the minimum it holds)."""
    spec, ceiling = claim.elastic, claim.ceiling
    rows = claim.block_index
    room = budget.unlocked[rows] + claim.allocated
    held = units_up(claim.demand)

    def holds(demand: np.ndarray) -> bool:
        extra = units_up(demand) - held
        return bool(budget.admits(rows, demand, room, extra).all())

    if spec is not None:
        least, most = accounting.elastic_noise(spec)

        def at_noise(noise: float) -> np.ndarray:
            row = accounting.elastic_curve(spec, noise)
            return resolver.stored_demand(np.tile(row, (rows.size, 1)), rows)

        noise = _most_that_fits(lambda x: holds(at_noise(x)), good=most, bad=least)
        return at_noise(noise), {"epsilon": elastic_epsilon(spec, noise), spec.noise_name: noise}
    assert ceiling is not None
    floor = claim.demand.copy()
    top = resolver.stored_demand(np.tile(ceiling, (rows.size, 1)), rows)

    def at_fraction(t: float) -> np.ndarray:
        stretched: np.ndarray = np.minimum(floor + t * (top - floor), top)
        return stretched

    fraction = _most_that_fits(lambda t: holds(at_fraction(t)), good=0.0, bad=1.0)
    return at_fraction(fraction), {"fraction": fraction}


def _most_that_fits(holds: Callable[[float], bool], *, good: float, bad: float) -> float:
    """The point nearest `bad` at which `holds` (monotone between them) is still true:
    `bad` itself if it holds, else bisection to ELASTIC_TOLERANCE, ending where it holds."""
    if holds(bad):
        return bad
    while abs(bad - good) > ELASTIC_TOLERANCE * max(abs(good), abs(bad), 1e-12):
        middle = 0.5 * (good + bad)
        good, bad = (middle, bad) if holds(middle) else (good, middle)
    return good
