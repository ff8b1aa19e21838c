"""The Kubernetes operator: PrivateBlocks and PrivacyClaims become engine operations.

The operator schedules nothing itself. It is a client of the budget service's API (in
the same process under `dpsched serve --kubernetes`), acting for the namespace as the
tenant (`tenants.py`), so validation, idempotency, the journal and the scheduling rounds
are the service's, exactly as for any other client. This module wires its parts to kopf:

- `reconcile.py`: blocks and claims into the ledger (the handlers of the two kinds);
- `journal_mirror.py`: statuses and Events written from the journal, the source of truth;
- `pod_gating.py`: claims for gated Pods, their gates, their checkpoints and ends;
- `settling.py`: the daemon that sees every new object handled while peering settles;
- `statuses.py`: the statuses and conditions written on the objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import kopf

from dpsched.k8s.journal_mirror import JournalMirror
from dpsched.k8s.kube import KubeApi, path_of
from dpsched.k8s.pod_gating import POD_LABEL, PodGating
from dpsched.k8s.pods import GATE, wants_budget
from dpsched.k8s.reconcile import BLOCK_WAIT_RETRIES, Reconciler, UnknownBlocksError
from dpsched.k8s.resources import BLOCKS, CLAIMS, GROUP, VERSION
from dpsched.k8s.settling import settle, unhandled
from dpsched.k8s.tenants import TenantClients

OPTED_IN = {"dp-mode": "true"}
"""The annotation of the Pods the operator looks at."""


@dataclass
class OperatorConfig:
    """The service the operator is a client of (its URL and the admin token), and how
    often the operator looks again."""

    service_url: str
    admin_token: str
    sync_interval: float = 0.5
    """Seconds between two reads of the journal's tail (statuses lag by about this)."""
    settle_after: float = 30.0
    """An object kopf has not finished creating is looked at after this many seconds,
    and touched if it did not change in the next as many (see `settling.settle`). Well
    above a claim's wait in a burst (p99 16 s to a decision for 1,000 claims at once),
    so touches do not add to a backlog; a stranded object is rare (a race while
    peering settles) and waits about a minute."""


@dataclass
class Operator:
    """The operator's parts, bound to one service and one API server."""

    config: OperatorConfig
    kube: KubeApi
    peering: str | None = None
    priority: int = 0
    """With kopf peering: a standby (a live peer has a higher priority) does not mirror."""
    tenants: TenantClients = field(init=False)
    ledger: Reconciler = field(init=False)
    pods: PodGating = field(init=False)
    mirror: JournalMirror = field(init=False)

    def __post_init__(self) -> None:
        self.tenants = TenantClients(self.config.service_url, self.config.admin_token)
        self.ledger = Reconciler(self.tenants)
        self.pods = PodGating(self.kube, self.tenants)
        self.mirror = JournalMirror(
            self.kube,
            self.tenants,
            self.pods,
            self.config.sync_interval,
            peering=self.peering,
            priority=self.priority,
        )

    def register(self, registry: kopf.OperatorRegistry) -> None:
        """Attach the handlers to a kopf registry (the default one, or a test's)."""
        _register_lifecycle(self, registry)
        _register_blocks(self.ledger, registry)
        _register_claims(self.ledger, registry)
        _register_pods(self.pods, registry)
        _register_settling(self.kube, self.config.settle_after, registry)


def _handler_id(name: str) -> str:
    """kopf keeps a handler's progress on each object (retries, a temporary error's
    delay) under the handler's id, by default its function's qualified name, and names
    it in its logs and Events. The ids stay those the handlers had when
    `Operator.register` defined them all, so an object in the middle of its handling
    when the operator is upgraded keeps its progress."""
    return f"Operator.register.<locals>.{name}"


def _register_lifecycle(operator: Operator, registry: kopf.OperatorRegistry) -> None:
    """The mirror runs while kopf does; kopf's cleanup closes every connection."""

    @kopf.on.startup(id=_handler_id("_started"), registry=registry)
    async def _started(**_: Any) -> None:
        await operator.mirror.start()

    @kopf.on.cleanup(id=_handler_id("_stopped"), registry=registry)
    async def _stopped(**_: Any) -> None:
        await operator.mirror.stop()
        await operator.kube.close()
        operator.tenants.close()


