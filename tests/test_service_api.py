"""The REST API of a real `dpsched serve` process, on SQLite and on PostgreSQL: every
endpoint, every error status, tenancy, and a restart on the same journal."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.service_process import ADMIN, Service, service_for

RDP = {"accounting": "rdp", "alphas": [2, 4, 8], "scheduler": {"policy": "fcfs", "period": 3600}}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    running = service_for(request, tmp_path_factory, RDP, "service")
    yield running
    running.stop()


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def error(reply: httpx.Response, status: int, field: str | None = None) -> str:
    assert reply.status_code == status, reply.text
    body = reply.json()["error"]
    assert body["status"] == status
    if field is not None:
        assert body["field"] == field, body
    return str(body["reason"])


def add_block(service: Service, block: str, capacity: list[float] | None = None) -> None:
    with service.admin() as admin:
        body = {"id": block, "capacity": capacity or [1.0, 1.0, 1.0]}
        reply = admin.post("/v1/blocks", json=body)
        assert reply.status_code == 201, reply.text


def claim(block: str, claim_id: str, demand: list[float] | None = None) -> dict[str, Any]:
    return {"id": claim_id, "blocks": [block], "demand": {"rdp": demand or [0.4, 0.4, 0.4]}}


def schedule(service: Service) -> list[str]:
    with service.admin() as admin:
        reply = admin.post("/v1/schedule")
        assert reply.status_code == 200, reply.text
        return list(reply.json()["granted"])


# ---------------------------------------------------------------- open and auth
def test_open_endpoints(service: Service) -> None:
    assert httpx.get(f"{service.url}/healthz").json() == {"status": "ok"}
    spec = httpx.get(f"{service.url}/openapi.json").json()
    for path in ("/v1/claims", "/v1/claims/{claim_id}/consume", "/v1/claims:dry-run"):
        assert path in spec["paths"]
    assert "ClaimSpec" in spec["components"]["schemas"]
    metrics = httpx.get(f"{service.url}/metrics", timeout=60).text
    assert "dpsched_block_budget" in metrics and "dpsched_requests_total" in metrics


def test_tokens_and_roles(service: Service) -> None:
    error(httpx.get(f"{service.url}/v1/blocks"), 401, "authorization")
    bad = httpx.get(f"{service.url}/v1/blocks", headers={"Authorization": "Bearer nope"})
    error(bad, 401, "authorization")
    with service.tenant(name("roles")) as tenant:
        assert tenant.get("/v1/blocks").status_code == 200  # blocks: readable by all
        error(tenant.post("/v1/blocks", json={"id": "x", "epsilon": 1, "delta": 1e-7}), 403)
        error(tenant.post("/v1/tenants", json={"name": "sneaky"}), 403)
        error(tenant.post("/v1/schedule"), 403)
        error(tenant.get("/v1/audit"), 403)
    with service.admin() as admin:
        error(admin.get("/v1/claims"), 403)


def test_the_admin_acts_as_a_tenant_for_trusted_front_ends(service: Service) -> None:
    """How the Kubernetes operator works for every namespace with one token."""
    team = name("acting")
    with service.tenant(team) as tenant, service.admin() as admin:
        block = name("blk")
        view = admin.post("/v1/blocks", json={"id": block, "epsilon": 10, "delta": 1e-7}).json()
        assert view["delta"] == 1e-7 and view["claims_holding"] == 0
        claim = {"id": "c1", "blocks": [block], "demand": {"rdp": [0.1, 0.2, 0.3]}}
        acting = {"X-Dpsched-Tenant": team}
        submitted = admin.post("/v1/claims", json=claim, headers=acting)
        assert submitted.status_code == 201, submitted.text
        assert tenant.get("/v1/claims/c1").json()["id"] == "c1"  # the tenant's own claim
        error(admin.get("/v1/claims", headers={"X-Dpsched-Tenant": "nobody"}), 404)
        with service.tenant(name("other")) as other:  # a tenant cannot act as another
            assert other.get("/v1/claims/c1", headers=acting).status_code == 404
        admin.post("/v1/schedule")
        granted = tenant.get("/v1/claims/c1").json()
        assert granted["state"] == "allocated" and granted["epsilon"] > 0
        assert admin.get(f"/v1/blocks/{block}").json()["claims_holding"] == 1
        rows = admin.get("/v1/audit", params={"limit": 10_000}).json()
        assert rows["last_seq"] == rows["rows"][-1]["seq"]
        assert any(r["actor"] == f"admin as {team}" for r in rows["rows"])


def test_tenants_and_blocks(service: Service) -> None:
    team = name("team")
    with service.admin() as admin:
        reply = admin.post("/v1/tenants", json={"name": team})
        assert reply.status_code == 201 and set(reply.json()) == {"name", "token"}
        error(admin.post("/v1/tenants", json={"name": team}), 409, "name")
        error(admin.post("/v1/tenants", json={"name": "no/slash"}), 422, "name")
        error(admin.post("/v1/tenants", json={"name": team, "extra": 1}), 422, "extra")
        block = name("blk")
        created = admin.post("/v1/blocks", json={"id": block, "epsilon": 10, "delta": 1e-7})
        assert created.status_code == 201, created.text
        view = created.json()
        assert view["alphas"] == [2.0, 4.0, 8.0] and len(view["capacity"]) == 3
        assert view["allocated"] == [0.0, 0.0, 0.0] and view["unlocked_fraction"] == 1.0
        error(admin.post("/v1/blocks", json={"id": block, "epsilon": 1, "delta": 1e-7}), 409)
        assert "Input should be greater than 0" in error(
            admin.post("/v1/blocks", json={"id": name("b"), "epsilon": -1, "delta": 1e-7}),
            422,
            "epsilon",
        )
        error(admin.post("/v1/blocks", json={"id": name("b"), "capacity": [1, 2]}), 422)
        assert admin.get(f"/v1/blocks/{block}").json()["id"] == block
        assert block in [b["id"] for b in admin.get("/v1/blocks").json()["blocks"]]
        error(admin.get("/v1/blocks/no-such-block"), 404, "block")


# ------------------------------------------------------------------ claims
def test_submit_is_idempotent_per_body_and_validates_every_field(service: Service) -> None:
    block = name("blk")
    add_block(service, block)
    with service.tenant(name("sub")) as tenant:
        body = claim(block, "c1")
        first = tenant.post("/v1/claims", json=body)
        assert first.status_code == 201, first.text
        assert first.json()["state"] == "pending" and first.json()["granted"] is None
        again = tenant.post("/v1/claims", json=body)
        assert again.status_code == 200 and again.json()["id"] == "c1"
        error(tenant.post("/v1/claims", json=claim(block, "c1", [0.1, 0.1, 0.1])), 409, "id")
        error(tenant.post("/v1/claims", json={**claim(block, "c2"), "bogus": 1}), 422, "bogus")
        error(tenant.post("/v1/claims", json=claim(block, "c3", [0.1])), 422, "demand.rdp")
        error(tenant.post("/v1/claims", json=claim("no-such", "c4")), 422, "blocks")
        error(tenant.post("/v1/claims", json={**claim(block, "c5"), "arrival": 3}), 422)
        nan = '{"id": "c6", "blocks": ["BLOCK"], "demand": {"rdp": [NaN, 1, 1]}}'
        reply = tenant.post("/v1/claims", content=nan.replace("BLOCK", block))
        assert "finite" in error(reply, 422, "demand.rdp[0]")
        inf = '{"id": "c7", "blocks": ["BLOCK"], "weight": Infinity, "demand": {"rdp": [1,1,1]}}'
        error(tenant.post("/v1/claims", content=inf.replace("BLOCK", block)), 422, "weight")
        error(tenant.post("/v1/claims", content="[1, 2]"), 422, "body")
        error(tenant.post("/v1/claims", content="{not json"), 422, "body")
        typo = {"id": "c8", "blocks": {"dataset": "wbe"}, "demand": {"rdp": [1, 1, 1]}}
        assert "unknown dataset 'wbe'" in error(
            tenant.post("/v1/claims", json=typo), 422, "blocks.dataset"
        )
        huge = tenant.post("/v1/claims", content=b'{"id": "' + b"x" * 1_100_000 + b'"}')
        error(huge, 413, "body")
        rejected = tenant.post("/v1/claims", json=claim(block, "too-big", [5, 5, 5]))
        assert rejected.status_code == 201
        assert rejected.json()["state"] == "rejected"
        assert "exceeds the whole capacity" in rejected.json()["reason"]


def test_claim_life_cycle_with_retries(service: Service) -> None:
    block = name("blk")
    add_block(service, block)
    with service.tenant(name("life")) as tenant:
        assert tenant.post("/v1/claims", json=claim(block, "job")).status_code == 201
        error(tenant.post("/v1/claims/job/consume", json={"request_id": "u0"}), 422, "body")
        refused = tenant.post("/v1/claims/job/consume", json={"request_id": "u0", "fraction": 1})
        assert "not allocated" in error(refused, 409, "claim") or "pending" in refused.text
        assert "job" in [c.split("/")[-1] for c in schedule(service)]
        view = tenant.get("/v1/claims/job").json()
        assert view["state"] == "allocated"
        assert view["granted"] == {block: [0.4, 0.4, 0.4]}
        half = {"request_id": "u1", "amount": {block: [0.1, 0.2, 0.3]}}
        after = tenant.post("/v1/claims/job/consume", json=half)
        assert after.status_code == 200, after.text
        assert after.json()["consumed"] == {block: [0.1, 0.2, 0.3]}
        again = tenant.post("/v1/claims/job/consume", json=half)  # a retry: applied once
        assert again.json()["consumed"] == {block: [0.1, 0.2, 0.3]}
        error(
            tenant.post("/v1/claims/job/consume", json={"request_id": "u2", "amount": {"z": [1]}}),
            422,
            "amount.z",
        )
        too_much = {"request_id": "u3", "amount": {block: [0.5, 0.0, 0.0]}}
        assert "more than is left" in error(
            tenant.post("/v1/claims/job/consume", json=too_much), 409
        )
        reuse = tenant.post("/v1/claims/job/release", json={"request_id": "u1"})
        assert "already used" in error(reuse, 409)
        released = tenant.post("/v1/claims/job/release", json={"request_id": "done"})
        assert released.json()["state"] == "released"
        assert released.json()["consumed"] == {block: [0.1, 0.2, 0.3]}
        with service.admin() as admin:
            spent = admin.get(f"/v1/blocks/{block}").json()
        assert spent["consumed"] == [0.1, 0.2, 0.3] and spent["allocated"] == [0.0] * 3


def test_withdraw_pending_and_allocated_claims(service: Service) -> None:
    block = name("blk")
    add_block(service, block)
    with service.tenant(name("wd")) as tenant:
        tenant.post("/v1/claims", json=claim(block, "early"))
        schedule(service)
        tenant.post("/v1/claims", json=claim(block, "late", [0.9, 0.9, 0.9]))
        gone = tenant.delete("/v1/claims/late")
        assert gone.json()["state"] == "expired"
        assert tenant.delete("/v1/claims/late").json()["state"] == "expired"  # retry
        freed = tenant.delete("/v1/claims/early", params={"request_id": "free-1"})
        assert freed.json()["state"] == "released"
        assert tenant.delete("/v1/claims/early", params={"request_id": "free-1"}).status_code == 200
        error(tenant.delete("/v1/claims/early", params={"request_id": "free-2"}), 409)
        error(tenant.delete("/v1/claims/never"), 404, "claim")


def test_long_poll_returns_when_the_claim_is_granted(service: Service) -> None:
    block = name("blk")
    add_block(service, block)
    with service.tenant(name("poll")) as tenant:
        tenant.post("/v1/claims", json=claim(block, "waiter"))
        timer = threading.Timer(0.5, schedule, args=(service,))
        timer.start()
        reply = tenant.get("/v1/claims/waiter", params={"wait": 20})
        timer.join()
        assert reply.json()["state"] == "allocated"
        assert reply.elapsed.total_seconds() < 10
        quick = tenant.get("/v1/claims/waiter", params={"wait": 0})
        assert quick.json()["state"] == "allocated"
        error(tenant.get("/v1/claims/waiter", params={"wait": 61}), 422, "wait")
        error(tenant.get("/v1/claims/waiter", params={"wait": "soon"}), 422)


def test_dry_run_and_explain(service: Service) -> None:
    block = name("blk")
    add_block(service, block, [1.0, 1.0, 1.0])
    with service.tenant(name("dry")) as tenant:
        fits = tenant.post("/v1/claims:dry-run", json=claim(block, "d", [0.5, 2.0, 2.0]))
        assert fits.status_code == 200, fits.text
        assert fits.json()["fits_now"] is True and fits.json()["reason"] is None
        assert fits.json()["blocks"][block]["demand"] == [0.5, 2.0, 2.0]
        never = tenant.post("/v1/claims:dry-run", json=claim(block, "d", [1.5, 1.5, 1.5]))
        assert never.json()["fits_when_unlocked"] is False
        assert never.json()["reason"] == f"not enough budget left on {block}"
        assert tenant.get("/v1/claims").json()["claims"] == []  # nothing stored
        tenant.post("/v1/claims", json=claim(block, "a", [0.8, 0.8, 0.8]))
        tenant.post("/v1/claims", json=claim(block, "b", [0.8, 0.8, 0.8]))
        schedule(service)
        why = tenant.get("/v1/claims/b/explain").json()
        assert why["state"] == "pending" and why["fits_when_unlocked"] is False
        assert why["reason"].startswith(f"not enough budget left on {block} (needs 0.8")
        assert why["blocks"][block]["remaining"] == pytest.approx([0.2, 0.2, 0.2])


def test_listing_pages_through_a_tenants_claims(service: Service) -> None:
    block = name("blk")
    add_block(service, block, [10.0, 10.0, 10.0])
    with service.tenant(name("list")) as tenant:
        for k in range(5):
            tenant.post("/v1/claims", json=claim(block, f"c{k}", [0.1, 0.1, 0.1]))
        tenant.post("/v1/claims", json=claim(block, "big", [50, 50, 50]))
        seen, cursor = [], None
        while True:
            page = tenant.get(
                "/v1/claims", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
            )
            seen += [c["id"] for c in page.json()["claims"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == ["c0", "c1", "c2", "c3", "c4", "big"]
        rejected = tenant.get("/v1/claims", params={"state": "rejected"}).json()["claims"]
        assert [c["id"] for c in rejected] == ["big"]
        error(tenant.get("/v1/claims", params={"state": "lost"}), 422, "state")
        error(tenant.get("/v1/claims", params={"limit": 0}), 422, "limit")
        error(tenant.get("/v1/claims", params={"cursor": "x"}), 422, "cursor")


def test_tenants_never_see_each_others_claims(service: Service) -> None:
    block = name("blk")
    add_block(service, block)
    with service.tenant(name("a")) as a, service.tenant(name("b")) as b:
        a.post("/v1/claims", json=claim(block, "secret"))
        schedule(service)
        missing = error(b.get("/v1/claims/never-existed"), 404, "claim")
        assert error(b.get("/v1/claims/secret"), 404, "claim") == missing.replace(
            "never-existed", "secret"
        )
        error(b.post("/v1/claims/secret/consume", json={"request_id": "x", "fraction": 1}), 404)
        error(b.post("/v1/claims/secret/release", json={"request_id": "x"}), 404)
        error(b.delete("/v1/claims/secret"), 404)
        error(b.get("/v1/claims/secret/explain"), 404)
        assert b.get("/v1/claims").json()["claims"] == []
        b.post("/v1/claims", json=claim(block, "secret", [0.1, 0.1, 0.1]))  # own namespace
        assert a.get("/v1/claims/secret").json()["demand"] == {block: [0.4, 0.4, 0.4]}


def test_audit_and_restart_keep_everything(service: Service) -> None:
    block = name("blk")
    add_block(service, block)
    with service.tenant(name("restart")) as tenant:
        tenant.post("/v1/claims", json=claim(block, "kept"))
        schedule(service)
        tenant.post("/v1/claims/kept/consume", json={"request_id": "r", "fraction": 0.5})
        before = tenant.get("/v1/claims/kept").json()
        with service.admin() as admin:
            rows = admin.get("/v1/audit", params={"limit": 10_000}).json()["rows"]
            assert rows[0]["op"] == "init"
            assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
            page = admin.get("/v1/audit", params={"after": 2, "limit": 3}).json()
            assert [r["seq"] for r in page["rows"]] == [3, 4, 5] and page["next_after"] == 5
            blocks_before = admin.get("/v1/blocks").json()
        service.restart()
        assert tenant.get("/v1/claims/kept").json() == before  # same token, same claim
        with service.admin() as admin:
            assert admin.get("/v1/blocks").json() == blocks_before


def test_unknown_routes_and_methods_are_json(service: Service) -> None:
    error(httpx.get(f"{service.url}/v2/nothing"), 404)
    error(httpx.put(f"{service.url}/healthz"), 405)


def test_the_server_refuses_to_start_unmigrated_or_without_a_token(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    run = subprocess.run(
        [sys.executable, "-m", "dpsched", "serve", "--db", str(db)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DPSCHED_ADMIN_TOKEN": ADMIN},
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"error: --db: no database file {db}: create it with `dpsched db upgrade --db {db}`"
    )
    run = subprocess.run(
        [sys.executable, "-m", "dpsched", "serve", "--db", str(db)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "DPSCHED_ADMIN_TOKEN: set it" in run.stderr


def test_metrics_show_the_budget_and_every_dashboard_query_exists(service: Service) -> None:
    block = name("blk")
    add_block(service, block, [1.0, 2.0, 3.0])
    with service.tenant(name("metrics")) as tenant:
        tenant.post("/v1/claims", json=claim(block, "m", [0.5, 0.5, 0.5]))
    schedule(service)
    text = httpx.get(f"{service.url}/metrics", timeout=60).text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    names = {key.split("{")[0] for key in samples}
    for part, values in (("capacity", [1.0, 2.0, 3.0]), ("allocated", [0.5, 0.5, 0.5])):
        for order, value in zip(("alpha=2", "alpha=4", "alpha=8"), values, strict=True):
            key = f'dpsched_block_budget{{block="{block}",order="{order}",part="{part}"}}'
            assert samples[key] == value
    assert samples['dpsched_claims{state="allocated"}'] >= 1
    grafana = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dpsched.json"
    dashboard = json.loads(grafana.read_text())
    queried = {
        metric
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for metric in re.findall(r"dpsched_[a-z_]+", target["expr"])
    }
    assert queried >= {"dpsched_block_budget", "dpsched_claims", "dpsched_request_seconds_bucket"}
    assert queried <= names, queried - names


def test_ecosystem_demands_need_no_service_code(service: Service) -> None:
    block = name("blk")
    add_block(service, block, [10.0, 10.0, 10.0])
    event = {"GaussianDpEvent": {"noise_multiplier": 4.0}}
    with service.tenant(name("events")) as tenant:
        made = tenant.post(
            "/v1/claims", json={"id": "e", "blocks": [block], "demand": {"dp_event": event}}
        )
        assert made.status_code == 201, made.text
        assert made.json()["demand"] == {block: [2 / 32, 4 / 32, 8 / 32]}
        zcdp = tenant.post(
            "/v1/claims", json={"id": "z", "blocks": [block], "demand": {"zcdp": 0.1}}
        )
        assert zcdp.json()["demand"][block] == pytest.approx([0.2, 0.4, 0.8])
        bad = {"id": "x", "blocks": [block], "demand": {"dp_event": {"GaussianDpEvent": {"s": 1}}}}
        assert "not a field of GaussianDpEvent" in error(
            tenant.post("/v1/claims", json=bad), 422, "demand.dp_event.GaussianDpEvent.s"
        )


def test_flexible_claims_report_the_chosen_blocks_and_their_data(service: Service) -> None:
    dataset = name("ds")
    with service.admin() as admin:
        for k, (capacity, size) in enumerate([(10.0, 300), (10.0, 200), (0.1, 900)]):
            body = {"id": f"{dataset}-{k}", "capacity": [capacity] * 3, "dataset": dataset}
            assert admin.post("/v1/blocks", json={**body, "size": size}).status_code == 201
    with service.tenant(name("flex")) as tenant:
        body = {
            "id": "f",
            "blocks": {"dataset": dataset},
            "min_data": 400,
            "demand": {"rdp": [0.5, 0.5, 0.5]},
        }
        assert tenant.post("/v1/claims", json=body).status_code == 201
        dry = tenant.post("/v1/claims:dry-run", json={**body, "id": "d"}).json()
        assert list(dry["blocks"]) == [f"{dataset}-0", f"{dataset}-1"] and dry["fits_now"]
        schedule(service)
        granted = tenant.get("/v1/claims/f").json()
        assert granted["state"] == "allocated"
        assert granted["blocks"] == [f"{dataset}-0", f"{dataset}-1"]  # the newest is too small
        assert granted["actual_data"] == 500
