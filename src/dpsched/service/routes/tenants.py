"""`/v1/tenants`: the admin adds a tenant and hands its token over, once."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request

from dpsched.service import operations
from dpsched.service.auth import AdminToken
from dpsched.service.bodies import TenantBody, model
from dpsched.service.errors import json_body
from dpsched.service.openapi import request_body
from dpsched.service.runtime import ServiceRuntime
from dpsched.service.state import token_hash

router = APIRouter()


@router.post("/v1/tenants", status_code=201, openapi_extra=request_body(TenantBody))
async def add_tenant(request: Request, who: AdminToken, service: ServiceRuntime) -> dict[str, str]:
    async with service.parsing(who):
        body = model(TenantBody, await json_body(request))
    token = secrets.token_urlsafe(32)  # shown here only: the service keeps its SHA-256
    await service.run(who, operations.add_tenant, body.name, token_hash(token))
    return {"name": body.name, "token": token}
