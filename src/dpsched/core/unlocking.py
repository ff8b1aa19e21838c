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
        ledger.unlock(ledger.unlocked_fraction[rows] + 1.0 / self.n, rows)


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
        steps = np.ceil(np.maximum(time - ledger.block_arrival, 0.0) / self.period - 1e-12)
        ledger.unlock(np.minimum(steps, self.n) / self.n)


@dataclass(frozen=True)
class Lifetime(_NoHooks):
    """DPF-T (PrivateKube Alg. 2): budget unlocks linearly over the data's lifetime L."""

    lifetime: float

    def __post_init__(self) -> None:
        _positive("unlocking.lifetime", self.lifetime)

    def on_tick(self, ledger: Ledger, time: float) -> None:
        ledger.unlock(np.maximum(time - ledger.block_arrival, 0.0) / self.lifetime)


def _positive(field: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise InputError(field, f"must be a finite number > 0, got {value}")
