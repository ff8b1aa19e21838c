"""Plain-language answers to the two questions users ask of a ledger: why does my claim
wait, and how much room does a block have left?

Both follow the admission rule (`core.admission`): a block admits a demand at SOME
usable order, so what matters per block is its best order, not the smallest or the
average over orders (RDP lets the other orders go past capacity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpsched.core.admission import TOLERANCE
from dpsched.core.claims import Claim, ClaimState
from dpsched.core.ledger import Ledger

SHOWN_BLOCKS = 3
"""Blocks named in one reason; the rest are counted."""


@dataclass(frozen=True)
class Headroom:
    """A block's room at its best order: the usable order with the largest remaining
    fraction of capacity (None when no order has room left)."""

    order: int | None
    remaining: float
    fraction: float


def block_headroom(ledger: Ledger) -> list[Headroom]:
    """Per block, the remaining budget (capacity - allocated - consumed) at its best order."""
    remaining = ledger.remaining()
    capacity = ledger.capacity
    usable = ledger.usable
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


def waiting_reasons(ledger: Ledger) -> dict[str, str]:
    """Why each pending claim (in submission order) has not been granted, from the
    budget as it stands: one vectorised pass over all pending entries, so it stays
    cheap for hundreds of thousands of claims."""
    arrays = ledger.pending_arrays()
    if arrays.n == 0:
        return {}
    blocks = arrays.entry_block
    demand = arrays.entry_demand
    usable = ledger.usable
    unlocked = ledger.unlocked
    if ledger.reserved.any():
        claims = arrays.claims.tolist()
        return {c.id: waiting_reason(ledger, c) for c in claims}
    whole = unlocked + ledger.locked
    room_now = np.where(usable, unlocked + TOLERANCE, -np.inf)
    room_ever = np.where(usable, whole + TOLERANCE, -np.inf)
    fits_now = (demand <= room_now[blocks]).any(axis=1)
    fits_ever = (demand <= room_ever[blocks]).any(axis=1)
    short = np.flatnonzero(~fits_ever)
    closest = np.zeros(blocks.size, dtype=np.int64)
    if short.size:
        closest[short] = _closest_orders(demand[short], whole[blocks[short]], usable[blocks[short]])
    labels = ledger.accounting.labels
    names = [b.id for b in ledger.blocks]
    basic = ledger.accounting.mode == "basic"
    now_list, ever_list = fits_now.tolist(), fits_ever.tolist()
    bounds = arrays.indptr.tolist()
    block_list = blocks.tolist()
    reasons: dict[str, str] = {}
    for i, claim_id in enumerate(arrays.ids.tolist()):
        lo, hi = bounds[i], bounds[i + 1]
        missing = [e for e in range(lo, hi) if not ever_list[e]]
        if missing:
            parts = []
            for e in missing[:SHOWN_BLOCKS]:
                order = int(closest[e])
                j = block_list[e]
                where = "" if basic else f" at {labels[order]}"
                parts.append(
                    f"{names[j]} (needs {demand[e, order]:.4g}{where}, "
                    f"{max(float(whole[j, order]), 0.0):.4g} left)"
                )
            reasons[claim_id] = "not enough budget left on " + ", ".join(parts) + _more(missing)
            continue
        locked = [e for e in range(lo, hi) if not now_list[e]]
        if not locked:
            reasons[claim_id] = "fits the unlocked budget now, but the policy has not chosen it"
            continue
        parts = [
            f"{names[block_list[e]]} ({ledger.unlocked_fraction[block_list[e]]:.0%} unlocked)"
            for e in locked[:SHOWN_BLOCKS]
        ]
        reasons[claim_id] = "waits for budget to be unlocked on " + ", ".join(parts) + _more(locked)
    return reasons


def waiting_reason(ledger: Ledger, claim: Claim) -> str:
    """Why one pending claim waits (its own reservation counts as available to it)."""
    if claim.state is not ClaimState.PENDING:
        return f"not pending: {claim.state.value}"
    rows = claim.block_index
    usable = ledger.usable[rows]
    unlocked = ledger.unlocked[rows] + claim.reserved
    whole = unlocked + ledger.locked[rows]
    fits_now = ((claim.demand <= unlocked + TOLERANCE) & usable).any(axis=1)
    fits_ever = ((claim.demand <= whole + TOLERANCE) & usable).any(axis=1)
    if fits_now.all():
        return "fits the unlocked budget now, but the policy has not chosen it"
    labels = ledger.accounting.labels
    missing = np.flatnonzero(~fits_ever).tolist()
    if missing:
        orders = _closest_orders(claim.demand[missing], whole[missing], usable[missing]).tolist()
        parts = []
        for k, order in zip(missing[:SHOWN_BLOCKS], orders, strict=False):
            where = "" if ledger.accounting.mode == "basic" else f" at {labels[order]}"
            parts.append(
                f"{claim.block_ids[k]} (needs {claim.demand[k, order]:.4g}{where}, "
                f"{max(float(whole[k, order]), 0.0):.4g} left)"
            )
        return "not enough budget left on " + ", ".join(parts) + _more(missing)
    locked = np.flatnonzero(~fits_now).tolist()
    parts = [
        f"{claim.block_ids[k]} ({ledger.unlocked_fraction[rows[k]]:.0%} unlocked)"
        for k in locked[:SHOWN_BLOCKS]
    ]
    return "waits for budget to be unlocked on " + ", ".join(parts) + _more(locked)


def _more(items: list[int]) -> str:
    extra = len(items) - SHOWN_BLOCKS
    return f" and {extra} more block{'s' if extra > 1 else ''}" if extra > 0 else ""


def _closest_orders(demand: np.ndarray, available: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per row, the usable order where the demand is the smallest multiple of what is left
    (the first usable order when nothing is left anywhere)."""
    positive = usable & (available > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(positive, demand / np.where(positive, available, 1.0), np.inf)
    best = np.argmin(ratio, axis=1)
    nothing_left = np.isinf(ratio).all(axis=1)
    first_usable = np.argmax(usable, axis=1)
    chosen: np.ndarray = np.where(nothing_left, first_usable, best)
    return chosen
