"""Pods asking for budget (the annotations of the "Pod and Privacy Budget" design note,
see `dpsched/k8s/pods.py`): the claim they ask for, and the admission webhook, served
for real (uvicorn on loopback) and sent AdmissionReviews."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.service_process import free_port

from dpsched.errors import InputError
from dpsched.k8s.pods import GATE, claim_from_annotations, granted_annotations, wants_budget
from dpsched.k8s.resources import claim_spec

DESIGN_EXAMPLE = {
    "dp-mode": "true",
    "dp-dataset": "reviews",
    "dp-request": "true",
    "dp-start-time": "0",
    "dp-end-time": "1000",
    "dp-start-user-id": "0",
    "dp-end-user-id": "3000",
    "dp-min-number-of-data": "100000",
    "dp-expected-number-of-data": "500000",
    "dp-min-epsilon": "0.1",
    "dp-min-delta": "0.001",
    "dp-expected-epsilon": "0.5",
    "dp-expected-delta": "0.001",
}


def test_the_design_notes_example_becomes_a_flexible_elastic_claim() -> None:
    assert wants_budget(DESIGN_EXAMPLE)
    spec = claim_from_annotations(DESIGN_EXAMPLE)
    assert spec == {
        "blocks": {"dataset": "reviews", "where": ["time in [0, 1000)", "user_id in [0, 3000)"]},
        "demand": {"epsilon": 0.5},
        "min_demand": {"epsilon": 0.1},
        "min_data": 100000,
        "expected_data": 500000,
    }
    claim, _ = claim_spec("ns/pod", spec)  # the model accepts it
    assert claim.flexible and claim.min_demand is not None


def test_rdp_pods_name_a_mechanism_calibrated_to_the_granted_epsilon() -> None:
    annotations = {
        **{k: v for k, v in DESIGN_EXAMPLE.items() if "number-of-data" not in k},
        "dp-mechanism": "subsampled_gaussian",
        "dp-sampling-rate": "0.01",
        "dp-steps": "2000",
        "dp-max-blocks": "4",
    }
    spec = claim_from_annotations(annotations)
    assert spec["demand"] == {
        "mechanism": "subsampled_gaussian",
        "epsilon": [0.1, 0.5],
        "delta": 0.001,
        "sampling_rate": 0.01,
        "steps": 2000,
    }
    assert spec["max_blocks"] == 4
    claim_spec("ns/pod", spec)
    explicit = {**DESIGN_EXAMPLE, "dp-demand": json.dumps({"rdp": [0.1, 0.2]})}
    assert claim_from_annotations(explicit)["demand"] == {"rdp": [0.1, 0.2]}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"dp-dataset": ""}, "dp-dataset", "required"),
        ({"dp-end-time": "soon"}, "dp-end-time", "must be a number"),
        ({"dp-end-time": "0"}, "dp-end-time", "above dp-start-time"),
        ({"dp-start-region": "3"}, "dp-end-region", "both its start and its end"),
        ({"dp-min-number-of-data": "1.5"}, "dp-min-number-of-data", "integer"),
        ({"dp-expected-number-of-data": "10"}, "dp-expected-number-of-data", ">= dp-min"),
        ({"dp-expected-epsilon": "0.05"}, "dp-expected-epsilon", ">= dp-min-epsilon"),
        ({"dp-min-epsilon": "-1"}, "dp-min-epsilon", "non-negative"),
        ({"dp-demand": "[1, 2]"}, "dp-demand", "JSON object"),
        ({"dp-on-exit": "keep"}, "dp-on-exit", "'consume' or 'release'"),
        ({"dp-consumed-fraction": "2"}, "dp-consumed-fraction", "between 0 and 1"),
        ({"dp-max-blocks": "0"}, "dp-max-blocks", "at least 1"),
    ],
)
def test_malformed_annotations_are_named(change: dict[str, str], field: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        claim_from_annotations({**DESIGN_EXAMPLE, **change})
    assert caught.value.field == field
    assert words in caught.value.reason


def test_granted_annotations_follow_the_design() -> None:
    view = {
        "blocks": ["day-1", "day-2"],
        "granted": {"day-1": [0.2], "day-2": [0.2], "day-3": [0.1]},
        "epsilon": 0.2,
        "actual_data": 130000,
        "grant": {"fraction": 0.25},
    }
    written = granted_annotations(view, 0.001)
    assert written["dp-request"] == "false"
    assert written["dp-actual-epsilon"] == "0.2"
    assert written["dp-actual-delta"] == "0.001"
    assert written["dp-actual-number-of-data"] == "130000"
    assert json.loads(str(written["dp-acquired-blocks"])) == {"day-1": [0.2], "day-2": [0.2]}
    for removed in ("dp-min-epsilon", "dp-expected-number-of-data", "dp-min-delta"):
        assert written[removed] is None  # merge patch: removes the key


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "dpsched.k8s.webhook:create_webhook_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def review(annotations: dict[str, str], gates: list[dict[str, str]] | None = None) -> Any:
    spec: dict[str, Any] = {"containers": [{"name": "job", "image": "trainer"}]}
    if gates is not None:
        spec["schedulingGates"] = gates
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "team-a",
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "train", "annotations": annotations},
                "spec": spec,
            },
        },
    }


def test_the_webhook_gates_pods_asking_for_budget(webhook: str) -> None:
    answer = httpx.post(f"{webhook}/mutate/pods", json=review(DESIGN_EXAMPLE)).json()
    response = answer["response"]
    assert answer["kind"] == "AdmissionReview"
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    assert patch == [{"op": "add", "path": "/spec/schedulingGates", "value": [{"name": GATE}]}]
    other_gate = [{"name": "example.com/other"}]
    response = httpx.post(f"{webhook}/mutate/pods", json=review(DESIGN_EXAMPLE, other_gate)).json()
    patch = json.loads(base64.b64decode(response["response"]["patch"]))
    assert patch == [{"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": GATE}}]


def test_the_webhook_lets_other_pods_through_and_refuses_bad_annotations(webhook: str) -> None:
    plain = httpx.post(f"{webhook}/mutate/pods", json=review({"app": "web"})).json()["response"]
    assert plain == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}
    not_now = {**DESIGN_EXAMPLE, "dp-request": "false"}
    done = httpx.post(f"{webhook}/mutate/pods", json=review(not_now)).json()["response"]
    assert "patch" not in done and done["allowed"] is True
    bad = {**DESIGN_EXAMPLE, "dp-expected-epsilon": "lots"}
    refused = httpx.post(f"{webhook}/mutate/pods", json=review(bad)).json()["response"]
    assert refused["allowed"] is False
    assert refused["status"]["code"] == 400
    assert refused["status"]["message"].startswith("annotation dp-expected-epsilon:")
    garbage = httpx.post(f"{webhook}/mutate/pods", content=b"{not json")
    assert garbage.status_code == 400 and "AdmissionReview" in garbage.json()["error"]
