"""A typed Python client for the budget service (`dpsched serve`).

    from dpsched.client import Client
    with Client("http://127.0.0.1:8700", token) as client:
        client.submit({"id": "train-1", "blocks": {"most_recent": 7},
                       "demand": {"mechanism": "subsampled_gaussian", "sigma": 1.1,
                                  "sampling_rate": 0.01, "steps": 2000}})
        claim = client.wait_for("train-1", timeout=600)
        if claim["state"] == "allocated":
            ...  # run the job, then:
            client.consume("train-1")

Connection failures and 503 answers are retried with the same request (and the same
request id): the service applies a request id once, and a re-posted claim with the
same body answers with the stored claim, so retries never double anything. Refusals
raise `ServiceError` with the status, the field and the reason the service gave.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx

RETRIED = (503,)


class ServiceError(Exception):
    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.status = status
        self.field = field
        self.reason = reason


class Client:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 75.0,
        retries: int = 5,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        act_as: str | None = None,
    ) -> None:
        """`act_as`: with the admin token, act as this tenant (a trusted front end, such
        as the Kubernetes operator, whose tenants are namespaces)."""
        headers = {"Authorization": f"Bearer {token}"}
        if act_as is not None:
            headers["X-Dpsched-Tenant"] = act_as
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        self.retries = retries
        self.backoff = backoff

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ admin
    def add_tenant(self, name: str) -> dict[str, Any]:
        """{"name", "token"}: the only time the token is shown."""
        return self._call("POST", "/v1/tenants", json={"name": name})

    def add_block(self, block: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/blocks", json=block)

    def schedule(self) -> dict[str, Any]:
        """Run one scheduling round now: {"granted", "expired", "time_s"}."""
        return self._call("POST", "/v1/schedule")

    def audit(self, after: int = 0, limit: int = 100) -> dict[str, Any]:
        return self._call("GET", "/v1/audit", params={"after": after, "limit": limit})

    # ----------------------------------------------------------------- blocks
    def blocks(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/blocks")["blocks"])

    def block(self, block_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/blocks/{_path(block_id)}")

    # ----------------------------------------------------------------- claims
    def submit(self, claim: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/claims", json=claim)

    def dry_run(self, claim: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/claims:dry-run", json=claim)

    def claim(self, claim_id: str, wait: float = 0.0) -> dict[str, Any]:
        return self._call("GET", f"/v1/claims/{_path(claim_id)}", params={"wait": wait})

    def claims(
        self, state: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if state is not None:
            params["state"] = state
        if cursor is not None:
            params["cursor"] = cursor
        return self._call("GET", "/v1/claims", params=params)

    def all_claims(self, state: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self.claims(state, limit=1000, cursor=cursor)
            found += page["claims"]
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    def wait_for(self, claim_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """The claim once it is no longer pending, or as it is after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(deadline - time.monotonic(), 0.0)
            claim = self.claim(claim_id, wait=min(left, 60.0))
            if claim["state"] != "pending" or left <= 0:
                return claim

    def explain(self, claim_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/claims/{_path(claim_id)}/explain")

    def consume(
        self,
        claim_id: str,
        fraction: float | None = None,
        amount: dict[str, list[float]] | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Consume a fraction of the grant (all of it by default) or an explicit amount
        per block; `request_id` (generated if not given) makes retries safe."""
        body: dict[str, Any] = {"request_id": request_id or _request_id()}
        if amount is not None:
            body["amount"] = amount
        else:
            body["fraction"] = 1.0 if fraction is None else fraction
        return self._call("POST", f"/v1/claims/{_path(claim_id)}/consume", json=body)

    def release(self, claim_id: str, request_id: str | None = None) -> dict[str, Any]:
        body = {"request_id": request_id or _request_id()}
        return self._call("POST", f"/v1/claims/{_path(claim_id)}/release", json=body)

    def withdraw(self, claim_id: str, request_id: str | None = None) -> dict[str, Any]:
        """Withdraw a pending claim, or release an allocated one's unconsumed grant."""
        params = {"request_id": request_id or _request_id()}
        return self._call("DELETE", f"/v1/claims/{_path(claim_id)}", params=params)

    # -------------------------------------------------------------- transport
    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                reply = self._http.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt >= self.retries:
                    raise
            else:
                if reply.status_code not in RETRIED or attempt >= self.retries:
                    return _result(reply)
            attempt += 1
            time.sleep(self.backoff * 2 ** (attempt - 1))


def _result(reply: httpx.Response) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        body = None
    if reply.status_code >= 400:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise ServiceError(
            reply.status_code,
            str(error.get("field", "")),
            str(error.get("reason", reply.text[:200] or reply.reason_phrase)),
        )
    if not isinstance(body, dict):
        raise ServiceError(reply.status_code, "body", "the service did not answer with JSON")
    return body


def _path(value: str) -> str:
    return quote(value, safe="")


def _request_id() -> str:
    return uuid.uuid4().hex
