"""The journal mirror: statuses follow the service's journal, the source of truth.

A background task tails the journal (`/v1/audit`) and writes the status of every claim
and block an operation touched, with Events on grant, expiry and release, and settles
the gated Pods whose claims changed. It starts from the journal's beginning, so
decisions made while no operator ran reach their objects; a failed pass is redone from
where it started (every write is idempotent). With kopf peering, only the active replica
mirrors.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any

from dpsched.client import ServiceError
from dpsched.k8s.kube import KubeApi, path_of
from dpsched.k8s.pod_gating import POD_LABEL, PodGating
from dpsched.k8s.reconcile import apply_controls
from dpsched.k8s.resources import BLOCKS, CLAIMS, GROUP, VERSION
from dpsched.k8s.statuses import (
    PHASE_EVENTS,
    block_status,
    claim_message,
    claim_status,
    consumed_fraction,
    involved,
)
from dpsched.k8s.tenants import TENANT_PREFIX, TenantClients, namespace_of

PAGE = 1000
"""Journal rows read per request."""
MIRROR_WRITES = 16
"""Status writes the mirror keeps in flight at once."""

log = logging.getLogger("dpsched.k8s")


class JournalMirror:
    """Tails the journal from `cursor` and writes what it finds onto the objects."""

    def __init__(
        self,
        kube: KubeApi,
        tenants: TenantClients,
        pods: PodGating,
        sync_interval: float,
        *,
        peering: str | None = None,
        priority: int = 0,
    ) -> None:
        self.kube = kube
        self.tenants = tenants
        self.pods = pods
        self.sync_interval = sync_interval
        self.peering = peering
        self.priority = priority
        """With kopf peering: a standby (a live peer has a higher priority) does not mirror."""
        self.cursor = 0
        self._task: asyncio.Task[None] | None = None

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

    async def run_forever(self) -> None:
        while True:
            try:
                if await self.standing_by():
                    await asyncio.sleep(self.sync_interval)
                    continue
                await self.mirror_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next pass retries: the journal is still there
                log.exception("mirroring statuses failed; retrying")
            await asyncio.sleep(self.sync_interval)

    async def start(self) -> None:
        """Start tailing the journal from its beginning: the first pass writes the status
        of every claim the journal names, so decisions made while no operator ran (a
        grant after a release, an expiry) reach their objects and Pods."""
        self.cursor = 0
        self._task = asyncio.create_task(self.run_forever())

    async def stop(self) -> None:
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
            page = await asyncio.to_thread(self.tenants.client().audit, cursor, PAGE)
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
            blocks = {b["id"] for b in await asyncio.to_thread(self.tenants.client().blocks)}
        for name in sorted(blocks):
            await self._mirror_block(name)
        self.cursor = cursor  # only now: a failed pass is redone from where it started

    def _views(self, keys: list[str]) -> list[dict[str, Any] | None]:
        """The claims' views from the service (one thread, one connection per tenant)."""
        views: list[dict[str, Any] | None] = []
        for key in keys:
            namespace, claim_id = namespace_of(key)
            try:
                views.append(self.tenants.client(namespace).claim(claim_id))
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
            await self.pods.settle_pod(current, view, changed)  # idempotent: it looks at the Pod

    def _controls_of(
        self, namespace: str, uid: str, claim: dict[str, Any], view: dict[str, Any]
    ) -> dict[str, Any]:
        spec = claim.get("spec") or {}
        target = float(spec.get("consumedFraction") or 0.0)
        release = bool(spec.get("release"))
        if target <= consumed_fraction(view) + 1e-12 and not release:
            return view
        return apply_controls(self.tenants.tenant(namespace), view, uid, target, release)

    async def _mirror_block(self, name: str) -> None:
        try:
            view = await asyncio.to_thread(self.tenants.client().block, name)
        except ServiceError as exc:
            if exc.status == 404:
                return
            raise
        await self.kube.patch_status(
            path_of(GROUP, VERSION, BLOCKS, None, name), block_status(view)
        )
