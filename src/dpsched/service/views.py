"""What the API returns for blocks and claims (JSON-able dicts; the keys are a contract)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dpsched.budget.conversion import rdp_to_epsilon
from dpsched.core import Claim, ClaimState, Ledger, block_fit, block_headroom, waiting_reason
from dpsched.service.state import ClaimMeta

GRANTED = (ClaimState.ALLOCATED, ClaimState.CONSUMED, ClaimState.RELEASED)


def block_view(ledger: Ledger, index: int) -> dict[str, Any]:
    spec = ledger.blocks[index]
    room = block_headroom(ledger)[index]
    alphas = list(ledger.accounting.alphas) if ledger.accounting.mode == "rdp" else None
    return {
        "id": spec.id,
        "dataset": spec.dataset,
        "dimensions": spec.dimensions,
        "arrival": spec.arrival,
        "size": spec.size,
        "delta": spec.delta,
        "alphas": alphas,
        "capacity": ledger.budget.capacity[index].tolist(),
        "locked": ledger.budget.locked[index].tolist(),
        "unlocked": ledger.budget.unlocked[index].tolist(),
        "reserved": ledger.budget.reserved[index].tolist(),
        "allocated": ledger.budget.allocated[index].tolist(),
        "consumed": ledger.budget.consumed[index].tolist(),
        "unlocked_fraction": float(ledger.budget.unlocked_fraction[index]),
        "spent_epsilon": ledger.spent_epsilon(spec.id),
        "claims_holding": int(ledger.budget.holders[index]),
        "best_order": None if room.order is None or alphas is None else alphas[room.order],
        "remaining_at_best": room.remaining,
    }


def granted_epsilon(ledger: Ledger, claim: Claim) -> float:
    """The epsilon a grant costs: an elastic grant's own; else, per block at the block's
    delta (the ledger's where it has none), the demand converted, and the largest."""
    if claim.grant is not None and "epsilon" in claim.grant:
        return float(claim.grant["epsilon"])
    accounting = ledger.accounting
    if accounting.mode == "basic":
        return float(claim.demand[:, 0].max())
    worst = 0.0
    seen: set[tuple[bytes, float]] = set()
    for row, j in zip(claim.demand, claim.block_index.tolist(), strict=True):
        delta = ledger.blocks[j].delta or accounting.delta
        key = (row.tobytes(), delta)
        if key not in seen:
            seen.add(key)
            worst = max(worst, rdp_to_epsilon(accounting.alphas, row, delta))
    return worst


def _per_block(claim: Claim, matrix: np.ndarray) -> dict[str, list[float]]:
    return {b: row.tolist() for b, row in zip(claim.block_ids, matrix, strict=True)}


def claim_view(ledger: Ledger, meta: ClaimMeta, claim: Claim) -> dict[str, Any]:
    """A claim as its tenant sees it: `granted` is what it was allocated (null until then),
    `remaining` what it may still consume, `reason` why it waits or was refused. A
    flexible claim's `blocks` are the ones chosen (while pending: the current choice),
    `actual_data` their records."""
    if claim.state is ClaimState.PENDING:
        reason: str | None = waiting_reason(ledger, claim)
    else:
        reason = claim.reason
    granted = claim.state in GRANTED
    return {
        "id": meta.id,
        "state": claim.state.value,
        "blocks": list(claim.block_ids),
        "actual_data": ledger.data_of(claim),
        "grant": claim.grant,
        "demand": _per_block(claim, claim.demand),
        "granted": _per_block(claim, claim.demand) if granted else None,
        "remaining": _per_block(claim, claim.allocated) if granted else None,
        "consumed": _per_block(claim, claim.consumed),
        "reason": reason,
        "epsilon": granted_epsilon(ledger, claim) if granted else None,
        "weight": claim.weight,
        "arrival": claim.arrival,
        "timeout": claim.timeout,
        "allocated_at": claim.allocated_at,
        "finished_at": claim.finished_at,
    }


def fit_view(
    ledger: Ledger,
    block_ids: tuple[str, ...],
    index: np.ndarray,
    demand: np.ndarray,
    reserved: np.ndarray | None = None,
) -> dict[str, Any]:
    """Would this demand fit, block by block (dry run, explain)."""
    rows = block_fit(ledger, index, demand, reserved)
    return {
        "fits_now": bool(rows) and all(r["fits_now"] for r in rows),
        "fits_when_unlocked": bool(rows) and all(r["fits_when_unlocked"] for r in rows),
        "blocks": dict(zip(block_ids, rows, strict=True)),
    }
