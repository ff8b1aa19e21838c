"""The REST API (FastAPI) over the durable engine. Paths and JSON keys are a contract.

Every request's work runs on the single writer (`service.writer`), which commits it
before the response leaves. Handlers only parse, authenticate and format.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import secrets
import time as wallclock
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import FastAPI, Query, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dpsched import __version__
from dpsched.core import BlockSpec, Claim, ClaimSpec, ClaimState, Ledger
from dpsched.engine.durable import SNAPSHOT_EVERY, Context, DurableEngine
from dpsched.engine.journal import Archived, Journal
from dpsched.errors import InputError, LedgerError
from dpsched.service import openapi
from dpsched.service.bodies import (
    ConsumeBody,
    RequestBody,
    TenantBody,
    audit_after,
    check_request_id,
    claim_spec,
    claim_state,
    consume_body,
    cursor_after,
    model,
    page_limit,
    wait_seconds,
)
from dpsched.service.config import ServiceConfig
from dpsched.service.errors import ApiError, install_handlers, json_body, reply
from dpsched.service.metrics import Observe, ServiceMetrics
from dpsched.service.openapi import request_body
from dpsched.service.state import ClaimMeta, ServiceState, canonical, ledger_id, token_hash
from dpsched.service.views import block_view, claim_view, fit_view
from dpsched.service.writer import UnavailableError, Writer

FORGET_PER_ROUND = 5_000
"""Claims archived by one round at most, so that a backlog never stalls requests long."""


@dataclass(frozen=True)
class Settings:
    db: str
    config: ServiceConfig
    admin_token: str
    snapshot_every: int = SNAPSHOT_EVERY


ACT_AS = "x-dpsched-tenant"
"""With the admin token, act as this tenant: how a trusted front end (the Kubernetes
operator, whose tenants are namespaces) uses the one API without holding every
tenant's token. The journal records the admin as the actor."""


@dataclass(frozen=True)
class Caller:
    admin: bool
    tenant: str | None
    acting: bool = False


