"""The admin's own routes: a scheduling round now (`/v1/schedule`), and the journal, page by
page (`/v1/audit`)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from dpsched.service.auth import AdminToken
from dpsched.service.bodies import audit_after, page_limit
from dpsched.service.errors import reply
from dpsched.service.runtime import ServiceRuntime

router = APIRouter()


@router.post("/v1/schedule", response_model=dict[str, Any])
async def schedule_now(who: AdminToken, service: ServiceRuntime) -> Response:
    # The writer's own round (the periodic one's code, housekeeping and metrics).
    report = await service.round_now(who)
    outcome = report.outcome
    return reply({"granted": outcome.granted, "expired": outcome.expired, "time_s": report.seconds})


@router.get("/v1/audit")
async def audit(
    who: AdminToken, service: ServiceRuntime, after: int = 0, limit: int = 100
) -> dict[str, Any]:
    await service.authenticate(who)
    audit_after(after)
    page_limit(limit, 10_000)
    # The journal's rows are committed: read in a thread, not on the writer.
    journal = service.books.durable.journal
    rows = await asyncio.to_thread(journal.entries, after, limit)
    return {
        "rows": [
            {
                "seq": r.seq,
                "time": r.time,
                "tenant": r.tenant,
                "actor": r.actor,
                "request_id": r.request_id,
                "op": r.op,
                "args": r.args,
                "outcome": r.outcome,
                "hash": r.hash,
            }
            for r in rows
        ],
        "next_after": rows[-1].seq if rows else after,
        "last_seq": journal.last_seq,
    }
