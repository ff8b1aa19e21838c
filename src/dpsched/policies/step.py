"""One scheduling step: run a policy on the ledger's pending claims and grant its choice.

This is the only place a policy's decision touches budget, and every front end
(offline CLI, simulator, service, operator) goes through it. The step is the same for
every policy: it reads what the policy declared it needs (`policies.round`), never
its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from dpsched.core import Ledger, PendingArrays
from dpsched.policies.problem import Problem
from dpsched.policies.registry import Policy
from dpsched.policies.result import PolicyResult
from dpsched.policies.round import Lent, RoundMemory


def problem_from_pending(
    ledger: Ledger,
    pending: PendingArrays,
    fit: np.ndarray | None = None,
    entry_reserved: np.ndarray | None = None,
    kept: Lent | None = None,
) -> Problem:
    """The claims' demands against the ledger's unlocked budget, in CSR form."""
    return Problem(
        ids=tuple(pending.ids.tolist()),
        weights=pending.weights,
        arrival=pending.arrival,
        indptr=pending.indptr,
        entry_block=pending.entry_block,
        entry_demand=pending.entry_demand,
        available=ledger.budget.unlocked.copy(),
        capacity=ledger.budget.capacity.copy(),
        fit=fit,
        entry_reserved=entry_reserved,
        seq=pending.submitted,
        kept=kept,
    )


def problem_from_ledger(ledger: Ledger) -> Problem:
    """Every pending claim against the ledger's unlocked budget."""
    return problem_from_pending(ledger, ledger.pending_arrays())


@dataclass
class StepOutcome:
    granted: list[str]
    result: PolicyResult
    considered: int
    """Claims the policy actually saw (after dropping unfit ones where that is safe)."""


def schedule_step(
    ledger: Ledger,
    policy: Policy,
    time: float,
    options: BaseModel | Mapping[str, Any] | None = None,
    memory: RoundMemory | None = None,
) -> StepOutcome:
    """Grant, in the policy's order, the pending claims it picks from unlocked budget.

    A policy only ever grants claims that fit, and budget only shrinks within a step,
    so unless the policy hands out budget while nothing fits (`sees` "all"), it is not
    run at all when no pending claim fits on its own; otherwise it sees only the claims
    that can change its decision (`RoundNeeds.sees`): online, a few hundred of tens of
    thousands pending. A caller that runs steps over and over (the engine) holds the
    policy's `memory` across them, and the step lends it to the problem.
    """
    needs = policy.needs
    lent: Lent | None = None
    if needs.sees == "all":
        pending, fit = ledger.pending_arrays(), None
        if pending.n == 0:
            return StepOutcome([], PolicyResult([], status="optimal"), 0)
    else:
        now = ledger.pending_fit()
        pending, fit = now.view.arrays, now.fit
        if not fit.any():
            # Nothing can be granted, and granting nothing is then provably optimal.
            return StepOutcome([], PolicyResult([], status="optimal"), 0)
        keep = fit
        if needs.sees == "touching":
            if memory is not None:
                lent = memory.lend(ledger, now, pending if fit.all() else pending.subset(fit))
            if lent is None:
                keep = fit | now.touching(now.blocks_of_fitting(ledger.budget.capacity.shape[0]))
        if not keep.all():
            pending, fit = pending.subset(keep), fit[keep]
    reserved = None
    if needs.reservations:
        reserved = np.vstack([claim.reserved for claim in pending.claims])
    try:
        result = policy.run(problem_from_pending(ledger, pending, fit, reserved, lent), options)
    finally:
        if lent is not None:
            lent.close()
    for index, amount in sorted(result.reservations.items()):
        claim_id = str(pending.ids[index])
        request = f"reserve:{claim_id}:{ledger.revision}"
        ledger.reserve(claim_id, amount, request_id=request, time=time)
    return StepOutcome(_grant(ledger, pending, result, time), result, pending.n)


def _grant(ledger: Ledger, pending: PendingArrays, result: PolicyResult, time: float) -> list[str]:
    """Allocate the policy's choice in its order, every claim at its (minimum) demand
    (a claim the ledger's exact admission refuses, at a capacity's last ulps, waits);
    then, in the same order, elastic claims grow to the most of their range that the
    budget left over holds, so growing never takes what the policy gave another."""
    # The exact check may refuse what float planning let through: such a claim waits.
    granted = ledger.allocate_many([str(pending.ids[i]) for i in result.allocated], time=time)
    for claim_id in granted:
        claim = ledger.claim(claim_id)
        if claim.elastic is not None or claim.ceiling is not None:
            ledger.expand(claim_id, time=time)
    return granted
