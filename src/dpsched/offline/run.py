"""Run one policy on an instance and report it in the `dpsched schedule --json` contract."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dpsched.core import ClaimState, Ledger
from dpsched.offline.instance import Instance
from dpsched.policies import get_policy, schedule_step


def run_policy(
    instance: Instance, policy_name: str, options: Mapping[str, Any] | None = None
) -> tuple[Ledger, dict[str, Any]]:
    """Schedule the instance once; return the final ledger and the JSON report.

    Report keys are a contract (external scripts read them): policy, allocated,
    n_allocated, total_weight, runtime_s, status, mip_gap, blocks{remaining,
    spent_epsilon}. Extra keys may be added, never renamed.
    """
    policy = get_policy(policy_name)
    parsed = policy.options(options)
    ledger = instance.ledger()
    outcome = schedule_step(ledger, policy, time=0.0, options=parsed)
    return ledger, schedule_report(ledger, policy_name, outcome.granted, outcome.result)


def schedule_report(
    ledger: Ledger, policy_name: str, granted: list[str], result: Any
) -> dict[str, Any]:
    weights = {c.id: c.weight for c in ledger.claims}
    remaining = ledger.remaining()
    rejected = [c.id for c in ledger.claims if c.state is ClaimState.REJECTED]
    return {
        "policy": policy_name,
        "allocated": granted,
        "n_allocated": len(granted),
        "total_weight": float(sum(weights[c] for c in granted)),
        "runtime_s": result.runtime_s,
        "status": result.status,
        "mip_gap": result.mip_gap,
        "blocks": {
            block.id: {
                "remaining": remaining[j].tolist(),
                "spent_epsilon": ledger.spent_epsilon(block.id),
            }
            for j, block in enumerate(ledger.blocks)
        },
        "details": dict(result.details),
        "n_tasks": len(weights),
        "rejected": rejected,
    }
