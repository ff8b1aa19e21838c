"""The engine: one ledger, one unlocking strategy, one policy, and the scheduling round.

Every front end drives the same engine: the simulator on virtual time, the offline
commands at t = 0, the budget service and the Kubernetes operator on the wall clock.
The engine never reads a clock: time is passed in. It is the only code that knows
what a round is (unlock, expire due claims, run the policy, grant its choice), so a
simulation exercises exactly the code path production runs.

Mutations go through the engine's methods, one at a time (the engine is not
thread-safe: a front end serialises callers). Each method is a thin, named wrapper
of the ledger operation plus the unlocking hook that goes with it (a block's
arrival, a claim's submission, a tick).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from dpsched.core import (
    BlockSpec,
    Claim,
    ClaimBatch,
    ClaimSpec,
    ClaimState,
    Forgotten,
    Ledger,
    Unlocking,
)
from dpsched.policies import Policy, PolicyResult, RoundMemory, get_policy, schedule_step


@dataclass(frozen=True)
class RoundOutcome:
    """What one scheduling round did at `time`."""

    time: float
    expired: list[str]
    """Pending claims whose timeout had passed, withdrawn before the policy ran."""
    granted: list[str]
    """Claims allocated, in the policy's order."""
    result: PolicyResult
    considered: int
    """Pending claims the policy saw (those that could change its decision)."""


class Engine:
    """Owns the ledger and runs rounds; `ledger` is readable, never to be mutated directly."""

    def __init__(
        self,
        ledger: Ledger,
        unlocking: Unlocking,
        policy: Policy | str,
        options: BaseModel | Mapping[str, Any] | None = None,
    ) -> None:
        self.ledger = ledger
        self.unlocking = unlocking
        self.policy = get_policy(policy) if isinstance(policy, str) else policy
        self.options = options if isinstance(options, BaseModel) else self.policy.options(options)
        self._could_fit: tuple[int, bool] | None = None
        make = self.policy.needs.memory
        self.memory: RoundMemory | None = None if make is None else make()
        """What the policy keeps across rounds (`RoundNeeds.memory`), held here and
        lent to each round; None computes every round from scratch, the reference the
        tests compare against."""

    # ------------------------------------------------------------- operations
    def add_block(self, spec: BlockSpec, time: float) -> int:
        """A new block (locked; its unlocking strategy decides what opens when)."""
        index = self.ledger.add_block(spec)
        self.unlocking.on_block_added(self.ledger, index, time)
        return index

    def submit(self, spec: ClaimSpec | dict[str, Any], time: float) -> Claim:
        """A new claim: pending (the unlocking strategy hears of it) or rejected."""
        claim = self.ledger.submit(spec, time=time)
        if claim.state is ClaimState.PENDING:
            self.unlocking.on_claim_submitted(self.ledger, claim, time)
        return claim

    def submit_batch(self, batch: ClaimBatch, time: float | None = None) -> list[Claim]:
        """Many claims at once (`Ledger.submit_batch`), each pending one announced to the
        unlocking strategy in order, at `time` or its own arrival."""
        claims = self.ledger.submit_batch(batch, time)
        for claim in claims:
            if claim.state is ClaimState.PENDING:
                at = claim.arrival if time is None else time
                self.unlocking.on_claim_submitted(self.ledger, claim, at)
        return claims

    def consume(
        self, claim_id: str, *, request_id: str, time: float, fraction: float = 1.0
    ) -> Claim:
        return self.ledger.consume(claim_id, request_id=request_id, time=time, fraction=fraction)

    def consume_amount(
        self, claim_id: str, amount: np.ndarray, *, request_id: str, time: float
    ) -> Claim:
        return self.ledger.consume_amount(claim_id, amount, request_id=request_id, time=time)

    def release(self, claim_id: str, *, request_id: str, time: float) -> Claim:
        return self.ledger.release(claim_id, request_id=request_id, time=time)

    def expire(self, claim_id: str, *, request_id: str, time: float) -> Claim:
        """Withdraw a pending claim (its owner gave up)."""
        return self.ledger.expire(claim_id, request_id=request_id, time=time)

    def forget_finished(self, before: float, limit: int | None = None) -> list[Forgotten]:
        """Drop the claims that finished at or before `before` (a front end's retention),
        the oldest `limit` of them."""
        return self.ledger.forget(self.ledger.finished_before(before, limit))

    # ------------------------------------------------------------------ rounds
    def round(self, time: float) -> RoundOutcome:
        """One scheduling round at `time`: unlock what time has unlocked, withdraw the
        claims whose timeout has passed, choose the blocks of flexible claims from the
        budget as it stands, and grant what the policy picks."""
        self.unlocking.on_tick(self.ledger, time)
        expired = self.ledger.expire_due(time)
        self.ledger.materialise(time)
        outcome = schedule_step(self.ledger, self.policy, time, self.options, self.memory)
        return RoundOutcome(time, expired, outcome.granted, outcome.result, outcome.considered)

    # ----------------------------------------------------------------- queries
    def could_ever_fit(self) -> bool:
        """Could some pending claim fit once all remaining budget is unlocked? False
        means no amount of waiting can grant anything (releases aside). Cached per
        ledger revision: unlocking alone never changes the answer."""
        key = self.ledger.revision
        if self._could_fit is None or self._could_fit[0] != key:
            self._could_fit = (key, self.ledger.any_pending_could_fit())
        return self._could_fit[1]

    def used_fraction(self) -> np.ndarray:
        """Per block, spent / capacity at its least-used order: 1 means exhausted."""
        ledger = self.ledger
        ratio = np.full(ledger.budget.capacity.shape, np.inf)
        np.divide(
            ledger.budget.spent(), ledger.budget.capacity, out=ratio, where=ledger.budget.usable
        )
        used: np.ndarray = np.minimum(ratio.min(axis=1, initial=np.inf), 1.0)
        return used
