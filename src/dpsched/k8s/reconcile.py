"""PrivateBlocks and PrivacyClaims into the ledger: what the kopf handlers of the two
kinds do, as calls to the budget service.

Every operation carries a request id made from the object's uid (and the consumption
target), so a re-delivered event or an operator restarted mid-way never applies anything
twice: the service answers a retry with the first answer. Only a claim refused before
submission gets its status here; every other status comes from the journal's mirror.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dpsched.client import Client, ServiceError
from dpsched.errors import DpschedError
from dpsched.k8s.resources import block_spec, claim_spec
from dpsched.k8s.statuses import block_status, consumed_fraction, rejected_status
from dpsched.k8s.tenants import TenantClients, engine_id

BLOCK_WAIT_RETRIES = 60
"""Handler retries (one a second) a claim waits for blocks the ledger does not know yet."""

Event = tuple[str, str, bool]
"""An Event to post on the object: (reason, message, is a warning)."""


class UnknownBlocksError(Exception):
    """The claim names blocks the ledger does not have (yet)."""


class Reconciler:
    """Adds blocks, submits and withdraws claims, applies a claim's consumption controls."""

    def __init__(self, tenants: TenantClients) -> None:
        self.tenants = tenants

    # ------------------------------------------------------------------ blocks
    def reconcile_block(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Add the block to the ledger (once) and return its status."""
        try:
            block = block_spec(name, spec)
        except (ValidationError, DpschedError) as exc:
            return {"reason": f"invalid spec: {_first_error(exc)}", "exhausted": False}
        body = block.model_dump(mode="json", exclude={"arrival"}, exclude_none=True)
        admin = self.tenants.client()
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
        """Do claims hold budget on the block (so deleting its object must wait)?"""
        try:
            view = self.tenants.client().block(name)
        except ServiceError as exc:
            if exc.status == 404:
                return False
            raise
        return int(view["claims_holding"]) > 0 or any(v > 0 for v in view["reserved"])

    # ------------------------------------------------------------------ claims
    def reconcile_claim(
        self, namespace: str, name: str, uid: str, spec: dict[str, Any], patient: bool = False
    ) -> tuple[dict[str, Any] | None, list[Event]]:
        """Submit the claim (once) and apply its consumption controls. Returns the status
        to write for a claim the engine never saw (refused before submission; all other
        statuses come from the journal's mirror) and the Events to post (reason,
        message, warning). `patient`: a claim whose blocks the ledger does not know yet
        raises UnknownBlocksError (their PrivateBlocks may be on their way: the two kinds
        are reconciled concurrently) instead of being rejected."""
        claim_id = engine_id(name, uid)
        events: list[Event] = []
        try:
            claim, controls = claim_spec(claim_id, spec)
        except (ValidationError, DpschedError) as exc:
            reason = f"invalid spec: {_first_error(exc)}"
            return rejected_status(reason), [("Rejected", reason, True)]
        body = claim.model_dump(mode="json", exclude_unset=True)
        body["id"] = claim_id
        tenant = self.tenants.tenant(namespace)
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
                return rejected_status(reason), [("Rejected", reason, True)]
            else:
                raise
        if view["state"] == "allocated":
            apply_controls(tenant, view, uid, controls.consumed_fraction, controls.release)
        return None, events

    def withdraw_claim(self, namespace: str, name: str, uid: str, for_pod: bool = False) -> None:
        """A deleted claim: withdrawn if pending, its unconsumed grant released if allocated.
        A Pod's claim (`for_pod`) that holds a grant is consumed instead: its Pod may have
        run (the Pod's own end, handled first when it can be, releases the grant of a Pod
        that never ran), so deleting it never gives back budget a job may have used."""
        tenant = self.tenants.tenant(namespace)
        claim_id = engine_id(name, uid)
        try:
            view = tenant.claim(claim_id) if for_pod else None
            if view is not None and view["state"] == "allocated":
                apply_controls(tenant, view, uid, 1.0, release=False)
                return
            tenant.withdraw(claim_id, request_id=f"{uid}:withdraw")
        except ServiceError as exc:
            if exc.status not in (404, 409):  # never submitted, or already finished
                raise


def apply_controls(
    tenant: Client, view: dict[str, Any], uid: str, target: float, release: bool
) -> dict[str, Any]:
    """Bring an allocated claim to the consumed fraction `target` and release what is
    left if asked; returns the claim's view after. The request ids name the target, so
    the handlers, the mirror and a Pod's end may all apply the same controls: once."""
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


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "spec"
        return f"{where}: {error['msg']}"
    return str(exc)


def _same_block(view: dict[str, Any], body: dict[str, Any]) -> bool:
    return all(view.get(k) == v for k, v in body.items() if k in ("dataset", "size"))
