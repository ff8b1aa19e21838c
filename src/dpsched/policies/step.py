"""One scheduling step: run a policy on the ledger's pending claims and grant its choice.

This is the only place a policy's decision touches budget, and every front end
(offline CLI, simulator, service, operator) goes through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from dpsched.core import Claim, Ledger
from dpsched.policies.problem import Problem
from dpsched.policies.registry import Policy
from dpsched.policies.result import PolicyResult


def problem_from_ledger(ledger: Ledger, claims: Sequence[Claim]) -> Problem:
    """The claims' demands against the ledger's unlocked budget, in CSR form."""
    dims = ledger.accounting.dims
    counts = np.array([c.block_index.size for c in claims], dtype=np.int64)
    if claims:
        entry_block = np.concatenate([c.block_index for c in claims])
        entry_demand = np.vstack([c.demand for c in claims])
    else:
        entry_block = np.zeros(0, dtype=np.int64)
        entry_demand = np.zeros((0, dims))
    return Problem(
        ids=tuple(c.id for c in claims),
        weights=np.array([c.weight for c in claims], dtype=float),
        arrival=np.array([c.arrival for c in claims], dtype=float),
        indptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        entry_block=entry_block,
        entry_demand=entry_demand,
        available=ledger.unlocked.copy(),
        capacity=ledger.capacity.copy(),
    )


@dataclass
class StepOutcome:
    granted: list[str]
    result: PolicyResult


def schedule_step(
    ledger: Ledger,
    policy: Policy,
    time: float,
    options: BaseModel | Mapping[str, Any] | None = None,
) -> StepOutcome:
    """Grant, in the policy's order, the pending claims it picks from unlocked budget."""
    pending = ledger.pending()
    if not pending:
        return StepOutcome([], PolicyResult([], status="heuristic"))
    result = policy.run(problem_from_ledger(ledger, pending), options)
    granted = []
    for index in result.allocated:
        claim_id = pending[index].id
        ledger.allocate(claim_id, request_id=f"allocate:{claim_id}", time=time)
        granted.append(claim_id)
    return StepOutcome(granted, result)
