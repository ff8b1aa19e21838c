"""Concurrency and crashes, on SQLite and on a real PostgreSQL.

16 client threads submit, consume, release and withdraw at random (with scheduling
rounds in between) against a real `dpsched serve`; in the crash test the server is
SIGKILLed at random moments at least ten times and restarted on the same journal while
the clients retry with the same request ids. Afterwards the clients' own log of what
was acknowledged must be in effect exactly once, the budget must add up, the invariant
must hold, and `dpsched audit verify` must pass the whole journal.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.service_load import BLOCKS, Acked, run_clients, wait_healthy
from tests.service_process import ADMIN, Service, new_database

CLIENTS = 16
TOLERANCE = 1e-9


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    config = tmp_path / "service.yaml"
    config.write_text("accounting: basic\nscheduler: {policy: dpf, period: 0.2}\nretention: 0.5\n")
    running = Service(new_database(request.param, tmp_path, postgres), tmp_path, config).start()
    with running.admin() as admin:
        for block in BLOCKS:
            assert admin.post("/v1/blocks", json={"id": block, "epsilon": 1.0}).status_code == 201
    yield running
    running.stop()


def tenants(service: Service, count: int) -> list[str]:
    tokens = []
    with service.admin() as admin:
        for i in range(count):
            reply = admin.post("/v1/tenants", json={"name": f"load{i}"})
            tokens.append(reply.json()["token"])
    return tokens


def check_against_the_clients_log(service: Service, tokens: list[str], logs: list[Acked]) -> None:
    with service.admin() as admin:  # quiesce: once a round grants nothing, none will
        while admin.post("/v1/schedule").json()["granted"]:
            pass
    granted = {b: 0.0 for b in BLOCKS}
    consumed = {b: 0.0 for b in BLOCKS}
    for token, log in zip(tokens, logs, strict=True):
        with httpx.Client(
            base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            claims = {c["id"]: c for c in _all_claims(client)}
        # Nothing acknowledged is lost, nothing unacknowledged appears from nowhere.
        assert set(log.submitted) <= set(claims)
        for claim_id, body in log.submitted.items():
            claim = claims[claim_id]
            epsilon = body["demand"]["epsilon"]
            assert claim["blocks"] == body["blocks"]
            assert all(v == [epsilon] for v in claim["demand"].values())
            # Every acknowledged consumption counted exactly once.
            acked = sum(log.consumed.get(claim_id, {}).values())
            used = claim["consumed"][body["blocks"][0]][0]
            if claim_id in log.unknown:
                assert used >= acked * epsilon - TOLERANCE
            else:
                assert used == pytest.approx(acked * epsilon, abs=TOLERANCE)
            if claim_id in log.released:
                assert claim["state"] == "released"
            if claim["state"] in ("allocated", "consumed"):
                for block in body["blocks"]:
                    granted[block] += epsilon
            if claim["state"] == "released":
                for block in body["blocks"]:
                    granted[block] += used
            for block in body["blocks"]:
                consumed[block] += claim["consumed"][block][0]
    with service.admin() as admin:
        blocks = {b["id"]: b for b in admin.get("/v1/blocks").json()["blocks"]}
    for block in BLOCKS:
        view = blocks[block]
        assert view["allocated"][0] + view["consumed"][0] == pytest.approx(granted[block], abs=1e-7)
        assert view["consumed"][0] == pytest.approx(consumed[block], abs=1e-7)
        assert view["allocated"][0] + view["consumed"][0] <= view["capacity"][0] + TOLERANCE
        parts = sum(view[p][0] for p in ("locked", "unlocked", "reserved", "allocated", "consumed"))
        assert parts == pytest.approx(view["capacity"][0], abs=1e-7)
    audit = subprocess.run(
        [sys.executable, "-m", "dpsched", "audit", "verify", "--db", service.db],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr


def _all_claims(client: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/claims", params=params).json()
        found += page["claims"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def test_concurrent_clients_keep_the_budget_exact(service: Service) -> None:
    tokens = tenants(service, CLIENTS)
    logs = run_clients(service.url, tokens, ADMIN, operations=25, seed=1)
    assert sum(log.ops for log in logs) == CLIENTS * 25
    assert sum(len(log.submitted) for log in logs) > 50
    assert any(log.consumed for log in logs) and any(log.released for log in logs)
    check_against_the_clients_log(service, tokens, logs)


def test_sigkill_at_random_moments_loses_and_doubles_nothing(service: Service) -> None:
    tokens = tenants(service, CLIENTS)
    stop = threading.Event()
    rng = random.Random(7)
    kills = 0

    logs = [Acked() for _ in tokens]

    def enough() -> bool:
        submitted = sum(len(log.submitted) for log in logs)
        consumed = sum(len(c) for log in logs for c in log.consumed.values())
        return submitted > 100 and consumed > 20

    def killer() -> None:
        nonlocal kills
        for _ in range(12):
            time.sleep(rng.uniform(0.3, 1.0))
            service.restart()  # SIGKILL, then start on the same journal and port
            kills += 1
            wait_healthy(service.url)
        # On a slow or busy machine the kills may leave little time for work: let the
        # clients reach the volume this test needs (bounded), then stop them.
        deadline = time.monotonic() + 120
        while not enough() and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()  # the clients finish the operation they are in, retrying as needed

    thread = threading.Thread(target=killer)
    thread.start()
    run_clients(
        service.url, tokens, ADMIN, operations=100_000, seed=2, stop=stop, retries=10, logs=logs
    )
    thread.join()
    assert kills == 12
    assert sum(len(log.submitted) for log in logs) > 100
    assert sum(len(c) for log in logs for c in log.consumed.values()) > 20
    check_against_the_clients_log(service, tokens, logs)
