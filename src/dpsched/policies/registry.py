"""Policies by name, with their typed options: the one table every front end uses."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from dpsched.errors import InputError, from_validation_error
from dpsched.policies.area import AreaOptions, area
from dpsched.policies.dpack import DpackOptions, dpack
from dpsched.policies.dpf import DpfOptions, dpf
from dpsched.policies.fcfs import FcfsOptions, fcfs
from dpsched.policies.lanes import PendingLanes
from dpsched.policies.optimal import OptimalOptions, optimal
from dpsched.policies.problem import Problem
from dpsched.policies.result import PolicyResult
from dpsched.policies.round import RoundNeeds
from dpsched.policies.round_robin import RoundRobinOptions, round_robin


@dataclass(frozen=True)
class Policy:
    name: str
    summary: str
    options_model: type[BaseModel]
    solve: Callable[[Problem, Any], PolicyResult]
    needs: RoundNeeds
    """What the policy needs from a scheduling round (`policies.round`)."""

    def options(self, values: Mapping[str, Any] | None = None) -> BaseModel:
        """Validated options; an unknown key or a bad value names the option."""
        try:
            return self.options_model.model_validate(dict(values or {}))
        except ValidationError as exc:
            raise from_validation_error(f"{self.name} option", exc) from None

    def run(
        self, problem: Problem, options: BaseModel | Mapping[str, Any] | None = None
    ) -> PolicyResult:
        """Solve and time the policy's own computation."""
        parsed = options if isinstance(options, BaseModel) else self.options(options)
        start = time.perf_counter()
        result = self.solve(problem, parsed)
        result.runtime_s = time.perf_counter() - start
        return result


ON_ITS_OWN = RoundNeeds("fitting")
"""A claim's rank (or the optimum) depends on itself only."""
POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("fcfs", "arrival order, first fit", FcfsOptions, fcfs, ON_ITS_OWN),
        Policy("dpf", "Dominant Private-block Fairness (PrivateKube)", DpfOptions, dpf, ON_ITS_OWN),
        Policy(
            "area", "weight / normalised demand area (DPack Eq. 4)", AreaOptions, area, ON_ITS_OWN
        ),
        Policy(
            "dpack",
            "best-order efficiency, greedy (DPack Alg. 1)",
            DpackOptions,
            dpack,
            RoundNeeds("touching", memory=PendingLanes),
        ),
        Policy(
            "optimal", "exact privacy-knapsack MILP (HiGHS)", OptimalOptions, optimal, ON_ITS_OWN
        ),
        Policy(
            "rr",
            "round robin: even shares of unlocked budget, run when covered (PrivateKube)",
            RoundRobinOptions,
            round_robin,
            RoundNeeds("all", reservations=True),
        ),
    )
}


def get_policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise InputError(
            "policy", f"unknown policy {name!r}; choose from {', '.join(POLICIES)}"
        ) from None
