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
FITS_NOW = "fits the unlocked budget now, but the policy has not chosen it"


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


def waiting_reasons(ledger: Ledger, limit: int | None = None) -> dict[str, str]:
    """Why each pending claim (in submission order; the first `limit` of them) has not
    been granted, from the budget as it stands: one vectorised pass over the entries,
    so it stays cheap for hundreds of thousands of claims."""
    arrays = ledger.pending_arrays()
    if limit is not None and limit < arrays.n:
        keep = np.zeros(arrays.n, dtype=bool)
        keep[:limit] = True
        arrays = arrays.subset(keep)
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
    n = arrays.n
    indptr = arrays.indptr
    claim_of = np.repeat(np.arange(n), np.diff(indptr))
    missing = np.flatnonzero(~fits_ever)
    locked = np.flatnonzero(fits_ever & ~fits_now)
    n_missing = np.bincount(claim_of[missing], minlength=n)
    locked = locked[n_missing[claim_of[locked]] == 0]  # budget short matters more
    n_locked = np.bincount(claim_of[locked], minlength=n)
    names = [b.id for b in ledger.blocks]
    parts: dict[int, list[str]] = {}
    shown = _first_per_claim(missing, claim_of)
    if shown.size:
        orders = _closest_orders(demand[shown], whole[blocks[shown]], usable[blocks[shown]])
        # Per (block, order): the text after the demand, shared by every claim there.
        labels = ledger.accounting.labels
        basic = ledger.accounting.mode == "basic"
        tails: dict[tuple[int, int], str] = {}
        for j, order in set(zip(blocks[shown].tolist(), orders.tolist(), strict=True)):
            where = "" if basic else f" at {labels[order]}"
            tails[j, order] = f"{where}, {max(float(whole[j, order]), 0.0):.4g} left)"
        for owner, j, order, need in zip(
            claim_of[shown].tolist(),
            blocks[shown].tolist(),
            orders.tolist(),
            demand[shown, orders].tolist(),
            strict=True,
        ):
            parts.setdefault(owner, []).append(f"{names[j]} (needs {need:.4g}{tails[j, order]}")
    shown = _first_per_claim(locked, claim_of)
    for owner, j, fraction in zip(
        claim_of[shown].tolist(),
        blocks[shown].tolist(),
        ledger.unlocked_fraction[blocks[shown]].tolist(),
        strict=True,
    ):
        parts.setdefault(owner, []).append(f"{names[j]} ({fraction:.0%} unlocked)")
    reasons: dict[str, str] = {}
    counts_missing, counts_locked = n_missing.tolist(), n_locked.tolist()
    for i, claim_id in enumerate(arrays.ids.tolist()):
        if counts_missing[i]:
            reasons[claim_id] = (
                "not enough budget left on " + ", ".join(parts[i]) + _more(counts_missing[i])
            )
        elif counts_locked[i]:
            reasons[claim_id] = (
                "waits for budget to be unlocked on "
                + ", ".join(parts[i])
                + _more(counts_locked[i])
            )
        else:
            reasons[claim_id] = FITS_NOW
    return reasons


def _first_per_claim(entries: np.ndarray, claim_of: np.ndarray) -> np.ndarray:
    """The first SHOWN_BLOCKS of `entries` (sorted) of each claim."""
    owners = claim_of[entries]
    rank = np.arange(entries.size) - np.searchsorted(owners, owners, side="left")
    kept: np.ndarray = entries[rank < SHOWN_BLOCKS]
    return kept


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
        return FITS_NOW
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
        return "not enough budget left on " + ", ".join(parts) + _more(len(missing))
    locked = np.flatnonzero(~fits_now).tolist()
    parts = [
        f"{claim.block_ids[k]} ({ledger.unlocked_fraction[rows[k]]:.0%} unlocked)"
        for k in locked[:SHOWN_BLOCKS]
    ]
    return "waits for budget to be unlocked on " + ", ".join(parts) + _more(len(locked))


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
