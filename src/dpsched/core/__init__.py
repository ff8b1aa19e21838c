"""Blocks, claims, the budget ledger, block selectors and unlocking strategies."""

from dpsched.core.admission import TOLERANCE, fits, rows_fit
from dpsched.core.blocks import BlockSpec
from dpsched.core.claims import Claim, ClaimSpec, ClaimState
from dpsched.core.ledger import Ledger
from dpsched.core.pending import PendingArrays, PendingView
from dpsched.core.selectors import (
    BlockSelector,
    Condition,
    DatasetSelector,
    ExplicitSelector,
    RecentSelector,
)
from dpsched.core.unlocking import AllUnlocked, Lifetime, PerArrival, PerStep, Unlocking

__all__ = [
    "TOLERANCE",
    "AllUnlocked",
    "BlockSelector",
    "BlockSpec",
    "Claim",
    "ClaimSpec",
    "ClaimState",
    "Condition",
    "DatasetSelector",
    "ExplicitSelector",
    "Ledger",
    "Lifetime",
    "PendingArrays",
    "PendingView",
    "PerArrival",
    "PerStep",
    "RecentSelector",
    "Unlocking",
    "fits",
    "rows_fit",
]
