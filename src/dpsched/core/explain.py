"""Plain-language answers to the two questions users ask of a ledger: why does my claim
wait, and how much room does a block have left?

Both follow the admission rule (`core.admission`): a block admits a demand at SOME
usable order, so what matters per block is its best order, not the smallest or the
average over orders (RDP lets the other orders go past capacity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dpsched.core.admission import TOLERANCE
from dpsched.core.claims import Claim, ClaimState
from dpsched.core.ledger import Ledger
from dpsched.core.pending import PendingArrays, stacked
from dpsched.core.resolution import aside_reason

SHOWN_BLOCKS = 3
"""Blocks named in one reason; the rest are counted."""
FITS_NOW = "fits the unlocked budget now, but the policy has not chosen it"
OVER_BY_A_HAIR = (
    "would take {} over its capacity by less than the policies' 1e-9 slack: exact "
    "accounting refuses it until budget is released"
)


@dataclass(frozen=True)
class Headroom:
    """A block's room at its best order: the usable order with the largest remaining
    fraction of capacity (None when no order has room left)."""

    order: int | None
    remaining: float
    fraction: float


def block_headroom(ledger: Ledger) -> list[Headroom]:
    """Per block, the remaining budget (capacity - allocated - consumed) at its best order."""
    remaining = ledger.budget.remaining()
    capacity = ledger.budget.capacity
    usable = ledger.budget.usable
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(usable, remaining / np.where(usable, capacity, 1.0), -np.inf)
    best = np.argmax(fraction, axis=1) if fraction.size else np.zeros(0, dtype=np.int64)
    rows = np.arange(len(best))
    result = []
    for j, order in zip(rows.tolist(), best.tolist(), strict=True):
        value = float(fraction[j, order])
        if not np.isfinite(value) or value <= TOLERANCE:
            result.append(Headroom(None, 0.0, 0.0))
        else:
            result.append(Headroom(order, float(remaining[j, order]), value))
    return result


def waiting_reasons(ledger: Ledger, limit: int | None = None) -> dict[str, str]:
    """Why each pending claim (in submission order; the first `limit` of them) has not
    been granted, from the budget as it stands: one vectorised pass over the entries,
    so it stays cheap for hundreds of thousands of claims."""
    arrays = ledger.pending_arrays()
    if limit is not None and limit < arrays.n:
        keep = np.zeros(arrays.n, dtype=bool)
        keep[:limit] = True
        arrays = arrays.subset(keep)
    reasons = _explain(ledger, arrays)
    for (
        claim_id
    ) in ledger.pending_set.aside:  # flexible claims with no valid choice: not in the arrays
        if limit is None or len(reasons) < limit:
            reasons[claim_id] = aside_reason(ledger.claim(claim_id))
    return reasons


def waiting_reason(ledger: Ledger, claim: Claim) -> str:
    """Why one pending claim waits (its own reservation counts as available to it)."""
    if claim.state is not ClaimState.PENDING:
        return f"not pending: {claim.state.value}"
    if ledger.waits_aside(claim.id):
        return aside_reason(claim)
    rows = claim.block_index
    room = ledger.budget.unlocked[rows] + claim.reserved + TOLERANCE
    if ((claim.demand <= room) & ledger.budget.usable[rows]).any(axis=1).all():
        # the common answer, without building the general case's arrays
        return _fits_now_reason(ledger, claim.block_ids, rows, claim.demand)
    # The claim's own rows as a one-claim CSR: the cost does not grow with the ledger.
    return _explain(ledger, stacked([claim], [0], ledger.accounting.dims))[claim.id]


def _explain(ledger: Ledger, arrays: PendingArrays) -> dict[str, str]:
    if arrays.n == 0:
        return {}
    blocks = arrays.entry_block
    demand = arrays.entry_demand
    usable = ledger.budget.usable[blocks]
    unlocked = ledger.budget.unlocked[blocks]
    if ledger.budget.reserved.any():  # round robin: a claim's reservation is available to it
        unlocked = unlocked + np.vstack([c.reserved for c in arrays.claims.tolist()])
    whole = unlocked + ledger.budget.locked[blocks]
    fits_now = ((demand <= unlocked + TOLERANCE) & usable).any(axis=1)
    fits_ever = ((demand <= whole + TOLERANCE) & usable).any(axis=1)
    n = arrays.n
    claim_of = np.repeat(np.arange(n), np.diff(arrays.indptr))
    missing = np.flatnonzero(~fits_ever)
    locked = np.flatnonzero(fits_ever & ~fits_now)
    n_missing = np.bincount(claim_of[missing], minlength=n)
    locked = locked[n_missing[claim_of[locked]] == 0]  # budget short matters more
    n_locked = np.bincount(claim_of[locked], minlength=n)
    names = [b.id for b in ledger.blocks]
    parts: dict[int, list[str]] = {}
    shown = _first_per_claim(missing, claim_of)
    if shown.size:
        orders = _closest_orders(demand[shown], whole[shown], usable[shown])
        labels = ledger.accounting.labels
        basic = ledger.accounting.mode == "basic"
        for owner, j, order, need, left in zip(
            claim_of[shown].tolist(),
            blocks[shown].tolist(),
            orders.tolist(),
            demand[shown, orders].tolist(),
            np.maximum(whole[shown, orders], 0.0).tolist(),
            strict=True,
        ):
            where = "" if basic else f" at {labels[order]}"
            parts.setdefault(owner, []).append(
                f"{names[j]} (needs {need:.4g}{where}, {left:.4g} left)"
            )
    shown = _first_per_claim(locked, claim_of)
    for owner, j, fraction in zip(
        claim_of[shown].tolist(),
        blocks[shown].tolist(),
        ledger.budget.unlocked_fraction[blocks[shown]].tolist(),
        strict=True,
    ):
        parts.setdefault(owner, []).append(f"{names[j]} ({fraction:.0%} unlocked)")
    # Claims that plan to fit now: does the ledger's exact check agree?
    planned = np.flatnonzero(((n_missing == 0) & (n_locked == 0))[claim_of])
    refused = planned[~ledger.budget.within_capacity(blocks[planned], demand[planned])]
    over_by_a_hair: dict[int, list[str]] = {}
    for owner, j in zip(claim_of[refused].tolist(), blocks[refused].tolist(), strict=True):
        over_by_a_hair.setdefault(owner, []).append(names[j])
    reasons: dict[str, str] = {}
    counts_missing, counts_locked = n_missing.tolist(), n_locked.tolist()
    for i, claim_id in enumerate(arrays.ids.tolist()):
        if counts_missing[i]:
            text = "not enough budget left on " + ", ".join(parts[i]) + _more(counts_missing[i])
        elif counts_locked[i]:
            text = "waits for budget to be unlocked on " + ", ".join(parts[i])
            text += _more(counts_locked[i])
        elif i in over_by_a_hair:
            text = OVER_BY_A_HAIR.format(", ".join(over_by_a_hair[i]))
        else:
            text = FITS_NOW
        reasons[claim_id] = text
    return reasons


def _fits_now_reason(
    ledger: Ledger, block_ids: list[str] | tuple[str, ...], rows: np.ndarray, demand: np.ndarray
) -> str:
    """FITS_NOW, unless the ledger's exact check refuses what the policies' slack allows."""
    over = np.flatnonzero(~ledger.budget.within_capacity(rows, demand))
    if over.size:
        return OVER_BY_A_HAIR.format(", ".join(block_ids[k] for k in over.tolist()))
    return FITS_NOW


def _first_per_claim(entries: np.ndarray, claim_of: np.ndarray) -> np.ndarray:
    """The first SHOWN_BLOCKS of `entries` (sorted) of each claim."""
    owners = claim_of[entries]
    rank = np.arange(entries.size) - np.searchsorted(owners, owners, side="left")
    kept: np.ndarray = entries[rank < SHOWN_BLOCKS]
    return kept


def _more(count: int) -> str:
    extra = count - SHOWN_BLOCKS
    return f" and {extra} more block{'s' if extra > 1 else ''}" if extra > 0 else ""


def _closest_orders(demand: np.ndarray, available: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per row, the usable order where the demand is the smallest multiple of what is left
    (where nothing is left at any order: the usable order closest to having room)."""
    positive = usable & (available > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(positive, demand / np.where(positive, available, 1.0), np.inf)
    best = np.argmin(ratio, axis=1)
    nothing_left = np.isinf(ratio).all(axis=1)
    least_over = np.argmax(np.where(usable, available, -np.inf), axis=1)
    chosen: np.ndarray = np.where(nothing_left, least_over, best)
    return chosen


def block_fit(
    ledger: Ledger, block_index: np.ndarray, demand: np.ndarray, reserved: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """Per block of a demand (one row each): the demand, unlocked and remaining budget per
    order, and whether it fits now and whether it could once everything is unlocked (at
    some usable order, the admission rule). `reserved`: what is already set aside for it."""
    usable = ledger.budget.usable[block_index]
    unlocked = ledger.budget.unlocked[block_index] + (0.0 if reserved is None else reserved)
    whole = unlocked + ledger.budget.locked[block_index]
    fits_now = ((demand <= unlocked + TOLERANCE) & usable).any(axis=1).tolist()
    fits_ever = ((demand <= whole + TOLERANCE) & usable).any(axis=1).tolist()
    remaining = ledger.budget.remaining()[block_index]
    return [
        {
            "demand": demand[k].tolist(),
            "unlocked": unlocked[k].tolist(),
            "remaining": remaining[k].tolist(),
            "fits_now": bool(fits_now[k]),
            "fits_when_unlocked": bool(fits_ever[k]),
        }
        for k in range(block_index.size)
    ]