class _Changes:
    """Wakes long polls after every commit (set from the writer thread)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.event = asyncio.Event()

    def bump(self) -> None:
        self.event.set()
        self.event = asyncio.Event()

    def from_writer(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.bump)


def create_app(settings: Settings) -> FastAPI:
    """Open the journal (refusing an unmigrated one), recover the engine, build the app."""
    config = settings.config
    state = ServiceState()
    durable = DurableEngine.open(
        Journal(settings.db),
        config.make_accounting(),
        config.scheduler.make_unlocking(),
        config.scheduler.policy,
        options=config.scheduler.options,
        state=state,
        snapshot_every=settings.snapshot_every,
    )
    changes = _Changes()
    metrics = ServiceMetrics()

    def forget_finished(now: float) -> int:
        """Move claims finished more than `retention` ago from memory to the archive."""
        assert config.retention is not None
        with durable.acting(Context(actor="retention"), now) as engine:
            forgotten = engine.forget_finished(now - config.retention, FORGET_PER_ROUND)
        for item in forgotten:
            meta = state.claims[item.claim.id]
            record = {
                "view": claim_view(durable.engine.ledger, meta, item.claim),
                "body": meta.body,
                "request_ids": list(item.request_ids),
            }
            archived = Archived(item.claim.id, meta.tenant, meta.n, item.claim.state.value, record)
            durable.archive(archived)
        state.drop_claims([item.claim.id for item in forgotten])
        return len(forgotten)

    writer = Writer(
        durable,
        config.scheduler.period,
        on_commit=changes.from_writer,
        on_round=metrics.observe_round,
        on_commit_time=metrics.commit_seconds.observe,
        after_round=None if config.retention is None else forget_finished,
    )
    metrics.watch(writer)
    admin_hash = token_hash(settings.admin_token)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        changes.loop = asyncio.get_running_loop()
        # Everything alive now (modules, the recovered state) lives as long as the
        # process: exempt it from the cyclic collector, whose full passes over it
        # otherwise stall every request for tens of milliseconds.
        gc.collect()
        gc.freeze()
        writer.start()
        try:
            yield
        finally:
            writer.stop()
            durable.journal.close()

    app = FastAPI(
        title="dpsched budget service",
        version=__version__,
        description="Differential-privacy budget as a scheduled resource.",
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.durable = durable
    app.state.writer = writer

    async def run(job: Callable[[DurableEngine, float], Any]) -> Any:
        try:
            return await writer.submit_async(job)
        except UnavailableError as exc:
            raise ApiError(503, "journal", str(exc)) from None

    def caller(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "authorization", "send `Authorization: Bearer TOKEN`")
        token = token.strip()
        if hmac.compare_digest(token_hash(token), admin_hash):
            acting = request.headers.get(ACT_AS)
            if acting is None:
                return Caller(admin=True, tenant=None)
            if acting not in state.tenants:
                raise ApiError(404, ACT_AS, f"unknown tenant {acting!r}")
            return Caller(admin=True, tenant=acting, acting=True)
        tenant = state.tenant_of(token)
        if tenant is None:
            raise ApiError(401, "authorization", "unknown token")
        return Caller(admin=False, tenant=tenant)

    def admin(request: Request) -> Caller:
        who = caller(request)
        if not who.admin:
            raise ApiError(403, "authorization", "this route needs the admin token")
        return who

    def as_tenant(request: Request) -> tuple[str, Caller]:
        """The tenant a claim route acts for, and who acts (for the journal)."""
        who = caller(request)
        if who.tenant is None or (who.admin and not who.acting):
            raise ApiError(403, "authorization", "claims belong to tenants: use a tenant token")
        return who.tenant, who

    def tenant(request: Request) -> str:
        return as_tenant(request)[0]

    # ------------------------------------------------------------ middleware
    app.add_middleware(Observe, metrics=metrics)
    install_handlers(app)

    # ------------------------------------------------------------------ open
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics_text() -> Response:
        text = await asyncio.to_thread(generate_latest, metrics.registry)
        return Response(content=text, media_type=CONTENT_TYPE_LATEST)

    # --------------------------------------------------------------- tenants
    @app.post("/v1/tenants", status_code=201, openapi_extra=request_body(TenantBody))
    async def add_tenant(request: Request) -> dict[str, str]:
        who = admin(request)
        body = model(TenantBody, await json_body(request))
        token = secrets.token_urlsafe(32)

        def job(durable: DurableEngine, now: float) -> None:
            if body.name in state.tenants:
                raise ApiError(409, "name", f"tenant {body.name!r} exists")
            state.add_tenant(body.name, token_hash(token))
            args = {"name": body.name, "token_sha256": token_hash(token)}
            durable.record("tenant_add", args, _context(who, None), now)

        await run(job)
        return {"name": body.name, "token": token}

    # ---------------------------------------------------------------- blocks
    @app.post(
        "/v1/blocks",
        status_code=201,
        openapi_extra=request_body(BlockSpec),
        response_model=dict[str, Any],
    )
    async def add_block(request: Request) -> Response:
        who = admin(request)
        data = await json_body(request)

        def job(durable: DurableEngine, now: float) -> dict[str, Any]:
            spec = model(BlockSpec, {"arrival": now, **data})
            ledger = durable.engine.ledger
            if spec.id in {b.id for b in ledger.blocks}:
                raise ApiError(409, "id", f"block {spec.id!r} exists")
            with durable.acting(_context(who, None), now) as engine:
                index = engine.add_block(spec, now)
            return block_view(ledger, index)

        return reply(await run(job), 201)

    @app.get("/v1/blocks", response_model=dict[str, Any])
    async def list_blocks(request: Request) -> Response:
        caller(request)

        def job(durable: DurableEngine, _now: float) -> list[dict[str, Any]]:
            ledger = durable.engine.ledger
            return [block_view(ledger, j) for j in range(len(ledger.blocks))]

        return reply({"blocks": await run(job)})

    @app.get("/v1/blocks/{block_id}", response_model=dict[str, Any])
    async def get_block(block_id: str, request: Request) -> Response:
        caller(request)

        def job(durable: DurableEngine, _now: float) -> dict[str, Any]:
            ledger = durable.engine.ledger
            try:
                return block_view(ledger, ledger.block_index(block_id))
            except LedgerError:
                raise ApiError(404, "block", f"no block {block_id!r}") from None

        return reply(await run(job))

    # ---------------------------------------------------------------- claims
    @app.post(
        "/v1/claims",
        status_code=201,
        openapi_extra=request_body(ClaimSpec),
        response_model=dict[str, Any],
    )
    async def submit(request: Request) -> Response:
        owner, who = as_tenant(request)
        data = await json_body(request)
        spec = claim_spec(data)
        key = ledger_id(owner, spec.id)

        def job(durable: DurableEngine, now: float) -> tuple[int, dict[str, Any]]:
            ledger = durable.engine.ledger
            found = lookup(durable, key)
            if found is not None:
                body, view = _known(found, ledger)
                if orjson.loads(body) != data:
                    raise ApiError(409, "id", f"claim {spec.id!r} exists with a different body")
                return 200, view
            stored = spec.model_copy(update={"id": key, "arrival": now})
            _check_selector(stored, ledger)
            with durable.acting(_context(who, None), now) as engine:
                claim = _ledger_call(key, lambda: engine.submit(stored, now))
                durable.record(
                    "claim_body",
                    {"tenant": owner, "id": spec.id, "body": data},
                    _context(who, None),
                    now,
                )
            meta = state.add_claim(owner, spec.id, canonical(data))
            return 201, claim_view(ledger, meta, claim)

        status, view = await run(job)
        return reply(view, status)

    @app.post(
        "/v1/claims:dry-run", openapi_extra=request_body(ClaimSpec), response_model=dict[str, Any]
    )
    async def dry_run(request: Request) -> Response:
        owner = tenant(request)
        data = await json_body(request)
        spec = claim_spec({"id": "dry-run", **data})

        def job(durable: DurableEngine, _now: float) -> dict[str, Any]:
            ledger = durable.engine.ledger
            stored = spec.model_copy(update={"id": ledger_id(owner, spec.id)})
            _check_selector(stored, ledger)
            field = f"tasks.{stored.id}"
            block_ids, demand, _, _ = _ledger_call(stored.id, lambda: ledger.resolve(stored, field))
            index = np.asarray([ledger.block_index(b) for b in block_ids], dtype=np.int64)
            view = fit_view(ledger, tuple(block_ids), index, ledger.stored_demand(demand, index))
            return {**view, "reason": _fit_reason(view, len(block_ids), stored.min_blocks)}

        return reply(await run(job))

    @app.get("/v1/claims", response_model=dict[str, Any])
    async def list_claims(
        request: Request,
        wanted: Annotated[str | None, Query(alias="state")] = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Response:
        owner = tenant(request)
        claim_state(wanted)
        page_limit(limit, 1000)
        after = cursor_after(cursor)

        def job(durable: DurableEngine, _now: float) -> dict[str, Any]:
            ledger = durable.engine.ledger
            found: list[tuple[int, dict[str, Any]]] = []
            for n, key in state.listing(owner).after(after):
                claim = ledger.claim(key)
                if wanted is None or claim.state.value == wanted:
                    found.append((n, claim_view(ledger, state.claims[key], claim)))
                    if len(found) > limit:
                        break
            archived = durable.journal.archived_page(owner, after, limit + 1, wanted)
            found += [(a.n, a.record["view"]) for a in archived]
            found.sort(key=lambda item: item[0])
            more = len(found) > limit
            page = found[:limit]
            return {
                "claims": [view for _, view in page],
                "next_cursor": str(page[-1][0]) if more else None,
            }

        return reply(await run(job))

    def lookup(durable: DurableEngine, key: str) -> tuple[ClaimMeta, Claim] | Archived | None:
        """A claim in memory, or its final record if it was forgotten, or None."""
        meta = state.claims.get(key)
        if meta is not None:
            return meta, durable.engine.ledger.claim(key)
        if not state.archived.might_hold(key):
            return None  # the common case, a new id: no database read
        return durable.journal.archived(key)

    def owned(
        durable: DurableEngine, key: str, claim_id: str
    ) -> tuple[ClaimMeta, Claim] | Archived:
        """The caller's claim; another tenant's is exactly as missing as a missing one."""
        found = lookup(durable, key)
        if found is None:
            raise _missing(claim_id)
        return found

    def claim_job(owner: str, claim_id: str) -> Callable[[DurableEngine, float], Any]:
        key = ledger_id(owner, claim_id)

        def job(durable: DurableEngine, _now: float) -> dict[str, Any]:
            return _known(owned(durable, key, claim_id), durable.engine.ledger)[1]

        return job

    @app.get("/v1/claims/{claim_id}", response_model=dict[str, Any])
    async def get_claim(claim_id: str, request: Request, wait: float = 0.0) -> Response:
        owner = tenant(request)
        wait_seconds(wait)
        deadline = wallclock.monotonic() + wait
        while True:
            changed = changes.event
            view: dict[str, Any] = await run(claim_job(owner, claim_id))
            left = deadline - wallclock.monotonic()
            if view["state"] != ClaimState.PENDING.value or left <= 0:
                return reply(view)
            try:
                await asyncio.wait_for(changed.wait(), timeout=left)
            except TimeoutError:
                return reply(await run(claim_job(owner, claim_id)))

    @app.get("/v1/claims/{claim_id}/explain", response_model=dict[str, Any])
    async def explain(claim_id: str, request: Request) -> Response:
        owner = tenant(request)
        key = ledger_id(owner, claim_id)

        def job(durable: DurableEngine, _now: float) -> dict[str, Any]:
            found = owned(durable, key, claim_id)
            ledger = durable.engine.ledger
            if isinstance(found, Archived):
                view: dict[str, Any] = {
                    "fits_now": False,
                    "fits_when_unlocked": False,
                    "blocks": {},
                }
                described = found.record["view"]
            else:
                meta, claim = found
                view = fit_view(
                    ledger, claim.block_ids, claim.block_index, claim.demand, claim.reserved
                )
                described = claim_view(ledger, meta, claim)
            return {
                "id": claim_id,
                "state": described["state"],
                **view,
                "reason": described["reason"],
            }

        return reply(await run(job))

    @app.post(
        "/v1/claims/{claim_id}/consume",
        openapi_extra=request_body(ConsumeBody),
        response_model=dict[str, Any],
    )
    async def consume(claim_id: str, request: Request) -> Response:
        owner, who = as_tenant(request)
        body = consume_body(await json_body(request))
        key = ledger_id(owner, claim_id)
        request_id = ledger_id(owner, body.request_id)

        def job(durable: DurableEngine, now: float) -> dict[str, Any]:
            found = owned(durable, key, claim_id)
            if isinstance(found, Archived):
                return _archived_retry(found, request_id, "consume")
            meta, claim = found
            ledger = durable.engine.ledger
            with durable.acting(_context(who, body.request_id), now) as engine:
                if body.amount is not None:
                    amount = _amount(ledger, claim.block_ids, body.amount)
                    _ledger_call(
                        key,
                        lambda: engine.consume_amount(key, amount, request_id=request_id, time=now),
                    )
                else:
                    assert body.fraction is not None
                    fraction = body.fraction
                    _ledger_call(
                        key,
                        lambda: engine.consume(
                            key, request_id=request_id, time=now, fraction=fraction
                        ),
                    )
            return claim_view(ledger, meta, ledger.claim(key))

        return reply(await run(job))

    @app.post(
        "/v1/claims/{claim_id}/release",
        openapi_extra=request_body(RequestBody),
        response_model=dict[str, Any],
    )
    async def release(claim_id: str, request: Request) -> Response:
        owner, who = as_tenant(request)
        body = model(RequestBody, await json_body(request))
        return reply(await run(_finish(who, owner, claim_id, body.request_id, only_release=True)))

    @app.delete("/v1/claims/{claim_id}", response_model=dict[str, Any])
    async def withdraw(claim_id: str, request: Request, request_id: str | None = None) -> Response:
        owner, who = as_tenant(request)
        if request_id is not None:
            check_request_id(request_id)
        rid = request_id if request_id is not None else f"delete:{claim_id}"
        return reply(await run(_finish(who, owner, claim_id, rid, only_release=False)))

    def _finish(
        who: Caller, owner: str, claim_id: str, request_id: str, *, only_release: bool
    ) -> Callable[[DurableEngine, float], dict[str, Any]]:
        key = ledger_id(owner, claim_id)
        rid = ledger_id(owner, request_id)

        def job(durable: DurableEngine, now: float) -> dict[str, Any]:
            found = owned(durable, key, claim_id)
            if isinstance(found, Archived):
                return _archived_retry(found, rid, "release" if only_release else "withdraw")
            meta, claim = found
            ledger = durable.engine.ledger
            used = ledger.request(rid)
            if used is not None:
                op = used[0]  # a retry does what it did (or is refused if not this claim's)
            elif not only_release and claim.state is ClaimState.PENDING:
                op = "expire"
            else:
                op = "release"  # the ledger refuses states that hold no grant
            call = engine_op(op)
            with durable.acting(_context(who, request_id), now) as engine:
                _ledger_call(key, lambda: call(engine, key, rid, now))
            return claim_view(ledger, meta, ledger.claim(key))

        return job

    def engine_op(op: str) -> Callable[[Any, str, str, float], Any]:
        if op == "expire":
            return lambda engine, key, rid, now: engine.expire(key, request_id=rid, time=now)
        if op == "release":
            return lambda engine, key, rid, now: engine.release(key, request_id=rid, time=now)
        raise ApiError(409, "request_id", f"already used for {op} of this claim")

    # ----------------------------------------------------------------- admin
    @app.post("/v1/schedule", response_model=dict[str, Any])
    async def schedule_now(request: Request) -> Response:
        who = admin(request)
        # The writer's own round (the periodic one's code, housekeeping and metrics).
        try:
            report = await writer.round_now(lambda _durable, _now: _context(who, None))
        except UnavailableError as exc:
            raise ApiError(503, "journal", str(exc)) from None
        outcome = report.outcome
        return reply(
            {"granted": outcome.granted, "expired": outcome.expired, "time_s": report.seconds}
        )

    @app.get("/v1/audit")
    async def audit(request: Request, after: int = 0, limit: int = 100) -> dict[str, Any]:
        admin(request)
        audit_after(after)
        page_limit(limit, 10_000)
        rows = await asyncio.to_thread(durable.journal.entries, after, limit)
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
            "last_seq": durable.journal.last_seq,
        }

    openapi.install(app)
    return app


def _check_selector(spec: ClaimSpec, ledger: Ledger) -> None:
    """Blocks are resolved at submission: a selector that can match none of the blocks
    whatever their values is a typo (unknown dataset or dimension)."""
    if spec.blocks is not None:
        problem = spec.blocks.unmatchable(ledger.blocks)
        if problem is not None:
            raise ApiError(422, f"blocks.{problem[0]}", problem[1])


def _ledger_call(key: str, call: Callable[[], Any]) -> Any:
    """A ledger operation: its refusals as API errors, fields named as in the body."""
    try:
        return call()
    except InputError as exc:
        field = exc.field.removeprefix(f"tasks.{key}.").removeprefix(f"tasks.{key}")
        raise ApiError(422, field or "body", exc.reason) from None
    except LedgerError as exc:
        raise ApiError(409, "claim", exc.reason) from None


def _amount(ledger: Ledger, block_ids: tuple[str, ...], amount: dict[str, list[float]]) -> Any:
    matrix = np.zeros((len(block_ids), ledger.accounting.dims))
    rows = {b: k for k, b in enumerate(block_ids)}
    for block, vector in amount.items():
        if block not in rows:
            raise ApiError(422, f"amount.{block}", "not a block of this claim")
        if len(vector) != ledger.accounting.dims:
            raise ApiError(
                422, f"amount.{block}", f"needs {ledger.accounting.dims} values, got {len(vector)}"
            )
        matrix[rows[block]] = vector
    return matrix


def _fit_reason(view: dict[str, Any], selected: int, min_blocks: int) -> str | None:
    if selected < min_blocks:
        return f"its selector matches {selected} blocks, it needs at least {min_blocks}"
    if view["fits_now"]:
        return None
    short = [b for b, r in view["blocks"].items() if not r["fits_when_unlocked"]]
    if short:
        return "not enough budget left on " + ", ".join(short)
    locked = [b for b, r in view["blocks"].items() if not r["fits_now"]]
    return "waits for budget to be unlocked on " + ", ".join(locked)


def _known(found: tuple[ClaimMeta, Claim] | Archived, ledger: Ledger) -> tuple[str, dict[str, Any]]:
    """(submitted body as canonical JSON, view) of a live or archived claim."""
    if isinstance(found, Archived):
        return found.record["body"], found.record["view"]
    meta, claim = found
    return meta.body, claim_view(ledger, meta, claim)


def _archived_retry(found: Archived, request_id: str, op: str) -> dict[str, Any]:
    """An operation on a claim already archived: a retry of one it ran answers as it
    did; anything else is refused, as the ledger refuses a finished claim."""
    view: dict[str, Any] = found.record["view"]
    if request_id in found.record["request_ids"]:
        return view
    raise ApiError(409, "claim", f"cannot {op}: claim is {found.state} (finished and archived)")


def _missing(claim_id: str) -> ApiError:
    return ApiError(404, "claim", f"no claim {claim_id!r}")


def _context(who: Caller, request_id: str | None) -> Context:
    actor = f"admin as {who.tenant}" if who.acting else "admin" if who.admin else who.tenant
    return Context(tenant=who.tenant, actor=actor, request_id=request_id)
