"""Area heuristic (DPack Eq. 4): weight over the claim's whole normalised demand.

Normalising by what is LEFT of each block expresses scarcity. In rdp mode the sum
also runs over every usable order (the DPack artifact's FlatRelevance); orders
where the demand is infinite or nothing is left are skipped, as they can never
be the order that admits the claim.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from dpsched.core.admission import TOLERANCE
from dpsched.policies.packing import greedy_pack
from dpsched.policies.problem import Problem
from dpsched.policies.result import PolicyResult


class AreaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


def efficiency_order(problem: Problem, efficiency: np.ndarray) -> np.ndarray:
    """Highest efficiency first; ties by arrival, then id."""
    return np.lexsort((problem.tie_rank, -efficiency))


def weight_over(problem: Problem, normalised_demand: np.ndarray) -> np.ndarray:
    """Per claim: weight / sum of its entries' normalised demand (inf when that sum is 0)."""
    total = np.bincount(problem.entry_task, weights=normalised_demand, minlength=problem.n)
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(total > 0, problem.weights / total, np.inf)


def area_order(problem: Problem) -> np.ndarray:
    left = problem.available[problem.entry_block]
    counted = problem.usable[problem.entry_block] & (left > TOLERANCE)
    counted &= np.isfinite(problem.entry_demand)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        terms = np.where(counted, problem.entry_demand / np.where(counted, left, 1.0), 0.0)
    return efficiency_order(problem, weight_over(problem, terms.sum(axis=1)))


def area(problem: Problem, options: AreaOptions) -> PolicyResult:
    return PolicyResult(greedy_pack(problem, area_order(problem)).allocated)
