"""Kubeflow components: the example pipeline compiles to the committed YAML, and the
components' Python functions run against a live service: a grant comes back with its
blocks and noise, a refusal or a wait fails fast with the reason."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from tests.service_process import Service, service_for

from dpsched.client import Client
from dpsched.k8s.kubeflow import allocate, consume

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"accounting": "rdp", "scheduler": {"policy": "dpack", "period": 0.2}}


def pipeline_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "pipeline", ROOT / "examples/kubeflow/pipeline.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_pipeline_compiles_to_the_committed_yaml(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.yaml"
    pipeline_module().compile_to(out)
    assert out.read_text() == (ROOT / "examples/kubeflow/pipeline.yaml").read_text()
    spec = yaml.safe_load(out.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"allocate", "download", "train", "evaluate", "consume", "upload"}
    # Budget before data, consumption before the externally visible step.
    assert tasks["download"]["dependentTasks"] == ["allocate"]
    assert "consume" in tasks["upload"]["dependentTasks"]


@pytest.fixture(scope="module", params=["sqlite"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    running = service_for(request, tmp_path_factory, CONFIG, "kubeflow")
    with running.admin() as admin:
        for day in (1, 2):
            block = {
                "id": f"reviews-{day}",
                "dataset": "reviews",
                "dimensions": {"time": day},
                "epsilon": 10.0,
                "delta": 1e-7,
            }
            assert admin.post("/v1/blocks", json=block).status_code == 201
    yield running
    running.stop()


@pytest.fixture
def token(service: Service, monkeypatch: pytest.MonkeyPatch) -> str:
    with service.admin() as admin:
        reply = admin.post("/v1/tenants", json={"name": f"kfp-{id(monkeypatch)}"})
        value = str(reply.json()["token"])
    monkeypatch.setenv("DPSCHED_TOKEN", value)
    return value


ELASTIC = {
    "blocks": {"dataset": "reviews", "where": ["time >= 1"]},
    "demand": {
        "mechanism": "subsampled_gaussian",
        "sampling_rate": 0.01,
        "steps": 2000,
        "epsilon": [0.5, 2.0],
        "delta": 1e-7,
    },
}


def test_allocate_then_consume_against_a_live_service(service: Service, token: str) -> None:
    grant = allocate(service.url, ELASTIC, claim_id="run-1", timeout=30)
    assert grant.claim_id == "run-1"
    assert sorted(grant.blocks) == ["reviews-1", "reviews-2"]
    assert 0.5 <= grant.epsilon <= 2.0
    assert grant.grant["noise_multiplier"] > 0
    again = allocate(service.url, ELASTIC, claim_id="run-1", timeout=30)  # a retried step
    assert again == grant
    assert consume(service.url, "run-1", fraction=0.5) == pytest.approx(0.5)
    assert consume(service.url, "run-1", fraction=0.5) == pytest.approx(0.5)  # same request
    assert consume(service.url, "run-1", fraction=0.25) == pytest.approx(0.75)


def test_allocate_fails_fast_with_the_reason(service: Service, token: str) -> None:
    with pytest.raises(RuntimeError, match=r"claim refused: .*demand"):
        allocate(service.url, {"blocks": ["reviews-1"], "demand": {"epsilon": 1.0}}, "bad")
    too_much = {"blocks": ["reviews-1"], "demand": {"mechanism": "gaussian", "sigma": 0.01}}
    with pytest.raises(RuntimeError, match=r"rejected: .*exceeds the whole capacity"):
        allocate(service.url, too_much, claim_id="greedy", timeout=10)
    later = {"blocks": {"dataset": "reviews", "where": ["time >= 9"]}, "min_blocks": 1}
    later["demand"] = {"mechanism": "gaussian", "sigma": 5.0}
    with pytest.raises(RuntimeError, match=r"still waiting after 1 s: .*none match yet"):
        allocate(service.url, later, claim_id="later", timeout=1)
    with Client(service.url, token) as client:  # it gave up: nothing stays claimed
        assert client.claim("later")["state"] == "expired"


def test_components_need_the_token(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DPSCHED_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match=r"set \$DPSCHED_TOKEN"):
        allocate(service.url, ELASTIC, claim_id="x")
    with pytest.raises(RuntimeError, match=r"set \$DPSCHED_TOKEN"):
        consume(service.url, "x")
