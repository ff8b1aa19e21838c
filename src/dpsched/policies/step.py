"""One scheduling step: run a policy on the ledger's pending claims and grant its choice.

This is the only place a policy's decision touches budget, and every front end
(offline CLI, simulator, service, operator) goes through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from dpsched.core import Ledger, PendingArrays, PendingView
from dpsched.policies.lanes import PendingLanes, StepLanes
from dpsched.policies.problem import Problem
from dpsched.policies.registry import Policy
from dpsched.policies.result import PolicyResult


def problem_from_pending(
    ledger: Ledger,
    pending: PendingArrays,
    fit: np.ndarray | None = None,
    entry_reserved: np.ndarray | None = None,
    lanes: StepLanes | None = None,
) -> Problem:
    """The claims' demands against the ledger's unlocked budget, in CSR form."""
    return Problem(
        ids=tuple(pending.ids.tolist()),
        weights=pending.weights,
        arrival=pending.arrival,
        indptr=pending.indptr,
        entry_block=pending.entry_block,
        entry_demand=pending.entry_demand,
        available=ledger.unlocked.copy(),
        capacity=ledger.capacity.copy(),
        fit=fit,
        entry_reserved=entry_reserved,
        seq=pending.submitted,
        lanes=lanes,
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
    lanes: PendingLanes | None = None,
) -> StepOutcome:
    """Grant, in the policy's order, the pending claims it picks from unlocked budget.

    A policy only ever grants claims that fit, and budget only shrinks within a step,
    so when no pending claim fits on its own the policy is not run at all; otherwise
    it sees only the claims that can change its decision (`Policy.relevant`). Online,
    those are a few hundred of tens of thousands pending. A caller that runs steps
    over and over (the engine) passes `lanes`, kept from step to step: DPack's one-round
    steps then read the other claims' knapsack counts there instead of seeing them.
    """
    if policy.relevant == "all":
        return _step_on_every_claim(ledger, policy, time, options)
    now = ledger.pending_fit()
    pending, fit = now.view.arrays, now.fit
    if not fit.any():
        # Nothing can be granted, and granting nothing is then provably optimal.
        return StepOutcome([], PolicyResult([], status="optimal"), 0)
    kept_lanes = lanes is not None and policy.relevant == "touching" and _equal_weights(now.view)
    if policy.relevant == "touching" and not kept_lanes:
        keep = fit | now.touching(now.blocks_of_fitting(ledger.capacity.shape[0]))
    else:
        keep = fit
    if not keep.all():
        pending, fit = pending.subset(keep), fit[keep]
    if lanes is None or not kept_lanes:
        result = policy.run(problem_from_pending(ledger, pending, fit), options)
        return StepOutcome(_grant(ledger, pending, result, time), result, pending.n)
    needed = now.blocks_of_fitting(ledger.capacity.shape[0])
    lent = lanes.open(ledger, now.view, needed, ledger.unlocked, pending)
    try:
        result = policy.run(problem_from_pending(ledger, pending, fit, lanes=lent), options)
    finally:
        lent.close()
    return StepOutcome(_grant(ledger, pending, result, time), result, pending.n)


def _equal_weights(view: PendingView) -> bool:
    """Every pending claim weighs the same: kept lanes hold the equal-weight knapsack."""
    weights = view.arrays.weights[view.alive]
    return bool(weights.min() == weights.max())


def _step_on_every_claim(
    ledger: Ledger,
    policy: Policy,
    time: float,
    options: BaseModel | Mapping[str, Any] | None,
) -> StepOutcome:
    """For policies that hand out budget even when no claim fits (round robin): they
    see every pending claim with what is already reserved for it."""
    pending = ledger.pending_arrays()
    if pending.n == 0:
        return StepOutcome([], PolicyResult([], status="optimal"), 0)
    reserved = np.vstack([claim.reserved for claim in pending.claims])
    result = policy.run(problem_from_pending(ledger, pending, entry_reserved=reserved), options)
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
