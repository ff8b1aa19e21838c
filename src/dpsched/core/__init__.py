"""Blocks, claims, the budget ledger, block selectors and unlocking strategies."""

from dpsched.core.admission import TOLERANCE, fits, rows_fit
from dpsched.core.batch import BatchBuilder
from dpsched.core.blocks import BlockSpec
from dpsched.core.claims import Claim, ClaimBatch, ClaimSpec, ClaimState
from dpsched.core.explain import (
    Headroom,
    block_fit,
    block_headroom,
    waiting_reason,
    waiting_reasons,
)
from dpsched.core.ledger import Forgotten, Ledger
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
    "BatchBuilder",
    "BlockSelector",
    "BlockSpec",
    "Claim",
    "ClaimBatch",
    "ClaimSpec",
    "ClaimState",
    "Condition",
    "DatasetSelector",
    "ExplicitSelector",
    "Forgotten",
    "Headroom",
    "Ledger",
    "Lifetime",
    "PendingArrays",
    "PendingView",
    "PerArrival",
    "PerStep",
    "RecentSelector",
    "Unlocking",
    "block_fit",
    "block_headroom",
    "fits",
    "rows_fit",
    "waiting_reason",
    "waiting_reasons",
]
