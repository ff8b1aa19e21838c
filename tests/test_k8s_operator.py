"""The operator for real: kopf running against the Kubernetes emulator (dpsched/lab/emulator.py),
the budget service as a real process. Claims and blocks go in as custom resources;
decisions come back as statuses and Events; consumption, release, deletion, restarts
and conflicts never lose or double an operation."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import attrs
import httpx
import jsonpatch
import pytest
import yaml
from tests.service_process import ADMIN, Service, new_database

from dpsched.k8s.kube import Connection, KubeApi
from dpsched.k8s.operator import Operator, OperatorConfig
from dpsched.k8s.pods import GATE, admission_response
from dpsched.k8s.run import run_operator
from dpsched.lab.emulator import (
    EmulatedCluster,
    FaithfulEmulator,
    running_emulated_cluster,
    wait_until,
)

API = "dpsched.io/v1"
CONFIG = {"accounting": "basic", "scheduler": {"policy": "fcfs", "period": 0.2}}


class RunningOperator:
    """kopf in a thread, with its own event loop, as `dpsched serve --kubernetes` runs it."""

    def __init__(
        self,
        service: Service,
        cluster: EmulatedCluster,
        peering: tuple[str, int] | None = None,
        token: str | None = None,
        settle_after: float = 5.0,
    ) -> None:
        self.peering = peering
        self.config = OperatorConfig(
            service_url=service.url, admin_token=ADMIN, sync_interval=0.1, settle_after=settle_after
        )
        self.connection = Connection(server=cluster.url, token=token, insecure=True)
        self.stop_flag = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> RunningOperator:
        ready = threading.Event()
        self.stop_flag = threading.Event()

        def run() -> None:
            name, priority = self.peering or (None, None)
            asyncio.run(
                run_operator(
                    self.config,
                    self.connection,
                    peering=name,
                    priority=priority,
                    stop_flag=self.stop_flag,
                    ready_flag=ready,
                )
            )

        name = f"operator-{self.connection.token or 'main'}"
        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()
        assert ready.wait(30), "the operator did not start"
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        if self.thread is not None:
            self.thread.join(30)
            assert not self.thread.is_alive(), "the operator did not stop"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("operator")
    path = directory / "service.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    running = Service(new_database("sqlite", directory, None), directory, path).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedCluster]:
    with running_emulated_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def operator(service: Service, cluster: EmulatedCluster) -> Iterator[RunningOperator]:
    running = RunningOperator(service, cluster).start()
    yield running
    running.stop()


# ------------------------------------------------------------------ helpers
def block(cluster: EmulatedCluster, name: str, epsilon: float = 1.0) -> None:
    body = {"apiVersion": API, "kind": "PrivateBlock", "metadata": {"name": name}}
    cluster.create(API, "privateblocks", None, {**body, "spec": {"epsilon": epsilon}})


def claim(
    cluster: EmulatedCluster, namespace: str, name: str, spec: dict[str, Any]
) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace}
    body = {"apiVersion": API, "kind": "PrivacyClaim", "metadata": meta, "spec": spec}
    created: dict[str, Any] = cluster.create(API, "privacyclaims", namespace, body)
    return created


def status(
    cluster: EmulatedCluster, namespace: str | None, name: str, plural: str = "privacyclaims"
) -> Any:
    found = cluster.get(API, plural, namespace, name)
    return (found or {}).get("status") or {}


def phase_becomes(
    cluster: EmulatedCluster, namespace: str, name: str, phase: str
) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(
        lambda: (s := status(cluster, namespace, name)).get("phase") == phase and s,
        what=f"{namespace}/{name} to be {phase} (now {status(cluster, namespace, name)})",
    )
    return found


def engine_claim(service: Service, namespace: str, name: str, uid: str) -> dict[str, Any]:
    with httpx.Client(
        base_url=service.url,
        headers={"Authorization": f"Bearer {ADMIN}", "X-Dpsched-Tenant": f"k8s.{namespace}"},
    ) as client:
        reply = client.get(f"/v1/claims/{name}@{uid}")
        assert reply.status_code == 200, reply.text
        found: dict[str, Any] = reply.json()
        return found


def engine_block(service: Service, name: str) -> dict[str, Any]:
    with service.admin() as admin:
        found: dict[str, Any] = admin.get(f"/v1/blocks/{name}").json()
        return found


def reasons(cluster: EmulatedCluster, namespace: str, name: str) -> list[str]:
    events = cluster.events(namespace)
    return [e["reason"] for e in events if e["involvedObject"]["name"] == name]


def journal_ops(service: Service, request_id_part: str) -> list[str]:
    with service.admin() as admin:
        rows = admin.get("/v1/audit", params={"limit": 10_000}).json()["rows"]
    return [r["op"] for r in rows if request_id_part in str(r["request_id"])]


# -------------------------------------------------------------------- tests
def test_a_claim_is_granted_consumed_declaratively_once_and_mirrored(
    cluster: EmulatedCluster, service: Service, operator: RunningOperator
) -> None:
    block(cluster, "day-1")
    created = claim(cluster, "team-a", "train", {"blocks": ["day-1"], "demand": {"epsilon": 0.4}})
    granted = phase_becomes(cluster, "team-a", "train", "Allocated")
    assert granted["blocks"] == ["day-1"] and granted["epsilon"] == pytest.approx(0.4)
    assert granted["conditions"][0]["type"] == "Granted"
    assert granted["conditions"][0]["status"] == "True"
    assert wait_until(lambda: "Granted" in reasons(cluster, "team-a", "train"))
    day = wait_until(
        lambda: (s := status(cluster, None, "day-1", "privateblocks")).get("claims") and s
    )
    assert day["budget"]["allocated"] == [pytest.approx(0.4)] and day["spentEpsilon"] > 0
    uid = created["metadata"]["uid"]
    for _ in range(2):  # the same spec twice: applied once
        cluster.patch(API, "privacyclaims", "team-a", "train", {"spec": {"consumedFraction": 0.5}})
    wait_until(lambda: status(cluster, "team-a", "train").get("consumedFraction") == 0.5)
    assert engine_claim(service, "team-a", "train", uid)["consumed"]["day-1"] == [
        pytest.approx(0.2)
    ]
    cluster.patch(API, "privacyclaims", "team-a", "train", {"spec": {"consumedFraction": 1.0}})
    done = phase_becomes(cluster, "team-a", "train", "Consumed")
    assert done["consumedFraction"] == 1.0
    assert journal_ops(service, f"{uid}:consume") == ["consume", "consume"]


def test_release_returns_the_unconsumed_budget(
    cluster: EmulatedCluster, service: Service, operator: RunningOperator
) -> None:
    block(cluster, "day-2")
    claim(cluster, "team-a", "stats", {"blocks": ["day-2"], "demand": {"epsilon": 0.6}})
    phase_becomes(cluster, "team-a", "stats", "Allocated")
    patch = {"spec": {"consumedFraction": 0.5, "release": True}}
    cluster.patch(API, "privacyclaims", "team-a", "stats", patch)
    phase_becomes(cluster, "team-a", "stats", "Released")
    assert wait_until(lambda: "Released" in reasons(cluster, "team-a", "stats"))
    assert engine_block(service, "day-2")["consumed"] == [pytest.approx(0.3)]
    assert engine_block(service, "day-2")["allocated"] == [pytest.approx(0.0)]


def test_bad_claims_are_rejected_with_a_reason_and_a_warning(
    cluster: EmulatedCluster, operator: RunningOperator
) -> None:
    claim(cluster, "team-a", "typo", {"blocks": ["day-1"], "demand": {"epsilonn": 0.4}})
    rejected = phase_becomes(cluster, "team-a", "typo", "Rejected")
    assert "demand" in rejected["reason"]
    assert wait_until(lambda: "Rejected" in reasons(cluster, "team-a", "typo"))
    block(cluster, "small", epsilon=0.1)
    claim(cluster, "team-a", "huge", {"blocks": ["small"], "demand": {"epsilon": 5.0}})
    assert "capacity" in phase_becomes(cluster, "team-a", "huge", "Rejected")["reason"]
    events = [e for e in cluster.events("team-a") if e["involvedObject"]["name"] == "huge"]
    assert events and events[0]["type"] == "Warning"


def test_a_changed_request_is_ignored_with_an_event(
    cluster: EmulatedCluster, service: Service, operator: RunningOperator
) -> None:
    block(cluster, "day-3")
    created = claim(cluster, "team-a", "fixed", {"blocks": ["day-3"], "demand": {"epsilon": 0.2}})
    phase_becomes(cluster, "team-a", "fixed", "Allocated")
    cluster.patch(API, "privacyclaims", "team-a", "fixed", {"spec": {"demand": {"epsilon": 0.9}}})
    assert wait_until(lambda: "RequestChanged" in reasons(cluster, "team-a", "fixed"))
    uid = created["metadata"]["uid"]
    assert engine_claim(service, "team-a", "fixed", uid)["demand"]["day-3"] == [0.2]
    assert status(cluster, "team-a", "fixed")["phase"] == "Allocated"


def test_deleting_claims_withdraws_or_releases_and_blocks_wait_for_their_holders(
    cluster: EmulatedCluster, service: Service, operator: RunningOperator
) -> None:
    block(cluster, "day-4", epsilon=1.0)
    held = claim(cluster, "team-a", "holder", {"blocks": ["day-4"], "demand": {"epsilon": 0.7}})
    phase_becomes(cluster, "team-a", "holder", "Allocated")
    waiting = claim(cluster, "team-a", "waiter", {"blocks": ["day-4"], "demand": {"epsilon": 0.7}})
    phase_becomes(cluster, "team-a", "waiter", "Pending")
    assert "not enough budget" in status(cluster, "team-a", "waiter")["reason"]
    # A held block is not deleted while a claim holds budget on it.
    assert cluster.delete(API, "privateblocks", None, "day-4").status_code == 200
    wait_until(
        lambda: (
            (cluster.get(API, "privateblocks", None, "day-4") or {})
            .get("metadata", {})
            .get("deletionTimestamp")
        )
    )
    assert cluster.get(API, "privateblocks", None, "day-4") is not None
    # The pending claim: withdrawn (it never gets the budget the holder leaves).
    cluster.delete(API, "privacyclaims", "team-a", "waiter")
    wait_until(lambda: cluster.get(API, "privacyclaims", "team-a", "waiter") is None)
    uid = waiting["metadata"]["uid"]
    assert engine_claim(service, "team-a", "waiter", uid)["state"] == "expired"
    # The allocated claim: its unconsumed grant goes back; then the block may go.
    cluster.delete(API, "privacyclaims", "team-a", "holder")
    wait_until(lambda: cluster.get(API, "privacyclaims", "team-a", "holder") is None)
    holder = engine_claim(service, "team-a", "holder", held["metadata"]["uid"])
    assert holder["state"] == "released"
    assert engine_block(service, "day-4")["allocated"] == [pytest.approx(0.0)]
    wait_until(lambda: cluster.get(API, "privateblocks", None, "day-4") is None, timeout=30)


def test_namespaces_are_tenants_and_names_can_repeat(
    cluster: EmulatedCluster, service: Service, operator: RunningOperator
) -> None:
    block(cluster, "shared", epsilon=1.0)
    a = claim(cluster, "team-a", "model", {"blocks": ["shared"], "demand": {"epsilon": 0.3}})
    b = claim(cluster, "team-b", "model", {"blocks": ["shared"], "demand": {"epsilon": 0.3}})
    phase_becomes(cluster, "team-a", "model", "Allocated")
    phase_becomes(cluster, "team-b", "model", "Allocated")
    uid_a, uid_b = a["metadata"]["uid"], b["metadata"]["uid"]
    assert engine_claim(service, "team-a", "model", uid_a)["state"] == "allocated"
    with httpx.Client(
        base_url=service.url,
        headers={"Authorization": f"Bearer {ADMIN}", "X-Dpsched-Tenant": "k8s.team-b"},
    ) as team_b:  # team-b's tenant cannot see team-a's claim
        assert team_b.get(f"/v1/claims/model@{uid_a}").status_code == 404
        assert team_b.get(f"/v1/claims/model@{uid_b}").status_code == 200


def test_an_operator_restart_loses_and_doubles_nothing(
    cluster: EmulatedCluster, service: Service, operator: RunningOperator
) -> None:
    block(cluster, "day-5", epsilon=1.0)
    first = claim(cluster, "team-a", "early", {"blocks": ["day-5"], "demand": {"epsilon": 0.4}})
    phase_becomes(cluster, "team-a", "early", "Allocated")
    operator.stop()
    try:
        # While it is down: a consumption and a new claim.
        patch = {"spec": {"consumedFraction": 0.25}}
        cluster.patch(API, "privacyclaims", "team-a", "early", patch)
        late = claim(cluster, "team-a", "late", {"blocks": ["day-5"], "demand": {"epsilon": 0.2}})
    finally:
        operator.start()
    phase_becomes(cluster, "team-a", "late", "Allocated")
    wait_until(lambda: status(cluster, "team-a", "early").get("consumedFraction") == 0.25)
    operator.stop()  # and once more: resuming re-runs every handler, nothing is re-applied
    operator.start()
    early_uid = first["metadata"]["uid"]
    wait_until(lambda: status(cluster, "team-a", "late").get("observedGeneration") == 1)
    assert journal_ops(service, f"{early_uid}:consume") == ["consume"]
    assert engine_claim(service, "team-a", "early", early_uid)["consumed"]["day-5"] == [
        pytest.approx(0.1)
    ]
    late_uid = late["metadata"]["uid"]
    assert engine_claim(service, "team-a", "late", late_uid)["state"] == "allocated"
    with service.admin() as admin:
        rows = admin.get("/v1/audit", params={"limit": 10_000}).json()["rows"]
    submitted = [r for r in rows if r["op"] == "submit" and late_uid in str(r["args"])]
    assert len(submitted) == 1


def test_status_writes_retry_on_conflicts() -> None:
    """A status computed from a stale read is refused (409) and redone on a fresh one
    (on a cluster of its own: no operator writes there meanwhile)."""
    with running_emulated_cluster() as cluster:
        contested(cluster)


def contested(cluster: EmulatedCluster) -> None:
    block(cluster, "contested")
    path = "/apis/dpsched.io/v1/privateblocks/contested"
    reads = 0

    class StaleOnce(KubeApi):
        async def get(self, path: str) -> dict[str, Any] | None:
            nonlocal reads
            reads += 1
            found = await super().get(path)
            if reads == 1 and found is not None:  # someone writes between our read and patch
                cluster.patch(
                    API, "privateblocks", None, "contested", {"metadata": {"labels": {"x": "1"}}}
                )
            return found

    async def write() -> bool:
        api = StaleOnce(Connection(server=cluster.url, insecure=True))
        try:
            return await api.patch_status(path, {"claims": 7})
        finally:
            await api.close()

    assert asyncio.run(write()) is True
    assert reads == 2
    assert status(cluster, None, "contested", "privateblocks")["claims"] == 7
    stale = {"metadata": {"resourceVersion": "1"}, "status": {"claims": 8}}
    reply = cluster.http.patch(
        f"{path}/status", json=stale, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert reply.status_code == 409


# --------------------------------------------------------------------- pods
def gated_pod(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    """A Pod as the API server stores it after our admission webhook mutated it."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "labels": {"dpsched.io/managed": "true"},
            "annotations": {"dp-mode": "true", "dp-request": "true", **annotations},
        },
        "spec": {"containers": [{"name": "job", "image": "trainer"}]},
    }
    review = {"request": {"uid": "1", "operation": "CREATE", "object": pod}}
    answer = admission_response(review)["response"]
    assert answer["allowed"], answer
    patched: dict[str, Any] = jsonpatch.apply_patch(
        pod, json.loads(base64.b64decode(answer["patch"]))
    )
    assert patched["spec"]["schedulingGates"] == [{"name": GATE}]
    return patched


