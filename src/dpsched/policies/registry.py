"""Policies by name, with their typed options: the one table every front end uses."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from dpsched.errors import InputError, from_validation_error
from dpsched.policies.area import AreaOptions, area
from dpsched.policies.dpack import DpackOptions, dpack
from dpsched.policies.dpf import DpfOptions, dpf
from dpsched.policies.fcfs import FcfsOptions, fcfs
from dpsched.policies.optimal import OptimalOptions, optimal
from dpsched.policies.problem import Problem
from dpsched.policies.result import PolicyResult
from dpsched.policies.round_robin import RoundRobinOptions, round_robin


@dataclass(frozen=True)
class Policy:
    name: str
    summary: str
    options_model: type[BaseModel]
    solve: Callable[[Problem, Any], PolicyResult]
    relevant: Literal["fitting", "touching", "all"]
    """Which pending claims can change the decision, so a step may drop the others:
    "fitting" when a claim's rank (or the optimum) depends only on itself, so claims that
    cannot fit now are irrelevant; "touching" for DPack, whose knapsacks on the blocks of
    fitting claims also count every claim that fits that block on its own; "all" for
    round robin, which shares budget among every pending claim even when none fits."""

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


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("fcfs", "arrival order, first fit", FcfsOptions, fcfs, "fitting"),
        Policy("dpf", "Dominant Private-block Fairness (PrivateKube)", DpfOptions, dpf, "fitting"),
        Policy(
            "area", "weight / normalised demand area (DPack Eq. 4)", AreaOptions, area, "fitting"
        ),
        Policy(
            "dpack", "best-order efficiency, greedy (DPack Alg. 1)", DpackOptions, dpack, "touching"
        ),
        Policy(
            "optimal", "exact privacy-knapsack MILP (HiGHS)", OptimalOptions, optimal, "fitting"
        ),
        Policy(
            "rr",
            "round robin: even shares of unlocked budget, run when covered (PrivateKube)",
            RoundRobinOptions,
            round_robin,
            "all",
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
