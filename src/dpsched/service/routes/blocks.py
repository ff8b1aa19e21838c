"""`/v1/blocks`: the admin adds data blocks (each with its budget); anyone with a token
reads them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from dpsched.core import BlockSpec
from dpsched.service import operations, queries
from dpsched.service.auth import AdminToken, AnyToken
from dpsched.service.errors import json_body, reply
from dpsched.service.openapi import request_body
from dpsched.service.runtime import ServiceRuntime

router = APIRouter()


@router.post(
    "/v1/blocks",
    status_code=201,
    openapi_extra=request_body(BlockSpec),
    response_model=dict[str, Any],
)
async def add_block(request: Request, who: AdminToken, service: ServiceRuntime) -> Response:
    async with service.parsing(who):
        data = await json_body(request)
    return reply(await service.run(who, operations.add_block, data), 201)


@router.get("/v1/blocks", response_model=dict[str, Any])
async def list_blocks(who: AnyToken, service: ServiceRuntime) -> Response:
    return reply(await service.run(who, queries.list_blocks))


@router.get("/v1/blocks/{block_id}", response_model=dict[str, Any])
async def get_block(block_id: str, who: AnyToken, service: ServiceRuntime) -> Response:
    return reply(await service.run(who, queries.get_block, block_id))
