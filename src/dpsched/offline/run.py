"""Run one policy on an instance and report it in the `dpsched schedule --json` contract."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dpsched.core import AllUnlocked, ClaimState, Ledger, block_headroom, waiting_reasons
from dpsched.engine import Engine
from dpsched.offline.instance import Instance, bulk_allocation
from dpsched.policies import get_policy


def run_policy(
    instance: Instance,
    policy_name: str,
    options: Mapping[str, Any] | None = None,
    explain: int | None = None,
) -> tuple[Ledger, dict[str, Any]]:
    """One engine round at t = 0 on the instance (everything unlocked); return the final
    ledger and the JSON report (with the reasons of the first `explain` unallocated
    claims; None: all of them)."""
    policy = get_policy(policy_name)
    engine = Engine(instance.ledger(), AllUnlocked(), policy, options)
    with bulk_allocation():
        outcome = engine.round(0.0)
        report = schedule_report(
            engine.ledger, policy_name, outcome.granted, outcome.result, explain
        )
    return engine.ledger, report


def schedule_report(
    ledger: Ledger,
    policy_name: str,
    granted: list[str],
    result: Any,
    explain: int | None = None,
) -> dict[str, Any]:
    """The report. Keys are a contract (external scripts read them): policy, allocated,
    n_allocated, total_weight, runtime_s, status, mip_gap, blocks{remaining,
    spent_epsilon}, n_tasks, rejected, details. Keys may be added, never renamed (except
    `rejected`, a list of ids until 0.1 and now of {id, reason}; the ids are in
    `rejected_ids`).

    `grants` has, per allocated claim, the blocks it got (`chosen_blocks`: a flexible
    claim's choice), their records (`actual_data`), and for an epsilon range the
    `granted_epsilon` and the `noise` to run with, for `min_demand` the
    `granted_fraction` of the way to `demand` (null otherwise).

    `rejected` lists {id, reason} for claims that can never run; `unallocated` lists
    {id, reason} for claims still waiting (the first `explain` of them; None: all),
    and `n_unallocated` counts them all. Per block, `remaining` is the raw vector
    (capacity - allocated - consumed, per order; orders RDP let go past capacity are
    negative), and `best_order` / `remaining_at_best` / `remaining_fraction` say how
    much room the block has where it can still admit something.
    """
    weights = {c.id: c.weight for c in ledger.claims}
    remaining = ledger.budget.remaining()
    headroom = block_headroom(ledger)
    alphas = ledger.accounting.alphas if ledger.accounting.mode == "rdp" else None
    rejected = [
        {"id": c.id, "reason": c.reason or ""}
        for c in ledger.claims
        if c.state is ClaimState.REJECTED
    ]
    unallocated = [{"id": k, "reason": v} for k, v in waiting_reasons(ledger, explain).items()]
    blocks: dict[str, Any] = {}
    for j, block in enumerate(ledger.blocks):
        room = headroom[j]
        order = None if room.order is None or alphas is None else alphas[room.order]
        blocks[block.id] = {
            "remaining": remaining[j].tolist(),
            "spent_epsilon": ledger.spent_epsilon(block.id),
            "best_order": order,
            "remaining_at_best": room.remaining,
            "remaining_fraction": room.fraction,
        }
    return {
        "policy": policy_name,
        "accounting": ledger.accounting.mode,
        "allocated": granted,
        "n_allocated": len(granted),
        "total_weight": float(sum(weights[c] for c in granted)),
        "runtime_s": result.runtime_s,
        "status": result.status,
        "mip_gap": result.mip_gap,
        "blocks": blocks,
        "details": dict(result.details),
        "n_tasks": len(weights),
        "rejected": rejected,
        "rejected_ids": [r["id"] for r in rejected],
        "unallocated": unallocated,
        "n_unallocated": ledger.pending_count,
        "grants": {claim_id: _grant(ledger, claim_id) for claim_id in granted},
    }


def _grant(ledger: Ledger, claim_id: str) -> dict[str, Any]:
    claim = ledger.claim(claim_id)
    grant = claim.grant or {}
    return {
        "chosen_blocks": list(claim.block_ids),
        "actual_data": ledger.data_of(claim),
        "granted_epsilon": grant.get("epsilon"),
        "granted_fraction": grant.get("fraction"),
        "noise": {k: v for k, v in grant.items() if k not in ("epsilon", "fraction")} or None,
    }
