"""deploy/kubernetes: every manifest validates offline against the Kubernetes 1.30+
schemas (dpsched.io objects against our CRDs), the RBAC grants only the verbs used, and
the Deployment and webhook are set up as the README promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate
import pytest
import yaml
from tests.test_k8s_crds import conforms, pruned

from dpsched.k8s.crds import crds
from dpsched.k8s.pods import claim_from_annotations, wants_budget
from dpsched.k8s.resources import block_spec, claim_spec
from dpsched.k8s.webhook import PATH

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
THIRD_PARTY = {
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("kopf.dev/v1", "ClusterKopfPeering"),
}
"""Kinds of other operators (not in the Kubernetes schemas): checked for shape only."""
VERSIONS = ("1.30.0", "1.33.0")


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifests() -> list[Path]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = [DEPLOY / p for p in kustomization["resources"]]
    for component in ("cert-manager", "monitoring", "peering"):
        folder = DEPLOY / "components" / component
        listed += [
            folder / p
            for p in yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
        ]
    return [*listed, DEPLOY / "examples" / "walkthrough.yaml"]


def custom_schema(kind: str) -> dict[str, Any]:
    for crd in crds().values():
        if crd["spec"]["names"]["kind"] == kind:
            schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(kind)


def test_every_manifest_validates() -> None:
    seen = set()
    for path in manifests():
        assert path.is_file(), f"{path} is listed but missing"
        for doc in documents(path):
            key = (doc["apiVersion"], doc["kind"])
            seen.add(key)
            if doc["apiVersion"] == "dpsched.io/v1":
                schema = custom_schema(doc["kind"])
                body = {k: v for k, v in doc.items() if k == "spec"}
                conforms(body, schema)
                assert pruned(body, schema) == []
            elif key in THIRD_PARTY:
                assert doc["metadata"]["name"], path
            else:
                for version in VERSIONS:
                    kubernetes_validate.validate(doc, version, strict=True)
    assert {("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "ServiceAccount")} <= seen
    assert ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") in seen
    assert ("v1", "PersistentVolumeClaim") in seen and ("v1", "Namespace") in seen


def test_a_broken_manifest_is_caught() -> None:
    deployment = documents(DEPLOY / "deployment.yaml")[0]
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.30.0", strict=True)


def rules(path: str) -> dict[str, list[dict[str, Any]]]:
    return {
        d["metadata"]["name"]: d["rules"]
        for d in documents(DEPLOY / path)
        if d["kind"] == "ClusterRole"
    }


def test_rbac_grants_only_what_is_used() -> None:
    operator = rules("rbac.yaml")["dpsched-operator"]
    for rule in operator:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert not {"delete", "deletecollection", "update", "escalate", "bind"} & set(rule["verbs"])
    writable = {r for rule in operator if "patch" in rule["verbs"] for r in rule["resources"]}
    assert writable == {
        "privateblocks",
        "privacyclaims",
        "privateblocks/status",
        "privacyclaims/status",
        "pods",
        "events",
        "clusterkopfpeerings",
    }
    users = rules("user-roles.yaml")
    viewer = users["dpsched-blocks-viewer"]
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in viewer)
    for doc in documents(DEPLOY / "user-roles.yaml"):  # never aggregated into view/edit
        assert "aggregationRule" not in doc
        assert not any("aggregate-to" in k for k in doc["metadata"].get("labels", {}))
    editor = users["dpsched-claims-editor"]
    assert {r for rule in editor for r in rule["resources"]} == {
        "privacyclaims",
        "privacyclaims/status",
    }


def test_the_deployment_runs_locked_down_with_probes_and_limits() -> None:
    deployment = next(d for d in documents(DEPLOY / "deployment.yaml") if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["args"][:2] == ["serve", "--kubernetes"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/data" in mounts and "/tls" in mounts


def test_the_webhook_is_scoped_to_opted_in_pods_and_fails_closed() -> None:
    (config,) = documents(DEPLOY / "webhook.yaml")
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    assert hook["objectSelector"]["matchLabels"] == {"dpsched.io/managed": "true"}
    assert hook["rules"][0]["operations"] == ["CREATE"]
    assert hook["clientConfig"]["service"]["path"] == PATH


def test_the_walkthrough_objects_are_what_the_models_accept() -> None:
    for doc in documents(DEPLOY / "examples" / "walkthrough.yaml"):
        name = doc["metadata"]["name"]
        if doc["kind"] == "PrivateBlock":
            assert block_spec(name, doc["spec"]).id == name
        elif doc["kind"] == "PrivacyClaim":
            claim_spec(f"{doc['metadata']['namespace']}/{name}", doc["spec"])
        else:
            annotations = doc["metadata"]["annotations"]
            assert wants_budget(annotations)
            claim_spec("team-a/pod", claim_from_annotations(annotations))


def admitted(request: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The guard policy's messages for an UPDATE (empty: admitted), evaluated as the API
    server does: its variables first, then each validation."""
    policy = next(d for d in documents(DEPLOY / "guard.yaml") if d["kind"].endswith("Policy"))
    env = celpy.Environment()
    context: dict[str, Any] = {
        "request": celpy.json_to_cel(request),
        "oldObject": celpy.json_to_cel(old),
        "object": celpy.json_to_cel(new),
    }
    variables: dict[str, Any] = {}
    for variable in policy["spec"]["variables"]:
        program = env.program(env.compile(variable["expression"]))
        variables[variable["name"]] = program.evaluate(
            {**context, "variables": celpy.json_to_cel(variables)}
        )
    context["variables"] = celpy.json_to_cel({k: bool(v) for k, v in variables.items()})
    return [
        rule["message"]
        for rule in policy["spec"]["validations"]
        if not env.program(env.compile(rule["expression"])).evaluate(context)
    ]


def test_only_the_operator_removes_the_gate_or_the_finalizer() -> None:
    operator = {"userInfo": {"username": "system:serviceaccount:dpsched-system:dpsched"}}
    someone = {"userInfo": {"username": "alice"}}
    gate = {"name": "dpsched.io/privacy-budget"}
    gated = {"metadata": {"name": "p"}, "spec": {"schedulingGates": [gate, {"name": "x"}]}}
    ungated = {"metadata": {"name": "p"}, "spec": {"schedulingGates": [{"name": "x"}]}}
    assert admitted(someone, gated, ungated) == [
        "only the dpsched operator removes the dpsched.io/privacy-budget scheduling gate"
    ]
    assert admitted(operator, gated, ungated) == []
    assert admitted(someone, ungated, gated) == []  # adding is the API server's to refuse
    relabelled = {**gated, "metadata": {"name": "p", "labels": {"a": "b"}}}
    assert admitted(someone, gated, relabelled) == []
    held = {"metadata": {"name": "c", "finalizers": ["dpsched.io/finalizer"]}, "spec": {}}
    released = {"metadata": {"name": "c", "finalizers": []}, "spec": {}}
    assert admitted(someone, held, released) == [
        "only the dpsched operator removes the dpsched.io/finalizer finalizer"
    ]
    assert admitted(operator, held, released) == []