def pod(cluster: EmulatedCluster, name: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.get("v1", "pods", "team-a", name) or {}
    return found


def reviews_blocks(cluster: EmulatedCluster, days: range) -> None:
    for day in days:
        body = {"apiVersion": API, "kind": "PrivateBlock", "metadata": {"name": f"reviews-{day}"}}
        spec = {"dataset": "reviews", "dimensions": {"time": day}, "epsilon": 1.0, "size": 1000}
        cluster.create(API, "privateblocks", None, {**body, "spec": spec})


def test_a_gated_pod_gets_its_budget_then_schedules_and_consumes_when_it_ends(
    cluster: EmulatedCluster, service: Service, operator: RunningOperator
) -> None:
    reviews_blocks(cluster, range(1, 3))
    annotations = {
        "dp-dataset": "reviews",
        "dp-start-time": "1",
        "dp-end-time": "3",
        "dp-min-epsilon": "0.1",
        "dp-expected-epsilon": "0.5",
    }
    cluster.create("v1", "pods", "team-a", gated_pod("counts", annotations))
    granted = wait_until(
        lambda: (
            not pod(cluster, "counts")["spec"].get("schedulingGates") and pod(cluster, "counts")
        ),
        what="the gate to be removed",
    )
    written = granted["metadata"]["annotations"]
    assert written["dp-request"] == "false"
    assert float(written["dp-actual-epsilon"]) == pytest.approx(0.5)
    assert sorted(json.loads(written["dp-acquired-blocks"])) == ["reviews-1", "reviews-2"]
    assert written["dp-actual-number-of-data"] == "2000"
    assert "dp-min-epsilon" not in written and "dp-expected-epsilon" not in written
    made = cluster.get(API, "privacyclaims", "team-a", "pod-counts")
    assert made["metadata"]["ownerReferences"][0]["uid"] == granted["metadata"]["uid"]
    uid = made["metadata"]["uid"]
    # A checkpoint, then the end: consumed in full (it ran).
    patch = {"metadata": {"annotations": {"dp-consumed-fraction": "0.4"}}}
    cluster.patch("v1", "pods", "team-a", "counts", patch)
    wait_until(lambda: status(cluster, "team-a", "pod-counts").get("consumedFraction") == 0.4)
    cluster.http.patch(
        "/api/v1/namespaces/team-a/pods/counts/status",
        json={"status": {"phase": "Succeeded"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    phase_becomes(cluster, "team-a", "pod-counts", "Consumed")
    consumed = engine_claim(service, "team-a", "pod-counts", uid)["consumed"]
    assert consumed["reviews-1"] == [pytest.approx(0.5)]


def test_a_pod_that_never_ran_gives_its_budget_back_and_a_refused_one_stays_gated(
    cluster: EmulatedCluster, service: Service, operator: RunningOperator
) -> None:
    reviews_blocks(cluster, range(10, 11))
    wanted = {"dp-dataset": "reviews", "dp-start-time": "10", "dp-end-time": "11"}
    cluster.create(
        "v1", "pods", "team-a", gated_pod("idle", {**wanted, "dp-expected-epsilon": "0.3"})
    )
    wait_until(lambda: not pod(cluster, "idle")["spec"].get("schedulingGates"))
    uid = cluster.get(API, "privacyclaims", "team-a", "pod-idle")["metadata"]["uid"]
    cluster.delete("v1", "pods", "team-a", "idle")  # deleted before any container ran
    wait_until(lambda: engine_claim(service, "team-a", "pod-idle", uid)["state"] == "released")
    assert engine_block(service, "reviews-10")["consumed"] == [0.0]
    cluster.create(
        "v1", "pods", "team-a", gated_pod("greedy", {**wanted, "dp-expected-epsilon": "5"})
    )
    wait_until(lambda: "BudgetRefused" in reasons(cluster, "team-a", "greedy"))
    assert pod(cluster, "greedy")["spec"]["schedulingGates"] == [{"name": GATE}]
    assert pod(cluster, "greedy")["metadata"]["annotations"]["dp-request"] == "true"


def test_a_claim_made_before_its_blocks_waits_for_them(
    cluster: EmulatedCluster, service: Service, operator: RunningOperator
) -> None:
    """Blocks and claims are reconciled concurrently: a claim naming a PrivateBlock the
    ledger has not seen yet waits for it instead of being rejected."""
    claim(cluster, "team-a", "eager", {"blocks": ["late-day"], "demand": {"epsilon": 0.1}})
    selector = {"dataset": "late", "where": ["time >= 0"]}
    claim(cluster, "team-a", "eager-selector", {"blocks": selector, "demand": {"epsilon": 0.1}})
    time.sleep(2.5)  # two or three handler retries
    assert status(cluster, "team-a", "eager").get("phase") != "Rejected"
    assert status(cluster, "team-a", "eager-selector").get("phase") != "Rejected"
    block(cluster, "late-day")
    body = {"apiVersion": API, "kind": "PrivateBlock", "metadata": {"name": "late-0"}}
    spec = {"dataset": "late", "dimensions": {"time": 0}, "epsilon": 1.0}
    cluster.create(API, "privateblocks", None, {**body, "spec": spec})
    phase_becomes(cluster, "team-a", "eager", "Allocated")
    assert phase_becomes(cluster, "team-a", "eager-selector", "Allocated")["blocks"] == ["late-0"]


def logged(caplog: pytest.LogCaptureFixture, thread: str, text: str, since: int = 0) -> bool:
    return any(r.threadName == thread and text in r.getMessage() for r in caplog.records[since:])


def resumed(caplog: pytest.LogCaptureFixture) -> int:
    return sum("Resuming operations" in r.getMessage() for r in caplog.records)


def peering_priorities(cluster: EmulatedCluster) -> list[int]:
    found = cluster.get("kopf.dev/v1", "clusterkopfpeerings", None, "dpsched") or {}
    return sorted(int(m["priority"]) for m in (found.get("status") or {}).values())


def peering_object(cluster: EmulatedCluster) -> None:
    """The ClusterKopfPeering `dpsched` replicas elect through (as the chart creates it)."""
    cluster.emulator.declare(
        "kopf.dev/v1/clusterkopfpeerings", "ClusterKopfPeering", namespaced=False
    )
    peering: dict[str, Any] = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering"}
    cluster.create(
        "kopf.dev/v1", "clusterkopfpeerings", None, {**peering, "metadata": {"name": "dpsched"}}
    )


def test_replicas_elect_one_operator_and_the_standby_takes_over(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    """kopf peering: a replica that finds a live peer of higher priority stays paused
    while that one runs, and resumes when it stops. The standby starts once the
    elected replica's keep-alive is in the peering object, so its first look sees it
    (two replicas starting at the same moment may both act for a moment: see the
    next test)."""
    caplog.set_level(logging.INFO, logger="kopf")
    with running_emulated_cluster() as cluster:
        peering_object(cluster)
        replicas = [
            RunningOperator(service, cluster, ("dpsched", p), token=t)
            for p, t in ((100, "elected"), (10, "standby"))
        ]
        elected, standby = replicas
        try:
            elected.start()
            wait_until(lambda: peering_priorities(cluster) == [100], what="the first keep-alive")
            wait_until(lambda: resumed(caplog) == 1, what="the elected replica to resume")
            standby.start()
            wait_until(lambda: peering_priorities(cluster) == [10, 100], what="both keep-alives")
            block(cluster, "elected")
            claim(cluster, "team-a", "first", {"blocks": ["elected"], "demand": {"epsilon": 0.1}})
            phase_becomes(cluster, "team-a", "first", "Allocated")
            # kopf starts paused: only the elected replica has resumed.
            assert not logged(caplog, "operator-standby", "Resuming operations")
            elected.stop()
            wait_until(
                lambda: logged(caplog, "operator-standby", "Resuming operations"),
                what="the standby to resume",
            )
            claim(cluster, "team-a", "second", {"blocks": ["elected"], "demand": {"epsilon": 0.1}})
            phase_becomes(cluster, "team-a", "second", "Allocated")
        finally:
            for replica in replicas:
                replica.stop()


FINALIZER = "dpsched.io/finalizer"


def adds_finalizer(method: str, path: str, body: bytes) -> bool:
    """Is it kopf's JSON patch adding its finalizer to a PrivacyClaim?"""
    if method != "PATCH" or "/privacyclaims/" not in path:
        return False
    try:
        operations = json.loads(body)
    except ValueError:
        return False
    return isinstance(operations, list) and any(
        isinstance(op, dict)
        and op.get("op") == "add"
        and str(op.get("path", "")).startswith("/metadata/finalizers")
        for op in operations
    )


@attrs.define(kw_only=True)
class HeldFinalizers(FaithfulEmulator):
    """Holds a replica's (known by its token) JSON patch adding kopf's finalizer to a
    claim until the test releases it: the test orders the two replicas' writes."""

    arrived: dict[str, threading.Event] = attrs.field(factory=dict)
    release: dict[str, threading.Event] = attrs.field(factory=dict)

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        token = raw.headers.get("Authorization", "").removeprefix("Bearer ")
        if token in self.release and adds_finalizer(raw.method, raw.path, await raw.read()):
            self.arrived[token].set()
            await asyncio.to_thread(self.release[token].wait, 30)
        return await super().__call__(raw)


def test_a_claim_two_replicas_race_for_is_never_stranded(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    """Two replicas act at once for a moment while peering settles (both start
    together; or a new replica of higher priority starts while the elected one works).
    Here the replica of low priority, alone at first, adds kopf's finalizer to a new
    claim and pauses, for the other has started, before it sees its own write. The
    elected replica made its own finalizer patch on the version before: its
    resourceVersion test fails, and kopf keeps it for the object's next event, whose
    cycle then runs no handler; no event follows. Without `settling.settle` touching
    such an object, the claim is never handled (no status: the symptom of a flaky
    run). The emulator holds each replica's finalizer patch until the test releases
    it, so the order is forced, not left to timing."""
    caplog.set_level(logging.INFO, logger="dpsched.k8s")
    caplog.set_level(logging.DEBUG, logger="kopf")  # last: it sets the handler's level too
    held = HeldFinalizers()
    for token in ("low", "high"):
        held.arrived[token] = threading.Event()
        held.release[token] = threading.Event()
    with running_emulated_cluster(held) as cluster:
        peering_object(cluster)
        replicas = [
            RunningOperator(service, cluster, ("dpsched", p), token=t, settle_after=1.0)
            for p, t in ((10, "low"), (100, "high"))
        ]
        low, high = replicas
        try:
            low.start()
            wait_until(lambda: resumed(caplog) == 1, what="the replica alone to resume")
            block(cluster, "contested")
            claim(
                cluster,
                "team-a",
                "contested",
                {"blocks": ["contested"], "demand": {"epsilon": 0.1}},
            )
            assert held.arrived["low"].wait(20), "the low replica never added its finalizer"
            since = len(caplog.records)
            high.start()
            wait_until(
                lambda: logged(
                    caplog, "operator-low", "Pausing the watch-stream for privacyclaims", since
                ),
                what="the low replica to pause and close its watch of claims",
            )
            assert held.arrived["high"].wait(20), "the elected replica never saw the claim"
            held.release["low"].set()
            wait_until(
                lambda: (
                    FINALIZER
                    in cluster.get(API, "privacyclaims", "team-a", "contested")["metadata"].get(
                        "finalizers", []
                    )
                ),
                what="the low replica's finalizer",
            )
            held.release["high"].set()
            phase_becomes(cluster, "team-a", "contested", "Allocated")
            assert logged(caplog, "operator-high", "Could not apply the patch in full")
            assert logged(caplog, "operator-high", "touching team-a/contested")
        finally:
            for event in held.release.values():
                event.set()
            for replica in replicas:
                replica.stop()


def test_decisions_made_while_no_operator_ran_reach_the_objects(
    cluster: EmulatedCluster, service: Service, operator: RunningOperator
) -> None:
    """A grant made while the operator is down (a release frees budget for a waiting
    claim) shows in its status after the restart, and controls set while a claim was
    pending (release: true) apply once it is granted."""
    block(cluster, "day-6", epsilon=1.0)
    held = claim(cluster, "team-a", "hog", {"blocks": ["day-6"], "demand": {"epsilon": 0.8}})
    phase_becomes(cluster, "team-a", "hog", "Allocated")
    claim(cluster, "team-a", "patient", {"blocks": ["day-6"], "demand": {"epsilon": 0.5}})
    phase_becomes(cluster, "team-a", "patient", "Pending")
    spec = {"blocks": ["day-6"], "demand": {"epsilon": 0.1}, "release": True}
    claim(cluster, "team-a", "quitter", spec)
    operator.stop()
    try:
        with httpx.Client(
            base_url=service.url,
            headers={"Authorization": f"Bearer {ADMIN}", "X-Dpsched-Tenant": "k8s.team-a"},
        ) as tenant:
            uid = held["metadata"]["uid"]
            reply = tenant.post(f"/v1/claims/hog@{uid}/release", json={"request_id": "free"})
            assert reply.status_code == 200, reply.text
    finally:
        operator.start()
    phase_becomes(cluster, "team-a", "patient", "Allocated")
    phase_becomes(cluster, "team-a", "hog", "Released")
    phase_becomes(cluster, "team-a", "quitter", "Released")


def test_deleting_a_granted_pod_claim_consumes_it(
    cluster: EmulatedCluster, service: Service, operator: RunningOperator
) -> None:
    """Whoever deletes the claim of a Pod that may have run, its grant is consumed, not
    given back."""
    reviews_blocks(cluster, range(20, 21))
    wanted = {"dp-dataset": "reviews", "dp-start-time": "20", "dp-end-time": "21"}
    cluster.create(
        "v1", "pods", "team-a", gated_pod("runner", {**wanted, "dp-expected-epsilon": "0.2"})
    )
    wait_until(lambda: not pod(cluster, "runner")["spec"].get("schedulingGates"))
    uid = cluster.get(API, "privacyclaims", "team-a", "pod-runner")["metadata"]["uid"]
    cluster.delete(API, "privacyclaims", "team-a", "pod-runner")
    wait_until(lambda: engine_claim(service, "team-a", "pod-runner", uid)["state"] == "consumed")
    assert engine_block(service, "reviews-20")["consumed"] == [pytest.approx(0.2)]


def test_a_standby_replica_does_not_mirror() -> None:
    """Only the elected replica writes statuses: the mirror of a replica that a live
    peer of higher priority outranks stands by (kopf pauses its handlers)."""
    now = dt.datetime.now(dt.UTC)
    with running_emulated_cluster() as cluster:
        cluster.emulator.declare(
            "kopf.dev/v1/clusterkopfpeerings", "ClusterKopfPeering", namespaced=False
        )
        body: dict[str, Any] = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering"}
        cluster.create(
            "kopf.dev/v1", "clusterkopfpeerings", None, {**body, "metadata": {"name": "p"}}
        )
        peers = {
            "leader": {"priority": 100, "lifetime": 60, "lastseen": now.isoformat()},
            "gone": {
                "priority": 500,
                "lifetime": 60,
                "lastseen": (now - dt.timedelta(hours=1)).isoformat(),
            },
        }
        reply = cluster.http.patch(
            "/apis/kopf.dev/v1/clusterkopfpeerings/p/status",
            json={"status": peers},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert reply.status_code == 200, reply.text

        async def standing_by(priority: int, peering: str | None = "p") -> bool:
            api = KubeApi(Connection(server=cluster.url, insecure=True))
            config = OperatorConfig(service_url="http://127.0.0.1:1", admin_token="x")
            try:
                operator = Operator(config, api, peering=peering, priority=priority)
                return await operator.mirror.standing_by()
            finally:
                await api.close()

        assert asyncio.run(standing_by(10)) is True  # the live leader outranks it
        assert asyncio.run(standing_by(100)) is False  # it is the leader (the 500 is dead)
        assert asyncio.run(standing_by(10, peering=None)) is False  # no peering: standalone
