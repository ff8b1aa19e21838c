"""Pods that ask for budget: the pod-annotation design, with a scheduling gate.

The design is the note "Pod and Privacy Budget", written for Sage (Lécuyer et al.,
"Privacy Accounting and Quality Control in the Sage Differentially Private ML
Platform", SOSP 2019): a Pod states its request (data dimensions, amounts of data and
budget) in annotations, and what it was granted is written back to its annotations.

A Pod opts in with `dp-mode: "true"` and `dp-request: "true"` and states what it wants
in annotations (all values are strings; the README's "Run on Kubernetes" has the table):
`dp-dataset`; `dp-start-X`/`dp-end-X` for dimension X in [start, end) (`user-id` is the
dimension `user_id`); `dp-min-number-of-data`/`dp-expected-number-of-data` (flexible
block choice); `dp-min-epsilon`/`dp-expected-epsilon` (+ `-delta`: the grant is the
most in the range that fits); `dp-mechanism`, `dp-sampling-rate`, `dp-steps` (RDP: the
mechanism calibrated to the granted epsilon); or `dp-demand` (a demand as JSON);
`dp-min-blocks`, `dp-max-blocks`, `dp-weight`, `dp-timeout`; `dp-consumed-fraction`
(checkpoints); `dp-on-exit: consume | release` (what happens to a grant when it ends).

The admission webhook adds the scheduling gate to such Pods at creation (gates can only
be added then: KEP-3521) and refuses a Pod whose annotations do not parse, naming the
annotation. The operator then claims the budget; when it is granted it writes the
result annotations and removes the gate.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

from dpsched.errors import InputError

GATE = "dpsched.io/privacy-budget"
PREFIX = "dp-"
REQUEST_KEYS = (
    "dp-min-number-of-data",
    "dp-expected-number-of-data",
    "dp-min-epsilon",
    "dp-min-delta",
    "dp-expected-epsilon",
    "dp-expected-delta",
)
"""What the design removes once the request is granted."""
RESERVED = frozenset(
    {
        "dp-mode",
        "dp-request",
        "dp-dataset",
        "dp-mechanism",
        "dp-sampling-rate",
        "dp-steps",
        "dp-demand",
        "dp-min-blocks",
        "dp-max-blocks",
        "dp-weight",
        "dp-timeout",
        "dp-consumed-fraction",
        "dp-on-exit",
        "dp-actual-epsilon",
        "dp-actual-delta",
        "dp-actual-number-of-data",
        "dp-acquired-blocks",
        "dp-consumed-blocks",
        "dp-claim",
        *REQUEST_KEYS,
    }
)


def wants_budget(annotations: Mapping[str, str] | None) -> bool:
    found = annotations or {}
    return found.get("dp-mode") == "true" and found.get("dp-request") == "true"


def _number(annotations: dict[str, str], key: str, *, integer: bool = False) -> float | None:
    raw = annotations.get(key)
    if raw is None:
        return None
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise InputError(key, f"must be {kind} written as a string, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(key, f"must be a finite non-negative number, got {raw!r}")
    return value


def claim_from_annotations(annotations: dict[str, str]) -> dict[str, Any]:
    """The PrivacyClaim spec (instance format) a Pod's annotations ask for."""
    dataset = annotations.get("dp-dataset")
    if not dataset:
        raise InputError("dp-dataset", 'is required with dp-request: "true"')
    where = _ranges(annotations)
    spec: dict[str, Any] = {"blocks": {"dataset": dataset, "where": where}}
    spec.update(_demand(annotations))
    counts = {
        "min_data": _number(annotations, "dp-min-number-of-data", integer=True),
        "expected_data": _number(annotations, "dp-expected-number-of-data", integer=True),
        "min_blocks": _number(annotations, "dp-min-blocks", integer=True),
        "max_blocks": _number(annotations, "dp-max-blocks", integer=True),
    }
    least, hoped = counts["min_data"], counts["expected_data"]
    if least is not None and hoped is not None and hoped < least:
        raise InputError("dp-expected-number-of-data", "must be >= dp-min-number-of-data")
    for key in ("min_blocks", "max_blocks"):
        if counts[key] == 0:
            raise InputError(f"dp-{key.replace('_', '-')}", "must be at least 1")
    spec.update({k: int(v) for k, v in counts.items() if v is not None})
    for key, name in (("dp-weight", "weight"), ("dp-timeout", "timeout")):
        value = _number(annotations, key)
        if value is not None:
            if value == 0:
                raise InputError(key, "must be > 0")
            spec[name] = value
    consumed = _number(annotations, "dp-consumed-fraction")
    if consumed is not None and consumed > 1:
        raise InputError("dp-consumed-fraction", "must be between 0 and 1")
    on_exit = annotations.get("dp-on-exit", "consume")
    if on_exit not in ("consume", "release"):
        raise InputError("dp-on-exit", f"must be 'consume' or 'release', got {on_exit!r}")
    return spec


