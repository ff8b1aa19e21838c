"""The dpsched.io/v1 CRDs: generated from the models, structural, valid for Kubernetes
1.30+, no stricter than the models (nothing a valid claim says is refused or pruned),
and their CEL rules hold the consumption protocol."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml

from dpsched.k8s.crds import CLAIM_RULES, crds, render
from dpsched.k8s.resources import (
    ClaimPhase,
    Condition,
    PrivacyClaimStatus,
    PrivateBlockStatus,
    block_spec,
    claim_spec,
)

ROOT = Path(__file__).resolve().parents[1]
CRD_DIR = ROOT / "deploy" / "kubernetes" / "crds"


def schema_of(file: str) -> dict[str, Any]:
    crd = crds()[file]
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_committed_crds_are_the_generated_ones() -> None:
    for name, crd in crds().items():
        assert (CRD_DIR / name).read_text() == render(crd), (
            f"{name} is stale: run `dpsched k8s crds --out deploy/kubernetes/crds`"
        )


def test_crds_validate_against_the_kubernetes_schemas() -> None:
    for name in crds():
        document = yaml.safe_load((CRD_DIR / name).read_text())
        for version in ("1.30.0", "1.33.0"):
            kubernetes_validate.validate(document, version, strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        broken = crds()["privacyclaims.yaml"]
        broken["spec"]["versions"][0]["served"] = "yes"
        kubernetes_validate.validate(broken, "1.30.0", strict=True)


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += walk(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += walk(node[key], f"{path}[{key}]")
    return found


def test_schemas_are_structural() -> None:
    for name in crds():
        for path, node in walk(schema_of(name)):
            assert not {"$ref", "anyOf", "oneOf", "allOf", "not", "_variants"} & set(node), path
            preserved = node.get("x-kubernetes-preserve-unknown-fields") is True
            assert "type" in node or preserved, f"{name} {path}: untyped node"
            assert not ("properties" in node and "additionalProperties" in node), path
            if node.get("type") == "array":
                assert "items" in node, path


def conforms(value: Any, schema: dict[str, Any]) -> None:
    """The value passes the schema (OpenAPI: `nullable`, boolean exclusive bounds)."""
    jsonschema.validate(value, to_json_schema(schema))


def to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: to_json_schema(v)
        for k, v in node.items()
        if not k.startswith("x-kubernetes") and k != "nullable"
    }
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(bound) is True:
            out[bound] = out.pop(plain)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def pruned(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of the value an API server would prune under the schema."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict):
        if "properties" in schema:
            lost = [f"{path}.{k}" for k in value if k not in schema["properties"]]
            return lost + [
                p
                for k, v in value.items()
                if k in schema["properties"]
                for p in pruned(v, schema["properties"][k], f"{path}.{k}")
            ]
        extra = schema.get("additionalProperties")
        return [p for k, v in value.items() for p in pruned(v, extra or {}, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in pruned(v, schema["items"], f"{path}[{i}]")]
    return []


CLAIMS: list[dict[str, Any]] = [
    {"blocks": ["b0", "b1"], "demand": {"epsilon": 0.5}},
    {"blocks": {"most_recent": 3, "dataset": "web"}, "demand": {"rdp": [0.1, 0.2, 0.3]}},
    {
        "blocks": {"dataset": "users", "where": ["user_id in [0, 5000)", "time >= 3"]},
        "demand": {
            "mechanism": "subsampled_gaussian",
            "sampling_rate": 0.01,
            "steps": 2000,
            "epsilon": [0.5, 2.0],
            "delta": 1e-6,
        },
        "min_blocks": 2,
        "max_blocks": 5,
        "min_data": 100,
        "expected_data": 1000,
        "weight": 2.0,
        "timeout": 60.0,
        "consumedFraction": 0.25,
    },
    {
        "blocks": {"dataset": "web", "where": [{"dimension": "time", "op": ">=", "value": 3}]},
        "demand": {
            "mechanism": "composition",
            "parts": [
                {"mechanism": "laplace", "epsilon": 0.1},
                {"mechanism": "gaussian", "sigma": 2.0},
            ],
        },
        "release": True,
    },
    {"demand_by_block": {"b0": {"zcdp": 0.05}, "b1": {"approx_zcdp": {"rho": 0.1, "delta": 0}}}},
    {
        "blocks": ["b0"],
        "demand": {
            "dp_event": {
                "PoissonSampledDpEvent": {
                    "sampling_probability": 0.01,
                    "event": {"GaussianDpEvent": {"noise_multiplier": 1.1}},
                }
            }
        },
    },
    {"blocks": ["b0"], "demand": {"epsilon": 1.0}, "min_demand": {"epsilon": 0.2}},
]


def test_every_kind_of_claim_passes_the_schema_unpruned_and_validates_as_the_model() -> None:
    spec_schema = schema_of("privacyclaims.yaml")["properties"]["spec"]
    for spec in CLAIMS:
        conforms(spec, spec_schema)
        assert pruned(spec, spec_schema) == []
        claim, controls = claim_spec("team-a/c", spec)
        assert claim.id == "team-a/c"
        assert controls.consumed_fraction == spec.get("consumedFraction", 0.0)
        assert controls.release is spec.get("release", False)
    with pytest.raises(jsonschema.ValidationError):
        conforms({**CLAIMS[0], "consumedFraction": 1.5}, spec_schema)
    with pytest.raises(jsonschema.ValidationError):
        conforms({**CLAIMS[0], "weight": 0}, spec_schema)


def test_blocks_pass_the_schema_unpruned_and_validate_as_the_model() -> None:
    spec_schema = schema_of("privateblocks.yaml")["properties"]["spec"]
    for spec in (
        {"epsilon": 10.0, "delta": 1e-7, "dataset": "web", "dimensions": {"time": 3}},
        {"capacity": [1.0, 2.0], "dimensions": {"user_id": [0, 5000], "region": "eu"}},
        {"epsilon": 1.0, "size": 1200},
    ):
        conforms(spec, spec_schema)
        assert pruned(spec, spec_schema) == []
        assert block_spec("day-3", spec).id == "day-3"
    with pytest.raises(jsonschema.ValidationError):
        conforms({"epsilon": -1.0}, spec_schema)


def test_statuses_the_operator_writes_are_never_pruned() -> None:
    condition = Condition(
        type="Granted",
        status="True",
        reason="Allocated",
        message="granted on b0",
        last_transition_time="2026-11-26T12:00:00Z",
        observed_generation=2,
    )
    claim_status = PrivacyClaimStatus(
        phase=ClaimPhase.ALLOCATED,
        blocks=["b0"],
        block_count=1,
        epsilon=0.8,
        grant={"epsilon": 0.8, "noise_multiplier": 1.3},
        consumed_fraction=0.5,
        actual_data=1000,
        reason=None,
        conditions=[condition],
        observed_generation=2,
    )
    block_status = PrivateBlockStatus.model_validate(
        {
            "orders": ["alpha=2"],
            "budget": {k: [1.0] for k in ("capacity", "locked", "unlocked", "allocated")}
            | {"consumed": [0.0]},
            "spentEpsilon": 0.3,
            "unlockedPercent": 50.0,
            "claims": 2,
            "exhausted": False,
            "conditions": [condition.model_dump(by_alias=True)],
            "observedGeneration": 1,
        }
    )
    for status, file in (
        (claim_status, "privacyclaims.yaml"),
        (block_status, "privateblocks.yaml"),
    ):
        written = status.model_dump(mode="json", by_alias=True)
        schema = schema_of(file)["properties"]["status"]
        conforms(written, schema)
        assert pruned(written, schema) == []
        assert "lastTransitionTime" in json.dumps(written)


def cel_allows(rule: str, new: dict[str, Any], old: dict[str, Any]) -> bool:
    program = celpy.Environment().program(celpy.Environment().compile(rule))
    result = program.evaluate({"self": celpy.json_to_cel(new), "oldSelf": celpy.json_to_cel(old)})
    return bool(result)


def allowed(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """Messages of the claim rules the update breaks (empty: the API server accepts it)."""
    return [r["message"] for r in CLAIM_RULES if not cel_allows(r["rule"], new, old)]


def test_cel_rules_fix_the_request_and_let_consumption_only_grow() -> None:
    old = copy.deepcopy(CLAIMS[2])
    assert allowed(old, old) == []
    grown = {**old, "consumedFraction": 0.5, "release": True}
    assert allowed(grown, old) == []
    assert allowed({**old, "consumedFraction": 0.1}, old) == ["consumedFraction may only grow"]
    dropped = {k: v for k, v in old.items() if k != "consumedFraction"}
    assert allowed(dropped, old) == ["consumedFraction may only grow"]
    assert allowed({**grown, "release": False}, grown) == ["release cannot be undone"]
    assert allowed({**old, "weight": 3.0}, old) == [
        "weight cannot change once the claim is submitted"
    ]
    assert allowed({**old, "max_blocks": 6}, old) == [
        "max_blocks cannot change once the claim is submitted"
    ]
    more_steps = {**old, "demand": {**old["demand"], "steps": 4000}}
    assert allowed(more_steps, old) == ["demand cannot change once the claim is submitted"]
    assert allowed({**old, "timeout": 5.0}, {k: v for k, v in old.items() if k != "timeout"}) == [
        "timeout cannot change once the claim is submitted"
    ]


def test_cli_prints_and_writes_the_crds(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "dpsched", "k8s", "crds"], capture_output=True, text=True, check=True
    )
    documents = list(yaml.safe_load_all(run.stdout))
    assert [d["spec"]["names"]["kind"] for d in documents] == ["PrivateBlock", "PrivacyClaim"]
    subprocess.run(
        [sys.executable, "-m", "dpsched", "k8s", "crds", "--out", str(tmp_path)], check=True
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "privacyclaims.yaml",
        "privateblocks.yaml",
    ]
    as_json = subprocess.run(
        [sys.executable, "-m", "dpsched", "k8s", "crds", "--json", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(json.loads(as_json.stdout)["crds"]) == 2
