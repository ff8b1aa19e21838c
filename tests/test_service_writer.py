"""What runs on the service's writer thread, checked on an in-process app: authentication
(so that it sees committed tenants only, even while a failed commit reloads them),
and every scheduling round, whether periodic or asked for with `POST /v1/schedule`."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from dpsched.engine.journal import Journal
from dpsched.service import runtime
from dpsched.service.app import Settings, create_app
from dpsched.service.auth import Caller
from dpsched.service.config import ServiceConfig
from dpsched.service.runtime import Runtime

ADMIN = {"Authorization": "Bearer admin-secret-token"}
pytestmark = pytest.mark.asyncio
CONFIG = {"accounting": "rdp", "alphas": [2, 4, 8], "scheduler": {"policy": "fcfs", "period": 3600}}


@pytest_asyncio.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    migrating = Journal(url, check=False)
    migrating.upgrade()
    migrating.close()
    config = ServiceConfig.model_validate(CONFIG)
    service = create_app(Settings(db=url, config=config, admin_token="admin-secret-token"))
    async with service.router.lifespan_context(service):
        yield service


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        yield client


async def tenant(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    reply = await client.post("/v1/tenants", headers=ADMIN, json={"name": name})
    assert reply.status_code == 201, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


async def add_block(client: httpx.AsyncClient) -> None:
    reply = await client.post("/v1/blocks", headers=ADMIN, json={"id": "b", "capacity": [1] * 3})
    assert reply.status_code == 201, reply.text


def claim(claim_id: str, demand: float = 0.4) -> dict[str, Any]:
    return {"id": claim_id, "blocks": ["b"], "demand": {"rdp": [demand] * 3}}


async def metric(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


def service_of(app: FastAPI) -> Runtime:
    found = app.state.runtime
    assert isinstance(found, Runtime)
    return found


async def test_authentication_runs_on_the_writer_thread(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    checked = runtime.authenticate

    def watched(*args: Any) -> Caller:
        threads.append(threading.current_thread().name)
        return checked(*args)

    monkeypatch.setattr(runtime, "authenticate", watched)
    team = await tenant(client, "team")
    await add_block(client)
    assert (await client.post("/v1/claims", headers=team, json=claim("c"))).status_code == 201
    assert (await client.get("/v1/claims/c", headers=team)).status_code == 200
    assert (await client.post("/v1/schedule", headers=ADMIN)).status_code == 200
    assert (await client.get("/v1/audit", headers=ADMIN)).status_code == 200
    refused = await client.post("/v1/claims", headers=team, json={"id": "x/y"})
    assert refused.status_code == 422  # the body is refused after its caller is known
    unknown = await client.post("/v1/claims", headers={"Authorization": "Bearer nope"}, json={})
    assert unknown.status_code == 401  # whatever the body says
    assert len(threads) == 8
    assert set(threads) == {"dpsched-writer"}


async def test_a_failed_commit_never_makes_a_valid_token_unknown(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed commit reloads the state from the journal, emptying the tenant table
    first; requests authenticated meanwhile must not find their tenant missing."""
    team = await tenant(client, "team")
    await add_block(client)
    books = service_of(app).books
    journal = books.durable.journal
    append = journal.append
    failures = [OSError("the disk is full")]

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return append(*args, **kwargs)

    reset = books.state.reset

    def slow_reset() -> None:  # widen the window between emptying and refilling
        reset()
        time.sleep(0.5)

    monkeypatch.setattr(journal, "append", failing_once)
    monkeypatch.setattr(books.state, "reset", slow_reset)
    write = asyncio.create_task(client.post("/v1/claims", headers=team, json=claim("c")))
    await asyncio.sleep(0.1)  # the writer is reloading now
    reads = await asyncio.gather(*(client.get("/v1/blocks", headers=team) for _ in range(20)))
    assert (await write).status_code == 503
    assert [r.status_code for r in reads] == [200] * 20
    assert (await client.post("/v1/claims", headers=team, json=claim("c"))).status_code == 201


async def test_schedule_asks_the_writer_for_its_own_round(client: httpx.AsyncClient) -> None:
    team = await tenant(client, "team")
    await add_block(client)
    rounds = await metric(client, "dpsched_round_seconds_count")
    for claim_id in ("c1", "c2"):
        assert (await client.post("/v1/claims", headers=team, json=claim(claim_id))).is_success
    scheduled = await client.post("/v1/schedule", headers=ADMIN)
    assert scheduled.status_code == 200
    answer = scheduled.json()
    assert set(answer) == {"granted", "expired", "time_s"}
    assert answer["granted"] == ["team/c1", "team/c2"] and answer["time_s"] > 0
    assert (await client.post("/v1/schedule", headers=ADMIN)).json()["granted"] == []
    assert await metric(client, "dpsched_round_seconds_count") == rounds + 2
    assert await metric(client, "dpsched_granted_total") == 2
    rows = (await client.get("/v1/audit", headers=ADMIN, params={"limit": 1000})).json()["rows"]
    assert {r["actor"] for r in rows if r["op"] == "allocate"} == {"admin"}  # who asked


async def test_refused_rounds_change_nothing(client: httpx.AsyncClient) -> None:
    team = await tenant(client, "team")
    rounds = await metric(client, "dpsched_round_seconds_count")
    tries: list[Callable[[], Any]] = [
        lambda: client.post("/v1/schedule"),
        lambda: client.post("/v1/schedule", headers={"Authorization": "Bearer nope"}),
        lambda: client.post("/v1/schedule", headers=team),
        lambda: client.post("/v1/schedule", headers={**ADMIN, "x-dpsched-tenant": "ghost"}),
    ]
    statuses = [(await attempt()).status_code for attempt in tries]
    assert statuses == [401, 401, 403, 404]
    assert await metric(client, "dpsched_round_seconds_count") == rounds
