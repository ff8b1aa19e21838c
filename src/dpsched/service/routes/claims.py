"""`/v1/claims`: a tenant's claims on privacy budget (the admin may act as a tenant): submit
or dry-run one, list them, read one (waiting while it is pending), explain why it
waits, consume its grant, release what is left, withdraw it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from dpsched.core import ClaimSpec
from dpsched.service import operations, queries
from dpsched.service.auth import TenantToken
from dpsched.service.bodies import (
    ConsumeBody,
    RequestBody,
    check_request_id,
    claim_spec,
    claim_state,
    consume_body,
    cursor_after,
    model,
    page_limit,
    wait_seconds,
)
from dpsched.service.errors import json_body, reply
from dpsched.service.openapi import request_body
from dpsched.service.runtime import ServiceRuntime
from dpsched.service.waits import while_pending

router = APIRouter()


@router.post(
    "/v1/claims",
    status_code=201,
    openapi_extra=request_body(ClaimSpec),
    response_model=dict[str, Any],
)
async def submit(request: Request, who: TenantToken, service: ServiceRuntime) -> Response:
    async with service.parsing(who):
        data = await json_body(request)
        spec = claim_spec(data)
    status, view = await service.run(who, operations.submit_claim, spec, data)
    return reply(view, status)


@router.post(
    "/v1/claims:dry-run", openapi_extra=request_body(ClaimSpec), response_model=dict[str, Any]
)
async def dry_run(request: Request, who: TenantToken, service: ServiceRuntime) -> Response:
    async with service.parsing(who):
        spec = claim_spec({"id": "dry-run", **await json_body(request)})
    return reply(await service.run(who, queries.dry_run, spec))


@router.get("/v1/claims", response_model=dict[str, Any])
async def list_claims(
    who: TenantToken,
    service: ServiceRuntime,
    wanted: Annotated[str | None, Query(alias="state")] = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Response:
    async with service.parsing(who):
        claim_state(wanted)
        page_limit(limit, 1000)
        after = cursor_after(cursor)
    return reply(await service.run(who, queries.list_claims, wanted, limit, after))


@router.get("/v1/claims/{claim_id}", response_model=dict[str, Any])
async def get_claim(
    claim_id: str, who: TenantToken, service: ServiceRuntime, wait: float = 0.0
) -> Response:
    async with service.parsing(who):
        wait_seconds(wait)

    async def read() -> dict[str, Any]:
        return await service.run(who, queries.get_claim, claim_id)

    return reply(await while_pending(read, service.changes, wait))


@router.get("/v1/claims/{claim_id}/explain", response_model=dict[str, Any])
async def explain(claim_id: str, who: TenantToken, service: ServiceRuntime) -> Response:
    return reply(await service.run(who, queries.explain, claim_id))


@router.post(
    "/v1/claims/{claim_id}/consume",
    openapi_extra=request_body(ConsumeBody),
    response_model=dict[str, Any],
)
async def consume(
    claim_id: str, request: Request, who: TenantToken, service: ServiceRuntime
) -> Response:
    async with service.parsing(who):
        body = consume_body(await json_body(request))
    return reply(await service.run(who, operations.consume, claim_id, body))


@router.post(
    "/v1/claims/{claim_id}/release",
    openapi_extra=request_body(RequestBody),
    response_model=dict[str, Any],
)
async def release(
    claim_id: str, request: Request, who: TenantToken, service: ServiceRuntime
) -> Response:
    async with service.parsing(who):
        body = model(RequestBody, await json_body(request))
    return reply(await service.run(who, operations.release, claim_id, body.request_id))


@router.delete("/v1/claims/{claim_id}", response_model=dict[str, Any])
async def withdraw(
    claim_id: str, who: TenantToken, service: ServiceRuntime, request_id: str | None = None
) -> Response:
    async with service.parsing(who):
        if request_id is not None:
            check_request_id(request_id)
    rid = request_id if request_id is not None else f"delete:{claim_id}"
    return reply(await service.run(who, operations.withdraw, claim_id, rid))
