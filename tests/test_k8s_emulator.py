"""The test harness of tests/k8s_emulator.py: the emulator answers as kube-apiserver does
where operators depend on it, and kopf runs for real against it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
import pytest_asyncio
from tests.k8s_emulator import (
    ApiError,
    FaithfulEmulator,
    ServedEmulator,
    eventually,
    resource_path,
    running_operator,
    serve_emulator,
)

API = "dpsched.io/v1"
NS = "tenant-a"


def claim(name: str, fraction: float = 0.0) -> dict[str, Any]:
    return {
        "kind": "PrivacyClaim",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"epsilon": 1.0, "consumedFraction": fraction},
    }


def emulator(**options: Any) -> FaithfulEmulator:
    server = FaithfulEmulator(**options)
    server.declare(f"{API}/privacyclaims", "PrivacyClaim", namespaced=True, status=True)
    server.declare(f"{API}/privateblocks", "PrivateBlock", namespaced=False, status=True)
    return server


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[ServedEmulator]:
    async with serve_emulator(emulator()) as running:
        yield running


def rv(body: dict[str, Any]) -> int:
    return int(body["metadata"]["resourceVersion"])


@pytest.mark.asyncio
async def test_writes_are_versioned_like_a_real_api_server(cluster: ServedEmulator) -> None:
    client = cluster.client
    body = {"apiVersion": API, **claim("c1"), "status": {"phase": "Forged"}}
    async with cluster.emulator.post(resource_path(API, "privacyclaims", NS), json=body) as reply:
        assert reply.status == 201
        created = await reply.json()
    meta = created["metadata"]
    assert meta["generation"] == 1 and meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert "status" not in created  # ignored on create: status is a subresource

    labelled = await client.patch(
        API, "privacyclaims", "c1", {"metadata": {"labels": {"a": "b"}}}, NS
    )
    assert rv(labelled) > rv(created) and labelled["metadata"]["generation"] == 1

    respec = await client.patch(API, "privacyclaims", "c1", {"spec": {"consumedFraction": 0.5}}, NS)
    assert rv(respec) > rv(labelled) and respec["metadata"]["generation"] == 2

    # A status write changes only status; a main-resource write leaves status alone.
    both = {"spec": {"epsilon": 9.0}, "status": {"phase": "Pending"}}
    status = await client.patch(API, "privacyclaims", "c1", both, NS, subresource="status")
    assert status["status"] == {"phase": "Pending"} and status["spec"]["epsilon"] == 1.0
    assert status["metadata"]["generation"] == 2 and rv(status) > rv(respec)
    ignored = await client.patch(API, "privacyclaims", "c1", {"status": {"phase": "X"}}, NS)
    assert ignored == status  # a no-op: no new resourceVersion either

    # Optimistic concurrency: a stale resourceVersion is refused.
    stale = {"metadata": {"resourceVersion": str(rv(respec))}, "spec": {"epsilon": 2.0}}
    with pytest.raises(ApiError) as conflict:
        await client.patch(API, "privacyclaims", "c1", stale, NS)
    assert conflict.value.status == 409
    assert conflict.value.body["kind"] == "Status"
    assert conflict.value.body["reason"] == "Conflict" and conflict.value.body["code"] == 409
    fresh = {"metadata": {"resourceVersion": str(rv(status))}, "spec": {"epsilon": 2.0}}
    assert rv(await client.patch(API, "privacyclaims", "c1", fresh, NS)) > rv(status)

    # A JSON patch guarded by a `test` op: 422 when it fails, as kube-apiserver answers.
    guard = {"op": "test", "path": "/metadata/resourceVersion", "value": str(rv(status))}
    change = {"op": "replace", "path": "/spec/epsilon", "value": 3.0}
    with pytest.raises(ApiError) as invalid:
        await client.patch(API, "privacyclaims", "c1", [guard, change], NS)
    assert invalid.value.status == 422
    current = await client.get(API, "privacyclaims", "c1", NS)
    assert current is not None and current["spec"]["epsilon"] == 2.0
    guard["value"] = current["metadata"]["resourceVersion"]
    assert (await client.patch(API, "privacyclaims", "c1", [guard, change], NS))["spec"] == {
        "epsilon": 3.0,
        "consumedFraction": 0.5,
    }

    # Lists carry the latest resourceVersion; generateName names objects.
    named = await client.create(API, "privateblocks", {"metadata": {"generateName": "b-"}})
    assert named["metadata"]["name"].startswith("b-") and len(named["metadata"]["name"]) == 7
    listed = await client.request("GET", resource_path(API, "privateblocks"))
    assert listed["metadata"]["resourceVersion"] == named["metadata"]["resourceVersion"]

    # A DELETE whose precondition is stale is refused too.
    options = {"preconditions": {"resourceVersion": "1"}}
    with pytest.raises(ApiError) as refused:
        await client.request("DELETE", resource_path(API, "privacyclaims", NS, "c1"), options)
    assert refused.value.status == 409
    await client.delete(API, "privacyclaims", "c1", NS)
    assert await client.get(API, "privacyclaims", "c1", NS) is None


@pytest.mark.asyncio
async def test_one_of_many_writers_from_the_same_read_wins(cluster: ServedEmulator) -> None:
    created = await cluster.client.create(API, "privacyclaims", claim("c4"), NS)
    version = created["metadata"]["resourceVersion"]

    async def write(value: int) -> int:
        patch = {"metadata": {"resourceVersion": version}, "spec": {"epsilon": value}}
        try:
            await cluster.client.patch(API, "privacyclaims", "c4", patch, NS)
        except ApiError as exc:
            return exc.status
        return 200

    answers = await asyncio.gather(*(write(value) for value in range(20)))
    assert sorted(answers) == [200] + [409] * 19


@pytest.mark.asyncio
async def test_failed_json_patch_tests_can_answer_409() -> None:
    async with serve_emulator(emulator(test_failure_status=409)) as cluster:
        created = await cluster.client.create(API, "privacyclaims", claim("c2"), NS)
        guard = {"op": "test", "path": "/metadata/resourceVersion", "value": "0"}
        with pytest.raises(ApiError) as conflict:
            await cluster.client.patch(API, "privacyclaims", "c2", [guard], NS)
        assert conflict.value.status == 409 and conflict.value.body["reason"] == "Conflict"
        assert await cluster.client.get(API, "privacyclaims", "c2", NS) == created


class Seen:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deleted: list[str] = []


def handlers(seen: Seen) -> kopf.OperatorRegistry:
    """A tiny operator: its handlers run in kopf's thread."""
    registry = kopf.OperatorRegistry()

    @kopf.on.create("dpsched.io", "v1", "privacyclaims", registry=registry)
    def claim_created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        patch.status["phase"] = "Pending"
        kopf.info(body, reason="Pending", message="the claim waits for budget")

    @kopf.on.update(
        "dpsched.io", "v1", "privacyclaims", field="spec.consumedFraction", registry=registry
    )
    def claim_consumed(new: Any, patch: kopf.Patch, **_: Any) -> None:
        patch.status["consumed"] = new

    @kopf.on.delete("dpsched.io", "v1", "privacyclaims", registry=registry)
    def claim_deleted(name: str, **_: Any) -> None:
        with seen.lock:
            seen.deleted.append(name)

    @kopf.on.create("dpsched.io", "v1", "privateblocks", registry=registry)
    def block_created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        patch.status["phase"] = "Ready"
        kopf.info(body, reason="Ready", message="the block has budget")

    return registry


