"""What the operator writes on its objects: the status of a PrivacyClaim or a
PrivateBlock, made from the service's view of it, and the Events' subjects.

Statuses are pure functions of a view (and, for a condition's lastTransitionTime, of the
status already written), so a status written twice from the same journal state is the
same status: the mirror may redo a pass without anything moving.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dpsched.k8s.resources import API_VERSION, ClaimPhase

PHASES = {
    "pending": ClaimPhase.PENDING,
    "allocated": ClaimPhase.ALLOCATED,
    "consumed": ClaimPhase.CONSUMED,
    "released": ClaimPhase.RELEASED,
    "expired": ClaimPhase.EXPIRED,
    "rejected": ClaimPhase.REJECTED,
}
PHASE_EVENTS = {
    ClaimPhase.ALLOCATED.value: ("Granted", False),
    ClaimPhase.CONSUMED.value: ("Consumed", False),
    ClaimPhase.RELEASED.value: ("Released", False),
    ClaimPhase.EXPIRED.value: ("Expired", True),
    ClaimPhase.REJECTED.value: ("Rejected", True),
}
"""The Event posted when a claim enters a phase: (reason, is a warning)."""


def involved(obj: dict[str, Any], api_version: str = API_VERSION) -> dict[str, Any]:
    """The object an Event is about, as an Event's `involvedObject` names it."""
    meta = obj["metadata"]
    found = {"apiVersion": api_version, "name": meta["name"], "uid": meta.get("uid")}
    if meta.get("namespace"):
        found["namespace"] = meta["namespace"]
    return found


def consumed_fraction(view: dict[str, Any]) -> float:
    """How much of its grant the claim has consumed (the largest share on any entry)."""
    best = 0.0
    for block, demand in view["demand"].items():
        for d, c in zip(demand, view["consumed"].get(block, []), strict=False):
            if d > 0 and d != float("inf"):
                best = max(best, c / d)
    return min(best, 1.0)


def claim_message(view: dict[str, Any]) -> str:
    state = view["state"]
    if state in ("allocated", "consumed", "released"):
        eps = view.get("epsilon")
        text = f"{state} on {', '.join(view['blocks'])}"
        return text + (f" (epsilon {eps:.4g})" if isinstance(eps, float) else "")
    return f"{state}: {view.get('reason') or 'no reason given'}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(
    old: dict[str, Any] | None, kind: str, ok: bool, reason: str, message: str
) -> dict[str, Any]:
    """A condition whose lastTransitionTime moves only when its status changes."""
    status = "True" if ok else "False"
    previous = next((c for c in (old or {}).get("conditions", []) if c.get("type") == kind), None)
    since = previous["lastTransitionTime"] if previous and previous["status"] == status else _now()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:1024],
        "lastTransitionTime": since,
    }


def claim_status(view: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    phase = PHASES[view["state"]]
    granted = phase in (ClaimPhase.ALLOCATED, ClaimPhase.CONSUMED, ClaimPhase.RELEASED)
    blocks = list(view["blocks"]) if granted else []
    return {
        "phase": phase.value,
        "blocks": blocks,
        "blockCount": len(blocks),
        "epsilon": view.get("epsilon"),
        "grant": view.get("grant"),
        "consumedFraction": consumed_fraction(view) if granted else 0.0,
        "actualData": view.get("actual_data") if granted else None,
        "reason": view.get("reason"),
        "conditions": [
            _condition(old, "Granted", granted, phase.value, claim_message(view)),
        ],
    }


def rejected_status(reason: str) -> dict[str, Any]:
    """The status of a claim refused before the engine saw it (the journal has no
    record of it, so the mirror never writes this one)."""
    return {
        "phase": ClaimPhase.REJECTED.value,
        "blocks": [],
        "blockCount": 0,
        "reason": reason,
        "conditions": [_condition(None, "Granted", False, "Rejected", reason)],
    }


def block_status(view: dict[str, Any]) -> dict[str, Any]:
    alphas = view.get("alphas")
    orders = [f"alpha={a:g}" for a in alphas] if alphas else ["epsilon"]
    capacity = view["capacity"]
    total = sum(capacity) or 1.0
    unlocked_share = 100.0 * float(view.get("unlocked_fraction", 0.0))
    remaining = view.get("remaining_at_best")
    return {
        "orders": orders,
        "budget": {
            part: view[part] for part in ("capacity", "locked", "unlocked", "allocated", "consumed")
        },
        "spentEpsilon": view.get("spent_epsilon"),
        "unlockedPercent": round(unlocked_share, 3),
        "claims": int(view["claims_holding"]),
        "exhausted": remaining is not None and remaining <= 1e-12 * total,
        "reason": None,
    }
