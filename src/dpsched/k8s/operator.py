"""The Kubernetes operator: PrivateBlocks and PrivacyClaims become engine operations.

The operator schedules nothing itself. It is a client of the budget service's API (in
the same process under `dpsched serve --kubernetes`), acting for the namespace as the
tenant, so validation, idempotency, the journal and the scheduling rounds are the
service's, exactly as for any other client. Every operation carries a request id made
from the object's uid (and the consumption target), so a re-delivered event or an
operator restarted mid-way never applies anything twice: the service answers a retry
with the first answer. The journal is the source of truth; statuses mirror it: a
background task tails the journal (`/v1/audit`) and writes the status of every claim
and block an operation touched, with Events on grant, expiry and release.

Names: a claim's id in the engine is `<name>@<uid>` in the tenant `<namespace>`, so a
claim deleted and created again under the same name is a new claim; a block's id is
its name (blocks are never removed from the ledger: they are the audit trail).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import kopf
from pydantic import ValidationError

from dpsched.client import Client, ServiceError
from dpsched.errors import DpschedError
from dpsched.k8s.kube import KubeApi, KubeError, path_of
from dpsched.k8s.pods import GATE, claim_from_annotations, granted_annotations, wants_budget
from dpsched.k8s.resources import (
    API_VERSION,
    GROUP,
    VERSION,
    ClaimPhase,
    block_spec,
    claim_spec,
)

BLOCKS = "privateblocks"
CLAIMS = "privacyclaims"
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
PAGE = 1000
MIRROR_WRITES = 16
"""Status writes the mirror keeps in flight at once."""
BLOCK_WAIT_RETRIES = 60
"""Handler retries (one a second) a claim waits for blocks the ledger does not know yet."""
TENANT_PREFIX = "k8s."
"""A namespace's tenant is `k8s.<namespace>`: never one a REST client made (give REST
tenants other names), and the journal mirror knows the operator's claims by it."""
POD_LABEL = "dpsched.io/pod"
"""On a claim made for a gated Pod: the Pod's name."""
KOPF_PREFIX = "dpsched.io"
"""The prefix of kopf's annotations on our objects (progress, diff-base, touches)."""
HANDLED = f"{KOPF_PREFIX}/last-handled-configuration"
"""kopf's diff-base: written once every creation handler of the object has finished."""
TOUCH = f"{KOPF_PREFIX}/touch-dummy"
"""The annotation kopf writes to wake its own delayed handlers (and removes after)."""

log = logging.getLogger("dpsched.k8s")


class UnknownBlocksError(Exception):
    """The claim names blocks the ledger does not have (yet)."""


@dataclass
class OperatorConfig:
    service_url: str
    admin_token: str
    sync_interval: float = 0.5
    """Seconds between two reads of the journal's tail (statuses lag by about this)."""
    settle_after: float = 30.0
    """An object kopf has not finished creating is looked at after this many seconds,
    and touched if it did not change in the next as many (see `Operator.settle`). Well
    above a claim's wait in a burst (p99 16 s to a decision for 1,000 claims at once),
    so touches do not add to a backlog; a stranded object is rare (a race while
    peering settles) and waits about a minute."""


