"""The operator's side of gated Pods (`pods.py` holds the annotations and the webhook):
a PrivacyClaim made for each gated Pod, the gate removed once the claim is granted, and
the Pod's checkpoints and end applied to its claim.

Every step looks at the Pod and the claim as they are now, so a pass after a restart
finishes what an earlier one began, and whichever of two paths (the Pod's handler, the
journal's mirror) gets there first does a step once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from dpsched.client import ServiceError
from dpsched.errors import DpschedError
from dpsched.k8s.kube import KubeApi, KubeError, path_of
from dpsched.k8s.pods import GATE, claim_from_annotations, granted_annotations
from dpsched.k8s.reconcile import apply_controls
from dpsched.k8s.resources import API_VERSION, CLAIMS, GROUP, VERSION
from dpsched.k8s.statuses import involved
from dpsched.k8s.tenants import TenantClients, engine_id

POD_LABEL = "dpsched.io/pod"
"""On a claim made for a gated Pod: the Pod's name."""


class PodGating:
    """Claims for gated Pods, their gates, and what the Pods' progress does to them."""

    def __init__(self, kube: KubeApi, tenants: TenantClients) -> None:
        self.kube = kube
        self.tenants = tenants

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

    async def settle_pod(self, claim: dict[str, Any], view: dict[str, Any], changed: bool) -> None:
        """A pod's claim: once granted, write the design's result annotations and remove
        the scheduling gate (idempotent: it looks at the Pod, so a pass after a restart
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
        """The largest delta among the claim's blocks (None if none has one)."""
        deltas = []
        for name in view["blocks"]:
            try:
                found = self.tenants.client().block(name)
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
        tenant = self.tenants.tenant(meta["namespace"])

        def apply() -> None:
            view = tenant.claim(claim_id)
            if view["state"] == "allocated":
                apply_controls(tenant, view, uid, target, release)

        # Errors propagate: kopf retries the handler (and keeps the Pod's finalizer), so
        # a Pod that ran never ends with its grant released by a transient failure.
        await asyncio.to_thread(apply)
        update: dict[str, Any] = {"consumedFraction": target}
        if release:
            update["release"] = True
        with contextlib.suppress(KubeError):  # the record on the claim is a courtesy
            await self.kube.merge_patch(path, {"spec": update})


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
    """The name of the claim made for the Pod (cut to a Kubernetes name's length)."""
    return f"pod-{pod}"[:253]
