"""dpsched grants exactly what the DPack artifact grants on the same instance.

tests/data/artifact-mixed-1000.json holds a 1,000-claim instance and the sets the
artifact's own schedulers (columbia/dpack, run by ../shared/anchor/mixed.py) allocated
on it: an independent implementation's answer, recorded once, since the artifact cannot
run in CI. Every claim arrives at 0, so the ties the policies meet are broken by
submission order alone, as the artifact does (ids compared as strings would grant
145 instead of 115 with FCFS on such an instance).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dpsched.offline import parse_instance, run_policy

DATA = Path(__file__).parent / "data" / "artifact-mixed-1000.json"


def instance(recorded: dict[str, Any]) -> dict[str, Any]:
    block = recorded["block"]
    return {
        "accounting": "rdp",
        "alphas": recorded["alphas"],
        "delta": block["delta"],
        "blocks": [
            {"id": f"b{j}", "epsilon": block["epsilon"], "delta": block["delta"]}
            for j in range(block["count"])
        ],
        "tasks": [
            {
                "id": f"t{i}",
                "blocks": [f"b{j}" for j in blocks],
                "demand": {"rdp": recorded["curves"][curve]},
            }
            for i, (curve, blocks) in enumerate(recorded["tasks"])
        ],
    }


@pytest.mark.parametrize(
    ("policy", "options"), [("dpack", {"recompute_every": 1}), ("dpf", {}), ("fcfs", {})]
)
def test_the_same_claims_as_the_artifact(policy: str, options: dict[str, Any]) -> None:
    recorded = json.loads(DATA.read_text())
    _, report = run_policy(parse_instance(instance(recorded)), policy, options, explain=0)
    assert sorted(report["allocated"]) == sorted(recorded["granted"][policy])