def _ranges(annotations: dict[str, str]) -> list[str]:
    where = []
    starts = {
        k[len("dp-start-") :]
        for k in annotations
        if k.startswith("dp-start-") and k not in RESERVED
    }
    ends = {
        k[len("dp-end-") :] for k in annotations if k.startswith("dp-end-") and k not in RESERVED
    }
    for name in sorted(starts ^ ends):
        missing = "dp-end-" if name in starts else "dp-start-"
        raise InputError(f"{missing}{name}", "a dimension range needs both its start and its end")
    for name in sorted(starts):
        low = _number(annotations, f"dp-start-{name}")
        high = _number(annotations, f"dp-end-{name}")
        assert low is not None and high is not None
        if not low < high:
            raise InputError(f"dp-end-{name}", f"must be above dp-start-{name}")
        where.append(f"{name.replace('-', '_')} in [{low:g}, {high:g})")
    return where


def _demand(annotations: dict[str, str]) -> dict[str, Any]:
    if "dp-demand" in annotations:
        try:
            given = json.loads(annotations["dp-demand"])
        except ValueError:
            raise InputError("dp-demand", "must be a JSON object (a demand)") from None
        if not isinstance(given, dict):
            raise InputError("dp-demand", "must be a JSON object (a demand)")
        return {"demand": given}
    expected = _number(annotations, "dp-expected-epsilon")
    least = _number(annotations, "dp-min-epsilon")
    if expected is None and least is None:
        raise InputError("dp-expected-epsilon", "give the budget (or dp-demand)")
    top = expected if expected is not None else least
    low = least if least is not None else top
    assert top is not None and low is not None
    if top <= 0 or low <= 0:
        raise InputError("dp-min-epsilon" if low <= 0 else "dp-expected-epsilon", "must be > 0")
    if low > top:
        raise InputError("dp-expected-epsilon", "must be >= dp-min-epsilon")
    mechanism = annotations.get("dp-mechanism")
    if mechanism is None:  # basic accounting: the epsilon itself, elastic down to the minimum
        out: dict[str, Any] = {"demand": {"epsilon": top}}
        if low < top:
            out["min_demand"] = {"epsilon": low}
        return out
    delta = _number(annotations, "dp-expected-delta") or _number(annotations, "dp-min-delta")
    demand: dict[str, Any] = {"mechanism": mechanism, "epsilon": [low, top]}
    if delta is not None:
        demand["delta"] = delta
    rate = _number(annotations, "dp-sampling-rate")
    steps = _number(annotations, "dp-steps", integer=True)
    if rate is not None:
        demand["sampling_rate"] = rate
    if steps is not None:
        demand["steps"] = int(steps)
    return {"demand": demand}


# ------------------------------------------------------------------ admission
def admission_response(review: dict[str, Any]) -> dict[str, Any]:
    """Answer a mutating AdmissionReview for a Pod: add the gate to a Pod asking for
    budget, refuse one whose annotations do not parse, let every other Pod through."""
    request = review.get("request") or {}
    uid = request.get("uid", "")
    pod = request.get("object") or {}
    answer: dict[str, Any] = {"uid": uid, "allowed": True}
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if request.get("operation", "CREATE") == "CREATE" and wants_budget(annotations):
        try:
            claim_from_annotations(annotations)
        except InputError as exc:
            answer["allowed"] = False
            answer["status"] = {
                "code": 400,
                "reason": "BadRequest",
                "message": f"annotation {exc.field}: {exc.reason}",
            }
        else:
            gates = (pod.get("spec") or {}).get("schedulingGates")
            if not any(g.get("name") == GATE for g in gates or []):
                patch = (
                    [{"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": GATE}}]
                    if gates
                    else [{"op": "add", "path": "/spec/schedulingGates", "value": [{"name": GATE}]}]
                )
                answer["patchType"] = "JSONPatch"
                answer["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {
        "apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
        "kind": "AdmissionReview",
        "response": answer,
    }


def granted_annotations(view: dict[str, Any], delta: float | None) -> dict[str, str | None]:
    """The design's result annotations for a granted claim (a merge patch: None removes)."""
    acquired = {block: view["granted"][block] for block in view["blocks"]}
    result: dict[str, str | None] = {
        "dp-request": "false",
        "dp-actual-epsilon": f"{view['epsilon']:.6g}" if view.get("epsilon") is not None else None,
        "dp-actual-number-of-data": str(view.get("actual_data") or 0),
        "dp-acquired-blocks": json.dumps(acquired, separators=(",", ":")),
        **dict.fromkeys(REQUEST_KEYS),
    }
    if delta is not None:
        result["dp-actual-delta"] = f"{delta:g}"
    if view.get("grant"):
        result["dp-grant"] = json.dumps(view["grant"], separators=(",", ":"))
    return result
