"""When locked budget becomes unlocked: the online pacing that keeps early claims from
draining blocks that later claims will need.

Each strategy only decides the unlocked fraction of each block's capacity; the
ledger's monotone `unlock` does the bookkeeping. Hooks are called by whoever
drives the ledger (simulator, service, operator), with the current time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dpsched.core.claims import Claim
from dpsched.core.ledger import Ledger
from dpsched.errors import InputError


class Unlocking(Protocol):
    def on_block_added(self, ledger: Ledger, index: int, time: float) -> None: ...

    def on_claim_submitted(self, ledger: Ledger, claim: Claim, time: float) -> None: ...

    def on_tick(self, ledger: Ledger, time: float) -> None: ...


class _NoHooks:
    def on_block_added(self, ledger: Ledger, index: int, time: float) -> None:
        return None

    def on_claim_submitted(self, ledger: Ledger, claim: Claim, time: float) -> None:
        return None

    def on_tick(self, ledger: Ledger, time: float) -> None:
        return None


class AllUnlocked(_NoHooks):
    """Everything unlocked on arrival: offline runs and FCFS baselines."""

    def on_block_added(self, ledger: Ledger, index: int, time: float) -> None:
        ledger.unlock(np.array([1.0]), np.array([index]))


@dataclass(frozen=True)
class PerArrival(_NoHooks):
    """DPF-N (PrivateKube Alg. 1): each arriving claim unlocks 1/n of every block it asks for."""

    n: int

    def __post_init__(self) -> None:
        _positive("unlocking.n", self.n)

    def on_claim_submitted(self, ledger: Ledger, claim: Claim, time: float) -> None:
        rows = claim.block_index
        ledger.unlock(ledger.budget.unlocked_fraction[rows] + 1.0 / self.n, rows)


@dataclass(frozen=True)
class PerStep(_NoHooks):
    """DPack §3.4: at a step at time t, a block that arrived at t_j has min(ceil((t-t_j)/T), n)/n
    of its capacity unlocked."""

    n: int
    period: float

    def __post_init__(self) -> None:
        _positive("unlocking.n", self.n)
        _positive("scheduler.period", self.period)

    def on_tick(self, ledger: Ledger, time: float) -> None:
        steps = np.ceil(np.maximum(time - ledger.budget.arrival, 0.0) / self.period - 1e-12)
        ledger.unlock(np.minimum(steps, self.n) / self.n)


STEP_TOLERANCE = 1e-9
"""Slack, in steps, when counting `Lifetime` steps: a step due exactly at a round's time
is counted even if `age * steps / lifetime` rounds to just below a whole number."""


@dataclass(frozen=True)
class Lifetime(_NoHooks):
    """DPF-T (PrivateKube Alg. 2): budget unlocks linearly over the data's lifetime L.

    With `steps` n it unlocks in n equal steps instead: 1/n of the capacity every L/n
    after the block's arrival, the last one at L. This is the DPack artifact's
    `TimeUnlockingBlock` (n = 1000), offered to replay its runs; linear unlocking is the
    paper's model and our default. A step due at the very time of a round counts for
    that round, as arrivals at a round's time do.
    """

    lifetime: float
    steps: int | None = None

    def __post_init__(self) -> None:
        _positive("unlocking.lifetime", self.lifetime)
        if self.steps is not None:
            _positive("unlocking.steps", self.steps)

    def on_tick(self, ledger: Ledger, time: float) -> None:
        age = np.maximum(time - ledger.budget.arrival, 0.0)
        if self.steps is None:
            ledger.unlock(age / self.lifetime)
            return
        done = np.floor(age * self.steps / self.lifetime + STEP_TOLERANCE)
        ledger.unlock(np.minimum(done, self.steps) / self.steps)


def _positive(field: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise InputError(field, f"must be a finite number > 0, got {value}")
