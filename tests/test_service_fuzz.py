"""Schemathesis over the whole OpenAPI document of a real `dpsched serve`: valid and
invalid requests on every operation, as the admin, as a tenant and with no token. No
request may get a 5xx, and a 4xx must change nothing (no journal row)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.errors import UnsupportedSchema
from schemathesis.openapi import from_dict
from tests.service_process import ADMIN, Service, new_database

ADMIN_ROUTES = {"/v1/tenants", "/v1/blocks", "/v1/schedule", "/v1/audit"}
EXAMPLES = 25


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("fuzz")
    config = directory / "service.yaml"
    config.write_text("scheduler: {policy: dpack, period: 3600}\n")
    running = Service(new_database("sqlite", directory, None), directory, config).start()
    with running.admin() as admin:
        for block in ("b0", "b1"):
            admin.post("/v1/blocks", json={"id": block, "epsilon": 10, "delta": 1e-7})
    yield running
    running.stop()


def last_row(service: Service) -> int:
    with service.admin() as admin:
        rows = admin.get("/v1/audit", params={"after": 0, "limit": 10_000}).json()["rows"]
        return int(rows[-1]["seq"])


def test_no_request_gets_a_server_error_or_changes_state_when_refused(
    service: Service, tmp_path: Path
) -> None:
    document = httpx.get(f"{service.url}/openapi.json").json()
    schema = from_dict(document)
    with service.tenant("fuzzer") as tenant:
        token = tenant.headers["Authorization"]
        seed = {"id": "seed", "blocks": ["b0"], "demand": {"rdp": [0.1] * 12}}
        tenant.post("/v1/claims", json=seed)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    seen: dict[int, int] = {}
    for operation in operations:
        admin_route = operation.path in ADMIN_ROUTES or operation.path.startswith("/v1/blocks")
        # Mostly the right role for the route, sometimes the wrong one or none.
        right = f"Bearer {ADMIN}" if admin_route else token
        wrong = token if admin_route else f"Bearer {ADMIN}"
        tokens: list[str | None] = [right, right, right, wrong, None]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(mode)

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            @given(case=strategy, who=st.sampled_from(tokens))
            def attempt(case: Any, who: str | None) -> None:
                headers = {} if who is None else {"Authorization": who}
                before = last_row(service) if case.method != "GET" else None
                reply = case.call(base_url=service.url, headers=headers, timeout=70)
                seen[reply.status_code] = seen.get(reply.status_code, 0) + 1
                assert reply.status_code < 500, (case.method, case.path, reply.text[:500])
                if 400 <= reply.status_code < 500:
                    assert reply.json()["error"]["status"] == reply.status_code
                    if before is not None:
                        assert last_row(service) == before, (case.method, case.path, reply.text)

            try:
                attempt()
            except (Unsatisfiable, UnsupportedSchema):
                # Negative mode only: nothing to make invalid (no parameters or body), or a
                # schema construct schemathesis cannot negate (its limitation, not ours).
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert any(400 <= status < 500 for status in seen)
    assert any(status < 300 for status in seen)
