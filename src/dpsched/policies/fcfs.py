"""First come, first served: arrival order, first fit. The baseline every paper compares to."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from dpsched.policies.packing import greedy_pack
from dpsched.policies.problem import Problem
from dpsched.policies.result import PolicyResult


class FcfsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


def fcfs_order(problem: Problem) -> np.ndarray:
    return np.argsort(problem.tie_rank, kind="stable")


def fcfs(problem: Problem, options: FcfsOptions) -> PolicyResult:
    return PolicyResult(greedy_pack(problem, fcfs_order(problem)).allocated)