def _register_blocks(ledger: Reconciler, registry: kopf.OperatorRegistry) -> None:
    on, hid = kopf.on, _handler_id("_block")

    @on.resume(GROUP, VERSION, BLOCKS, id=hid, registry=registry)
    @on.create(GROUP, VERSION, BLOCKS, id=hid, registry=registry)
    @on.update(GROUP, VERSION, BLOCKS, field="spec", id=hid, registry=registry)
    def _block(*, name: str, spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
        status = ledger.reconcile_block(name, dict(spec))
        patch.status.update(status)

    @on.delete(GROUP, VERSION, BLOCKS, id=_handler_id("_block_deleted"), registry=registry)
    def _block_deleted(*, name: str, **_: Any) -> None:
        if ledger.block_held(name):
            raise kopf.TemporaryError(
                f"claims still hold budget on block {name!r}: deleting it waits", delay=5
            )


def _register_claims(ledger: Reconciler, registry: kopf.OperatorRegistry) -> None:
    on, hid = kopf.on, _handler_id("_claim")

    @on.resume(GROUP, VERSION, CLAIMS, id=hid, registry=registry)
    @on.create(GROUP, VERSION, CLAIMS, id=hid, registry=registry)
    @on.update(GROUP, VERSION, CLAIMS, field="spec", id=hid, registry=registry)
    def _claim(
        *,
        namespace: str | None,
        name: str,
        uid: str,
        spec: kopf.Spec,
        body: kopf.Body,
        patch: kopf.Patch,
        retry: int,
        **_: Any,
    ) -> None:
        assert namespace is not None  # claims are namespaced
        patient = retry < BLOCK_WAIT_RETRIES
        try:
            status, events = ledger.reconcile_claim(namespace, name, uid, dict(spec), patient)
        except UnknownBlocksError as exc:
            raise kopf.TemporaryError(f"waiting for its blocks: {exc}", delay=1) from None
        if status is not None:
            patch.status.update(status)
        patch.status["observedGeneration"] = body.metadata.get("generation")
        for reason, message, warning in events:
            (kopf.warn if warning else kopf.info)(body, reason=reason, message=message)

    @on.delete(GROUP, VERSION, CLAIMS, id=_handler_id("_claim_deleted"), registry=registry)
    def _claim_deleted(
        *, namespace: str | None, name: str, uid: str, labels: Any, **_: Any
    ) -> None:
        assert namespace is not None
        ledger.withdraw_claim(namespace, name, uid, for_pod=POD_LABEL in (labels or {}))


def _register_pods(pods: PodGating, registry: kopf.OperatorRegistry) -> None:
    """Opted-in Pods: a claim for a gated one, its checkpoints and its end."""
    on, hid = kopf.on, _handler_id("_pod")

    @on.resume("", "v1", "pods", annotations=OPTED_IN, id=hid, registry=registry)
    @on.create("", "v1", "pods", annotations=OPTED_IN, id=hid, registry=registry)
    async def _pod(*, body: kopf.Body, **_: Any) -> None:
        pod = dict(body)
        gated = any(g.get("name") == GATE for g in body.spec.get("schedulingGates") or [])
        if gated and wants_budget(body.metadata.annotations):
            problem = await pods.claim_for_pod(pod)
            if problem is not None:
                kopf.warn(body, reason="BudgetRefused", message=problem)

    @on.field(
        "",
        "v1",
        "pods",
        field="metadata.annotations.dp-consumed-fraction",
        annotations=OPTED_IN,
        id=_handler_id("_pod_checkpoint"),
        registry=registry,
    )
    async def _pod_checkpoint(*, body: kopf.Body, **_: Any) -> None:
        await pods.pod_progress(dict(body), ended=False)

    @on.field(
        "",
        "v1",
        "pods",
        field="status.phase",
        annotations=OPTED_IN,
        id=_handler_id("_pod_phase"),
        registry=registry,
    )
    async def _pod_phase(*, body: kopf.Body, new: Any, **_: Any) -> None:
        if new in ("Succeeded", "Failed"):
            await pods.pod_progress(dict(body), ended=True)

    @on.delete(
        "", "v1", "pods", annotations=OPTED_IN, id=_handler_id("_pod_deleted"), registry=registry
    )
    async def _pod_deleted(*, body: kopf.Body, **_: Any) -> None:
        await pods.pod_progress(dict(body), ended=True)


def _register_settling(kube: KubeApi, delay: float, registry: kopf.OperatorRegistry) -> None:
    """The settling daemon on all three kinds. The initial delay: for an object handled
    by then (nearly all of them) the daemon is stopped by its filter before it is
    invoked (no INFO log, no Event)."""
    on, hid = kopf.on, _handler_id("_settle")

    @on.daemon(
        GROUP, VERSION, BLOCKS, when=unhandled, initial_delay=delay, id=hid, registry=registry
    )
    @on.daemon(
        GROUP, VERSION, CLAIMS, when=unhandled, initial_delay=delay, id=hid, registry=registry
    )
    @on.daemon(
        "",
        "v1",
        "pods",
        annotations=OPTED_IN,
        when=unhandled,
        initial_delay=delay,
        id=hid,
        registry=registry,
    )
    async def _settle(
        *,
        resource: kopf.Resource,
        namespace: str | None,
        name: str,
        body: kopf.Body,
        stopped: kopf.DaemonStopped,
        **_: Any,
    ) -> None:
        path = path_of(resource.group, resource.version, resource.plural, namespace, name)
        await settle(kube, path, body, stopped, delay)
