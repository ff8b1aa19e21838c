"""Kubeflow Pipelines (kfp v2) components for PrivateKube's protocol (Fig. 3): `allocate`
budget before reading any data, `consume` it before any externally visible step.

The functions are self-contained (kfp ships each one's source into its container):
they import the dpsched client inside, read the tenant's token from an environment
variable (set it from a Kubernetes Secret), and fail fast with the service's reason
when a claim is refused, expires or is still waiting at the timeout (it is withdrawn
then, so no budget is held by a pipeline that gave up): never a silent timeout.
"""

# No `from __future__ import annotations` here: kfp reads these signatures as types and
# runs each function's source as it is, after `from typing import *`.
from typing import Any, NamedTuple


def allocate(
    service_url: str,
    claim: dict[str, Any],
    claim_id: str = "",
    timeout: float = 600.0,
    token_env: str = "DPSCHED_TOKEN",
) -> NamedTuple(  # type: ignore[valid-type]
    "Grant", [("claim_id", str), ("blocks", list[str]), ("epsilon", float), ("grant", dict)]
):
    """Submit `claim` (as `claim_id` when given: use the run's id, so that a retried step
    finds its own claim instead of asking twice) and wait for its grant: its blocks,
    epsilon and (elastic claims) the noise parameter to run with. Raises RuntimeError
    with the reason otherwise."""
    import os
    from collections import namedtuple

    from dpsched.client import Client, ServiceError

    grant = namedtuple("grant", ["claim_id", "blocks", "epsilon", "grant"])
    token = os.environ.get(token_env, "")
    if not token:
        raise RuntimeError(f"set ${token_env} to the tenant's dpsched token")
    if claim_id:
        claim = {**claim, "id": claim_id}
    with Client(service_url, token) as client:
        try:
            submitted = client.submit(claim)
        except ServiceError as exc:
            raise RuntimeError(f"claim refused: {exc.field}: {exc.reason}") from None
        claim_id = str(submitted["id"])
        view = client.wait_for(claim_id, timeout=timeout)
        if view["state"] == "pending":
            why = client.explain(claim_id).get("reason") or view.get("reason")
            client.withdraw(claim_id, request_id=f"{claim_id}:timeout")
            raise RuntimeError(f"claim {claim_id} still waiting after {timeout:g} s: {why}")
        if view["state"] != "allocated":
            raise RuntimeError(f"claim {claim_id} {view['state']}: {view.get('reason')}")
        return grant(claim_id, list(view["blocks"]), float(view["epsilon"]), view["grant"] or {})


def consume(
    service_url: str,
    claim_id: str,
    fraction: float = 1.0,
    token_env: str = "DPSCHED_TOKEN",
) -> float:
    """Consume `fraction` of the grant (retries are safe: the request id is fixed per
    claim and fraction) and return the share of the grant consumed so far."""
    import os

    from dpsched.client import Client, ServiceError

    token = os.environ.get(token_env, "")
    if not token:
        raise RuntimeError(f"set ${token_env} to the tenant's dpsched token")
    with Client(service_url, token) as client:
        try:
            view = client.consume(
                claim_id, fraction=fraction, request_id=f"{claim_id}:consume:{fraction!r}"
            )
        except ServiceError as exc:
            raise RuntimeError(f"consume refused: {exc.field}: {exc.reason}") from None
    shares = [
        c / d
        for block, demand in view["demand"].items()
        for d, c in zip(demand, view["consumed"][block], strict=False)
        if d > 0
    ]
    return max(shares, default=0.0)