@dataclass
class Operator:
    """Handlers and the status mirror, bound to one service and one API server."""

    config: OperatorConfig
    kube: KubeApi
    peering: str | None = None
    priority: int = 0
    """With kopf peering: a standby (a live peer has a higher priority) does not mirror."""
    _clients: dict[str | None, Client] = field(default_factory=dict)
    _tenants: set[str] = field(default_factory=set)
    _task: asyncio.Task[None] | None = None
    cursor: int = 0

    # ------------------------------------------------------------ service access
    def client(self, namespace: str | None = None) -> Client:
        if namespace not in self._clients:
            self._clients[namespace] = Client(
                self.config.service_url,
                self.config.admin_token,
                act_as=None if namespace is None else TENANT_PREFIX + namespace,
            )
        return self._clients[namespace]

    def tenant(self, namespace: str) -> Client:
        """The client acting as the namespace's tenant (created on first use)."""
        if namespace not in self._tenants:
            try:
                self.client().add_tenant(TENANT_PREFIX + namespace)
            except ServiceError as exc:
                if exc.status != 409:  # 409: it exists, which is what we want
                    raise
            self._tenants.add(namespace)
        return self.client(namespace)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    # ------------------------------------------------------------------ blocks
    def reconcile_block(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Add the block to the ledger (once) and return its status."""
        try:
            block = block_spec(name, spec)
        except (ValidationError, DpschedError) as exc:
            return {"reason": f"invalid spec: {_first_error(exc)}", "exhausted": False}
        body = block.model_dump(mode="json", exclude={"arrival"}, exclude_none=True)
        admin = self.client()
        try:
            view = admin.add_block(body)
        except ServiceError as exc:
            if exc.status != 409:
                return {"reason": f"{exc.field}: {exc.reason}", "exhausted": False}
            view = admin.block(name)
            if not _same_block(view, body):
                return {
                    "reason": f"a block named {name!r} exists in the ledger with another spec "
                    "(block names are never reused)",
                    "exhausted": False,
                }
        return block_status(view)

    def block_held(self, name: str) -> bool:
        try:
            view = self.client().block(name)
        except ServiceError as exc:
            if exc.status == 404:
                return False
            raise
        return int(view["claims_holding"]) > 0 or any(v > 0 for v in view["reserved"])

    # ------------------------------------------------------------------ claims
    def reconcile_claim(
        self, namespace: str, name: str, uid: str, spec: dict[str, Any], patient: bool = False
    ) -> tuple[dict[str, Any] | None, list[tuple[str, str, bool]]]:
        """Submit the claim (once) and apply its consumption controls. Returns the status
        to write for a claim the engine never saw (refused before submission; all other
        statuses come from the journal's mirror) and the Events to post (reason,
        message, warning). `patient`: a claim whose blocks the ledger does not know yet
        raises UnknownBlocksError (their PrivateBlocks may be on their way: the two kinds
        are reconciled concurrently) instead of being rejected."""
        claim_id = engine_id(name, uid)
        events: list[tuple[str, str, bool]] = []
        try:
            claim, controls = claim_spec(claim_id, spec)
        except (ValidationError, DpschedError) as exc:
            reason = f"invalid spec: {_first_error(exc)}"
            return _rejected(reason), [("Rejected", reason, True)]
        body = claim.model_dump(mode="json", exclude_unset=True)
        body["id"] = claim_id
        tenant = self.tenant(namespace)
        try:
            view = tenant.submit(body)
        except ServiceError as exc:
            if exc.status == 409 and exc.field == "id":
                view = tenant.claim(claim_id)
                events.append(
                    (
                        "RequestChanged",
                        "the claim's request cannot change once submitted: the change is ignored",
                        True,
                    )
                )
            elif exc.status in (400, 404, 422):
                reason = f"{exc.field}: {exc.reason}"
                if patient and exc.field.startswith("blocks"):
                    raise UnknownBlocksError(reason) from None
                return _rejected(reason), [("Rejected", reason, True)]
            else:
                raise
        if view["state"] == "allocated":
            self._apply_controls(tenant, view, uid, controls.consumed_fraction, controls.release)
        return None, events

    def _apply_controls(
        self, tenant: Client, view: dict[str, Any], uid: str, target: float, release: bool
    ) -> dict[str, Any]:
        claim_id = view["id"]
        done = consumed_fraction(view)
        try:
            if target > done + 1e-12:
                view = tenant.consume(
                    claim_id,
                    fraction=min(target - done, 1.0),
                    request_id=f"{uid}:consume:{target!r}",
                )
            if release and view["state"] == "allocated":
                view = tenant.release(claim_id, request_id=f"{uid}:release")
        except ServiceError as exc:
            if exc.status != 409:  # 409: no longer allocated; the status says what it is
                raise
            view = tenant.claim(claim_id)
        return view

    def withdraw_claim(self, namespace: str, name: str, uid: str, for_pod: bool = False) -> None:
        """A deleted claim: withdrawn if pending, its unconsumed grant released if allocated.
        A Pod's claim (`for_pod`) that holds a grant is consumed instead: its Pod may have
        run (the Pod's own end, handled first when it can be, releases the grant of a Pod
        that never ran), so deleting it never gives back budget a job may have used."""
        tenant = self.tenant(namespace)
        claim_id = engine_id(name, uid)
        try:
            view = tenant.claim(claim_id) if for_pod else None
            if view is not None and view["state"] == "allocated":
                self._apply_controls(tenant, view, uid, 1.0, release=False)
                return
            tenant.withdraw(claim_id, request_id=f"{uid}:withdraw")
        except ServiceError as exc:
            if exc.status not in (404, 409):  # never submitted, or already finished
                raise

    # ----------------------------------------------------------- status mirror
    async def standing_by(self) -> bool:
        """Is another live replica elected (kopf pauses our handlers; the mirror waits)?"""
        if self.peering is None:
            return False
        found = await self.kube.get(f"/apis/kopf.dev/v1/clusterkopfpeerings/{self.peering}")
        now = dt.datetime.now(dt.UTC)
        for peer in ((found or {}).get("status") or {}).values():
            if not isinstance(peer, dict) or int(peer.get("priority", 0)) <= self.priority:
                continue
            try:
                seen = dt.datetime.fromisoformat(str(peer["lastseen"]))
            except (KeyError, ValueError):
                continue
            if seen.tzinfo is None:
                seen = seen.replace(tzinfo=dt.UTC)
            if (now - seen).total_seconds() < float(peer.get("lifetime", 60)):
                return True
        return False

    async def mirror_forever(self) -> None:
        while True:
            try:
                if await self.standing_by():
                    await asyncio.sleep(self.config.sync_interval)
                    continue
                await self.mirror_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next pass retries: the journal is still there
                log.exception("mirroring statuses failed; retrying")
            await asyncio.sleep(self.config.sync_interval)

    async def start_mirror(self) -> None:
        """Start tailing the journal from its beginning: the first pass writes the status
        of every claim the journal names, so decisions made while no operator ran (a
        grant after a release, an expiry) reach their objects and Pods."""
        self.cursor = 0
        self._task = asyncio.create_task(self.mirror_forever())

    async def stop_mirror(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def mirror_once(self) -> None:
        """Read the journal past the cursor; write the status of every claim an
        operation touched, then of their blocks (all blocks after an unlocking)."""
        claims: dict[str, None] = {}  # ledger keys, in journal order
        every_block = False
        cursor = self.cursor
        while True:
            page = await asyncio.to_thread(self.client().audit, cursor, PAGE)
            for row in page["rows"]:
                args = row["args"] if isinstance(row["args"], dict) else {}
                key = args.get("claim")
                if isinstance(key, dict):  # a submission carries the whole claim
                    key = key.get("id")
                if isinstance(key, str) and key.startswith(TENANT_PREFIX):
                    claims[key] = None
                every_block |= row["op"] in ("unlock", "add_block")
            cursor = int(page["next_after"])
            if len(page["rows"]) < PAGE:
                break
        blocks = await self._mirror_claims(list(claims))
        if every_block:
            blocks = {b["id"] for b in await asyncio.to_thread(self.client().blocks)}
        for name in sorted(blocks):
            await self._mirror_block(name)
        self.cursor = cursor  # only now: a failed pass is redone from where it started

    def _views(self, keys: list[str]) -> list[dict[str, Any] | None]:
        """The claims' views from the service (one thread, one connection per tenant)."""
        views: list[dict[str, Any] | None] = []
        for key in keys:
            namespace, claim_id = namespace_of(key)
            try:
                views.append(self.client(namespace).claim(claim_id))
            except ServiceError as exc:
                if exc.status not in (403, 404):
                    raise
                views.append(None)
        return views

    async def _mirror_claims(self, keys: list[str]) -> set[str]:
        """Write the claims' statuses, MIRROR_WRITES at a time; the blocks they hold."""
        views = await asyncio.to_thread(self._views, keys)
        gate = asyncio.Semaphore(MIRROR_WRITES)

        async def one(key: str, view: dict[str, Any]) -> None:
            async with gate:
                await self._mirror_claim(key, view)

        found = [(k, v) for k, v in zip(keys, views, strict=True) if v is not None]
        await asyncio.gather(*(one(k, v) for k, v in found))
        return {b for _, view in found for b in view["blocks"]}

    async def _mirror_claim(self, key: str, view: dict[str, Any]) -> None:
        """Write one claim's status (and an Event when its phase changed)."""
        namespace, claim_id = namespace_of(key)
        name, uid = claim_id.rsplit("@", 1)
        path = path_of(GROUP, VERSION, CLAIMS, namespace, name)
        current = await self.kube.get(path)
        if current is None or current["metadata"].get("uid") != uid:
            return  # deleted, or a newer object of the same name
        old = current.get("status") or {}
        if view["state"] == "allocated":  # controls set while it was pending apply now
            view = await asyncio.to_thread(self._controls_of, namespace, uid, current, view)
        status = claim_status(view, old)
        await self.kube.patch_status(path, status, current)
        if status["phase"] != old.get("phase") and status["phase"] in PHASE_EVENTS:
            reason, warning = PHASE_EVENTS[status["phase"]]
            await self.kube.event(
                involved(current), "PrivacyClaim", reason, claim_message(view), warning=warning
            )
        if POD_LABEL in (current["metadata"].get("labels") or {}):
            changed = status["phase"] != old.get("phase")
            await self._settle_pod(current, view, changed)  # idempotent: it looks at the Pod

    def _controls_of(
        self, namespace: str, uid: str, claim: dict[str, Any], view: dict[str, Any]
    ) -> dict[str, Any]:
        spec = claim.get("spec") or {}
        target = float(spec.get("consumedFraction") or 0.0)
        release = bool(spec.get("release"))
        if target <= consumed_fraction(view) + 1e-12 and not release:
            return view
        return self._apply_controls(self.tenant(namespace), view, uid, target, release)

    async def _mirror_block(self, name: str) -> None:
        try:
            view = await asyncio.to_thread(self.client().block, name)
        except ServiceError as exc:
            if exc.status == 404:
                return
            raise
        await self.kube.patch_status(
            path_of(GROUP, VERSION, BLOCKS, None, name), block_status(view)
        )

    # --------------------------------------------------------------- settling
    async def settle(self, path: str, body: kopf.Body, stopped: kopf.DaemonStopped) -> None:
        """See that kopf finishes creating the object at `path`. A kopf daemon, on the
        live `body`, started `settle_after` seconds after kopf first saw the object and
        only while kopf has not written its diff-base (its record that every creation
        handler finished); it runs in the active replica only (kopf stops daemons when
        peering pauses it).

        Two replicas act at once for a moment while peering settles (both start
        together, or the elected one pauses for a new replica of higher priority), and
        both add kopf's finalizer to a new object. kopf adds it by a JSON patch tested
        against the resourceVersion it saw: the later one fails, kopf keeps it for the
        object's next event, and that cycle applies it (a no-op by then) and runs no
        handler. If the other replica paused before it saw its own write, no next event
        comes (kopf re-lists only when it resumes): the object would never be handled.
        So an object that has not changed for `settle_after` seconds is touched, as
        kopf touches objects whose handlers wait, and kopf handles it on that event (an
        extra cycle never does anything twice: the handlers are idempotent)."""
        seen: str | None = None
        while not stopped:
            meta = body.metadata
            if HANDLED in meta.annotations or meta.deletion_timestamp:
                return
            version = meta.get("resourceVersion")
            if version == seen:
                where = f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name
                log.info("touching %s: kopf has not handled it and nothing changed it", where)
                touch = {TOUCH: dt.datetime.now(dt.UTC).isoformat()}
                try:  # only the version seen: a newer one is an event kopf handles anyway
                    await self.kube.merge_patch(
                        path, {"metadata": {"resourceVersion": version, "annotations": touch}}
                    )
                except KubeError as exc:
                    if exc.status not in (404, 409):
                        raise
            seen = version
            await stopped.wait(self.config.settle_after)

    # -------------------------------------------------------------------- pods
    async def claim_for_pod(self, pod: dict[str, Any]) -> str | None:
        """Create the PrivacyClaim a gated Pod asks for, owned by the Pod (once; its name
        is `pod-<pod name>`). Returns why the Pod cannot have one, if it cannot."""
        meta = pod["metadata"]
        annotations = meta.get("annotations") or {}
        try:
            spec = claim_from_annotations(annotations)
        except DpschedError as exc:  # the webhook refuses these; a Pod made before it runs
            return f"annotation {getattr(exc, 'field', '')}: {getattr(exc, 'reason', exc)}"
        body = {
            "apiVersion": API_VERSION,
            "kind": "PrivacyClaim",
            "metadata": {
                "name": pod_claim_name(meta["name"]),
                "namespace": meta["namespace"],
                "labels": {POD_LABEL: meta["name"]},
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
        }
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{meta['namespace']}/{CLAIMS}"
        try:
            await self.kube.request("POST", path, body)
        except KubeError as exc:
            if exc.status != 409:  # 409: made already (a re-delivered event)
                raise
        return None

    async def _settle_pod(self, claim: dict[str, Any], view: dict[str, Any], changed: bool) -> None:
        """A pod's claim: once granted, write the seed's result annotations and remove the
        scheduling gate (idempotent: it looks at the Pod, so a pass after a restart
        finishes what an earlier one began); refused or expired (`changed`: just now),
        tell the Pod why it stays gated. Only the Pod that owns the claim is touched."""
        namespace = claim["metadata"]["namespace"]
        pod_name = claim["metadata"].get("labels", {}).get(POD_LABEL)
        path = path_of("", "v1", "pods", namespace, pod_name)
        pod = await self.kube.get(path)
        if pod is None or pod["metadata"].get("uid") != owner_uid(claim):
            return
        if view["state"] == "allocated":
            gates = (pod.get("spec") or {}).get("schedulingGates") or []
            annotations = pod["metadata"].get("annotations") or {}
            if annotations.get("dp-request") == "true":
                delta = await asyncio.to_thread(self.delta_of, view)
                written = granted_annotations(view, delta)
                await self.kube.merge_patch(path, {"metadata": {"annotations": written}})
            if any(g.get("name") == GATE for g in gates):
                await self._ungate(path)
        elif view["state"] in ("rejected", "expired") and changed:
            await self.kube.event(
                involved(pod, api_version="v1"),
                "Pod",
                "BudgetRefused" if view["state"] == "rejected" else "BudgetExpired",
                f"the Pod stays gated: its claim is {view['state']}: {view.get('reason')}",
                warning=True,
            )

    def delta_of(self, view: dict[str, Any]) -> float | None:
        deltas = []
        for name in view["blocks"]:
            try:
                found = self.client().block(name)
            except ServiceError:
                continue
            deltas.append(found.get("delta"))
        known = [d for d in deltas if d is not None]
        return max(known) if known else None

    async def _ungate(self, path: str) -> None:
        """Remove only our gate, guarded by the Pod's resourceVersion (another
        controller's gates stay); retried on a conflict."""
        for _ in range(8):
            pod = await self.kube.get(path)
            if pod is None:
                return
            gates = (pod.get("spec") or {}).get("schedulingGates") or []
            if not any(g.get("name") == GATE for g in gates):
                return
            remaining = [g for g in gates if g.get("name") != GATE]
            version = pod["metadata"].get("resourceVersion")
            operations: list[dict[str, Any]] = [
                {"op": "test", "path": "/metadata/resourceVersion", "value": version},
                (
                    {"op": "replace", "path": "/spec/schedulingGates", "value": remaining}
                    if remaining
                    else {"op": "remove", "path": "/spec/schedulingGates"}
                ),
            ]
            try:
                await self.kube.json_patch(path, operations)
                return
            except KubeError as exc:
                if exc.status not in (409, 422):
                    raise
            await asyncio.sleep(0.05)

    async def pod_progress(self, pod: dict[str, Any], ended: bool) -> None:
        """A pod's checkpoint (dp-consumed-fraction) or end: apply it to its claim, with the
        claim's own request ids, so whichever of the two paths runs first does it once."""
        meta = pod["metadata"]
        annotations = meta.get("annotations") or {}
        path = path_of(GROUP, VERSION, CLAIMS, meta["namespace"], pod_claim_name(meta["name"]))
        claim = await self.kube.get(path)
        if claim is None or owner_uid(claim) != meta.get("uid"):
            return  # no claim, or one another Pod of that name made
        try:
            target = min(max(float(annotations.get("dp-consumed-fraction", "0")), 0.0), 1.0)
        except ValueError:
            target = 0.0
        release = False
        if ended:
            release = not started(pod) or annotations.get("dp-on-exit") == "release"
            if not release:
                target = 1.0  # it ran: its output may have left the job
        spec = claim.get("spec") or {}
        target = max(target, float(spec.get("consumedFraction", 0.0)))
        uid = claim["metadata"]["uid"]
        claim_id = engine_id(claim["metadata"]["name"], uid)
        tenant = self.tenant(meta["namespace"])

        def apply() -> None:
            view = tenant.claim(claim_id)
            if view["state"] == "allocated":
                self._apply_controls(tenant, view, uid, target, release)

        # Errors propagate: kopf retries the handler (and keeps the Pod's finalizer), so
        # a Pod that ran never ends with its grant released by a transient failure.
        await asyncio.to_thread(apply)
        update: dict[str, Any] = {"consumedFraction": target}
        if release:
            update["release"] = True
        with contextlib.suppress(KubeError):  # the record on the claim is a courtesy
            await self.kube.merge_patch(path, {"spec": update})

    # ---------------------------------------------------------------- handlers
    def register(self, registry: kopf.OperatorRegistry) -> None:
        """Attach the handlers to a kopf registry (the default one, or a test's)."""
        on = kopf.on

        @on.startup(registry=registry)
        async def _started(**_: Any) -> None:
            await self.start_mirror()

        @on.cleanup(registry=registry)
        async def _stopped(**_: Any) -> None:
            await self.stop_mirror()
            await self.kube.close()
            self.close()

        @on.resume(GROUP, VERSION, BLOCKS, registry=registry)
        @on.create(GROUP, VERSION, BLOCKS, registry=registry)
        @on.update(GROUP, VERSION, BLOCKS, field="spec", registry=registry)
        def _block(*, name: str, spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
            status = self.reconcile_block(name, dict(spec))
            patch.status.update(status)

        @on.delete(GROUP, VERSION, BLOCKS, registry=registry)
        def _block_deleted(*, name: str, **_: Any) -> None:
            if self.block_held(name):
                raise kopf.TemporaryError(
                    f"claims still hold budget on block {name!r}: deleting it waits", delay=5
                )

        @on.resume(GROUP, VERSION, CLAIMS, registry=registry)
        @on.create(GROUP, VERSION, CLAIMS, registry=registry)
        @on.update(GROUP, VERSION, CLAIMS, field="spec", registry=registry)
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
                status, events = self.reconcile_claim(namespace, name, uid, dict(spec), patient)
            except UnknownBlocksError as exc:
                raise kopf.TemporaryError(f"waiting for its blocks: {exc}", delay=1) from None
            if status is not None:
                patch.status.update(status)
            patch.status["observedGeneration"] = body.metadata.get("generation")
            for reason, message, warning in events:
                (kopf.warn if warning else kopf.info)(body, reason=reason, message=message)

        @on.delete(GROUP, VERSION, CLAIMS, registry=registry)
        def _claim_deleted(
            *, namespace: str | None, name: str, uid: str, labels: Any, **_: Any
        ) -> None:
            assert namespace is not None
            self.withdraw_claim(namespace, name, uid, for_pod=POD_LABEL in (labels or {}))

        opted_in = {"dp-mode": "true"}

        def unhandled(body: kopf.Body, **_: Any) -> bool:
            return HANDLED not in body.metadata.annotations

        # The initial delay: for an object handled by then (nearly all of them) the
        # daemon is stopped by its filter before it is invoked (no INFO log, no Event).
        delay = self.config.settle_after

        @on.daemon(GROUP, VERSION, BLOCKS, when=unhandled, initial_delay=delay, registry=registry)
        @on.daemon(GROUP, VERSION, CLAIMS, when=unhandled, initial_delay=delay, registry=registry)
        @on.daemon(
            "",
            "v1",
            "pods",
            annotations=opted_in,
            when=unhandled,
            initial_delay=delay,
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
            await self.settle(path, body, stopped)

        @on.resume("", "v1", "pods", annotations=opted_in, registry=registry)
        @on.create("", "v1", "pods", annotations=opted_in, registry=registry)
        async def _pod(*, body: kopf.Body, **_: Any) -> None:
            pod = dict(body)
            gated = any(g.get("name") == GATE for g in body.spec.get("schedulingGates") or [])
            if gated and wants_budget(body.metadata.annotations):
                problem = await self.claim_for_pod(pod)
                if problem is not None:
                    kopf.warn(body, reason="BudgetRefused", message=problem)

        @on.field(
            "",
            "v1",
            "pods",
            field="metadata.annotations.dp-consumed-fraction",
            annotations=opted_in,
            registry=registry,
        )
        async def _pod_checkpoint(*, body: kopf.Body, **_: Any) -> None:
            await self.pod_progress(dict(body), ended=False)

        @on.field("", "v1", "pods", field="status.phase", annotations=opted_in, registry=registry)
        async def _pod_phase(*, body: kopf.Body, new: Any, **_: Any) -> None:
            if new in ("Succeeded", "Failed"):
                await self.pod_progress(dict(body), ended=True)

        @on.delete("", "v1", "pods", annotations=opted_in, registry=registry)
        async def _pod_deleted(*, body: kopf.Body, **_: Any) -> None:
            await self.pod_progress(dict(body), ended=True)


# -------------------------------------------------------------------- helpers
def namespace_of(key: str) -> tuple[str, str]:
    """(namespace, claim id) of a ledger key `k8s.<namespace>/<name>@<uid>`."""
    tenant, claim_id = key.split("/", 1)
    return tenant[len(TENANT_PREFIX) :], claim_id


def engine_id(name: str, uid: str) -> str:
    return f"{name}@{uid}"


def started(pod: dict[str, Any]) -> bool:
    """May any container of the Pod have run (so its output may have left it)? Init and
    ephemeral containers count, and so does a past run (`lastState`); a Pod still gated
    never ran. When in doubt: it ran (its grant is then consumed, never released)."""
    status = pod.get("status") or {}
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    if any(g.get("name") == GATE for g in gates):
        return False
    if status.get("phase") in ("Running", "Succeeded", "Failed", "Unknown"):
        return True
    containers = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
        *(status.get("ephemeralContainerStatuses") or []),
    ]
    ran = {"running", "terminated"}
    return any(
        ran & set(c.get("state") or {}) or ran & set(c.get("lastState") or {}) for c in containers
    ) or bool(status.get("startTime") and containers)


def owner_uid(claim: dict[str, Any]) -> str | None:
    """The uid of the Pod that controls a claim made for it."""
    for owner in claim["metadata"].get("ownerReferences") or []:
        if owner.get("kind") == "Pod" and owner.get("controller"):
            return str(owner.get("uid"))
    return None


def pod_claim_name(pod: str) -> str:
    return f"pod-{pod}"[:253]


def involved(obj: dict[str, Any], api_version: str = API_VERSION) -> dict[str, Any]:
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


def _rejected(reason: str) -> dict[str, Any]:
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


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "spec"
        return f"{where}: {error['msg']}"
    return str(exc)


def _same_block(view: dict[str, Any], body: dict[str, Any]) -> bool:
    return all(view.get(k) == v for k, v in body.items() if k in ("dataset", "size"))
