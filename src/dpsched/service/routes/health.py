"""Open routes, without a token: liveness and the Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dpsched.service.runtime import ServiceRuntime

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics_text(service: ServiceRuntime) -> Response:
    # Off the event loop: the ledger's figures are read through the writer.
    text = await asyncio.to_thread(generate_latest, service.metrics.registry)
    return Response(content=text, media_type=CONTENT_TYPE_LATEST)
