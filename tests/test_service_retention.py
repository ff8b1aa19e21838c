"""Retention: finished claims leave the server's memory after `retention` seconds and
stay readable (from the journal's archive), idempotent and listed, across restarts, on
SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.service_process import Service, service_for

CONFIG = {
    "accounting": "rdp",
    "alphas": [2, 4, 8],
    "scheduler": {"policy": "fcfs", "period": 3600},
    "retention": 0,
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    running = service_for(request, tmp_path_factory, CONFIG, "retention")
    yield running
    running.stop()


def schedule(service: Service) -> list[str]:
    with service.admin() as admin:
        reply = admin.post("/v1/schedule")
        assert reply.status_code == 200, reply.text
        return list(reply.json()["granted"])


def metric(service: Service, name: str) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=60).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


def body(claim_id: str, demand: float) -> dict[str, Any]:
    return {"id": claim_id, "blocks": ["b"], "demand": {"rdp": [demand] * 3}}


def listed(tenant: httpx.Client, **params: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = tenant.get("/v1/claims", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += [c["id"] for c in page.json()["claims"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return seen


def test_finished_claims_are_archived_and_stay_readable(service: Service) -> None:
    with service.admin() as admin:
        assert admin.post("/v1/blocks", json={"id": "b", "capacity": [1, 1, 1]}).status_code == 201
    with service.tenant("keeper") as tenant, service.tenant("other") as other:
        for claim_id, demand in (("done", 0.4), ("gone", 0.4), ("live", 0.1), ("huge", 50.0)):
            assert tenant.post("/v1/claims", json=body(claim_id, demand)).status_code == 201
        assert tenant.get("/v1/claims/huge").json()["state"] == "rejected"
        assert schedule(service) == ["keeper/done", "keeper/gone", "keeper/live"]
        assert metric(service, "dpsched_claims_forgotten_total") == 1  # the rejected one
        consumed = tenant.post("/v1/claims/done/consume", json={"request_id": "u1", "fraction": 1})
        assert consumed.json()["state"] == "consumed"
        released = tenant.post("/v1/claims/gone/release", json={"request_id": "r1"}).json()
        before = {c: tenant.get(f"/v1/claims/{c}").json() for c in ("done", "gone", "huge")}
        schedule(service)
        assert metric(service, "dpsched_claims_forgotten_total") == 3
        assert metric(service, 'dpsched_claims{state="consumed"}') == 0  # not in memory
        assert metric(service, 'dpsched_claims{state="allocated"}') == 1  # "live"

        for _ in range(2):  # before and after a crash and restart
            for claim_id, view in before.items():
                assert tenant.get(f"/v1/claims/{claim_id}").json() == view
                assert other.get(f"/v1/claims/{claim_id}").status_code == 404
            # Retries of what ran answer as they did; anything new is refused.
            again = tenant.post("/v1/claims/done/consume", json={"request_id": "u1", "fraction": 1})
            assert again.status_code == 200 and again.json() == before["done"]
            assert tenant.post("/v1/claims/gone/release", json={"request_id": "r1"}).json() == (
                released
            )
            late = tenant.post("/v1/claims/done/consume", json={"request_id": "u2", "fraction": 1})
            assert late.status_code == 409
            assert "claim is consumed (finished and archived)" in late.json()["error"]["reason"]
            assert tenant.delete("/v1/claims/gone", params={"request_id": "w"}).status_code == 409
            # Ids stay taken: the same body is the same claim, another body a conflict.
            repost = tenant.post("/v1/claims", json=body("done", 0.4))
            assert repost.status_code == 200 and repost.json() == before["done"]
            assert tenant.post("/v1/claims", json=body("done", 0.3)).status_code == 409
            explained = tenant.get("/v1/claims/gone/explain").json()
            assert explained["state"] == "released" and explained["fits_now"] is False
            # Listings merge memory and archive, in submission order, filters included.
            assert listed(tenant, limit=1) == ["done", "gone", "live", "huge"]
            assert listed(tenant, limit=3) == ["done", "gone", "live", "huge"]
            assert listed(tenant, state="released") == ["gone"]
            assert listed(tenant, state="allocated") == ["live"]
            assert listed(other) == []
            service.restart()
        assert metric(service, 'dpsched_claims{state="released"}') == 0
        with service.admin() as admin:
            ops = [r["op"] for r in admin.get("/v1/audit", params={"limit": 1000}).json()["rows"]]
        assert ops.count("forget") == 2