@pytest.mark.asyncio
async def test_kopf_runs_for_real_against_the_emulator(cluster: ServedEmulator) -> None:
    client, seen = cluster.client, Seen()
    async with running_operator(handlers(seen), cluster.url) as operator:
        created = await client.create(API, "privacyclaims", claim("c3"), NS)

        async def claim_status(key: str) -> Any:
            body = await client.get(API, "privacyclaims", "c3", NS)
            return body if body and body.get("status", {}).get(key) is not None else None

        pending = await eventually(lambda: claim_status("phase"), what="status.phase")
        assert pending["status"]["phase"] == "Pending"
        assert rv(pending) > rv(created)
        # kopf wrote its finalizer and annotations: metadata only, so generation stays 1.
        assert pending["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
        assert pending["metadata"]["generation"] == 1

        spec = {"spec": {"consumedFraction": 0.25}}
        respec = await client.patch(API, "privacyclaims", "c3", spec, NS)
        assert respec["metadata"]["generation"] == 2
        consumed = await eventually(lambda: claim_status("consumed"), what="status.consumed")
        assert consumed["status"]["consumed"] == 0.25
        assert consumed["metadata"]["generation"] == 2 and rv(consumed) > rv(respec)

        # The Event the handler posted (kopf.info), as kopf's poster sent it.
        ours = await eventually(lambda: _reasons(client, NS, "Pending"), what="the event")
        assert ours[0]["involvedObject"]["name"] == "c3"
        assert ours[0]["involvedObject"]["uid"] == created["metadata"]["uid"]
        assert ours[0]["message"] == "the claim waits for budget" and ours[0]["type"] == "Normal"

        # A cluster-scoped object; its Events go to the "default" namespace.
        await client.create(API, "privateblocks", {"metadata": {"name": "b1"}})
        block = await eventually(lambda: client.get(API, "privateblocks", "b1"), what="block")
        ready = await eventually(lambda: _status_phase(client, "b1"), what="block status")
        assert ready == "Ready" and block["metadata"]["uid"]
        default_events = await eventually(
            lambda: _reasons(client, "default", "Ready"), what="block event"
        )
        assert default_events[0]["involvedObject"]["kind"] == "PrivateBlock"

        # Deleting: the finalizer holds the object until kopf's delete handler ran.
        deleting = await client.delete(API, "privacyclaims", "c3", NS)
        assert deleting["metadata"]["deletionTimestamp"]
        assert deleting["metadata"]["generation"] == 3  # as kube-apiserver bumps it
        await eventually(lambda: _gone(client, "c3"), what="the claim to disappear")
        assert seen.deleted == ["c3"]

    history = cluster.emulator.objects[f"{API}/privacyclaims", NS, "c3"].history
    versions = [rv(dict(version)) for version in history if version is not None]
    assert versions == sorted(versions) and len(set(versions)) >= 5
    assert not [r for r in operator.problems if r.levelname in ("ERROR", "CRITICAL")]


async def _status_phase(client: Any, name: str) -> str | None:
    body = await client.get(API, "privateblocks", name)
    return None if body is None else body.get("status", {}).get("phase")


async def _reasons(client: Any, namespace: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in await client.events(namespace) if e["reason"] == reason]


async def _gone(client: Any, name: str) -> bool:
    return await client.get(API, "privacyclaims", name, NS) is None
