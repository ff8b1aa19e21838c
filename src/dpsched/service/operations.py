"""The changes the writer applies: tenants, blocks, claims and their life cycle, and the
retention's housekeeping.

Each is a plain function of the `Call` (the books, the writer's clock, the caller) and
the request's parsed input; a handler hands one to the writer (`Runtime.run`), which
applies it in a batch and commits the batch before anyone hears of it. The ledger's
own operations are journaled by the durable engine as they change the ledger; the
service's operations on its own state are journaled here, with `record`, and only here.

A retried request answers as the first did: a re-posted claim with the same body, a
reused request id (also for claims already archived).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from dpsched.core import BlockSpec, ClaimSpec, ClaimState, Ledger
from dpsched.engine.durable import Context
from dpsched.engine.engine import Engine
from dpsched.engine.journal import Archived
from dpsched.service.bodies import ConsumeBody, model
from dpsched.service.books import Books, Call, known
from dpsched.service.errors import ApiError
from dpsched.service.queries import check_selector, ledger_call
from dpsched.service.records import ClaimBody, TenantAdded
from dpsched.service.state import canonical, ledger_id
from dpsched.service.views import block_view, claim_view

FORGET_PER_ROUND = 5_000
"""Claims archived by one round at most, so that a backlog never stalls requests long."""


# ------------------------------------------------------------ tenants, blocks
def add_tenant(call: Call, name: str, token_sha256: str) -> None:
    state = call.books.state
    if name in state.tenants:
        raise ApiError(409, "name", f"tenant {name!r} exists")
    state.add_tenant(name, token_sha256)
    call.books.durable.record(TenantAdded(name, token_sha256), call.context(), call.now)


def add_block(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """A new block, arriving now (the writer runs a round right after its batch: the new
    budget may let waiting claims in)."""
    spec = model(BlockSpec, {"arrival": call.now, **data})
    ledger = call.ledger
    if spec.id in {b.id for b in ledger.blocks}:
        raise ApiError(409, "id", f"block {spec.id!r} exists")
    with call.books.durable.acting(call.context(), call.now) as engine:
        index = engine.add_block(spec, call.now)
    return block_view(ledger, index)


# --------------------------------------------------------------------- claims
def submit_claim(call: Call, spec: ClaimSpec, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(201, the new claim), or (200, the claim) for a re-post of the same body."""
    ledger = call.ledger
    key = call.key(spec.id)
    found = call.books.lookup(key)
    if found is not None:
        body, view = known(found, ledger)
        if orjson.loads(body) != data:
            raise ApiError(409, "id", f"claim {spec.id!r} exists with a different body")
        return 200, view
    stored = spec.model_copy(update={"id": key, "arrival": call.now})
    check_selector(stored, ledger)
    owner = call.caller.owner
    durable = call.books.durable
    with durable.acting(call.context(), call.now) as engine:
        claim = ledger_call(key, lambda: engine.submit(stored, call.now))
        durable.record(ClaimBody(owner, spec.id, data), call.context(), call.now)
    meta = call.books.state.add_claim(owner, spec.id, canonical(data))
    return 201, claim_view(ledger, meta, claim)


def consume(call: Call, claim_id: str, body: ConsumeBody) -> dict[str, Any]:
    """Spend part of a grant: a fraction of it, or an amount per block."""
    found = call.owned(claim_id)
    key = call.key(claim_id)
    request_id = call.key(body.request_id)
    if isinstance(found, Archived):
        return _archived_retry(found, request_id, "consume")
    meta, claim = found
    ledger = call.ledger
    now = call.now
    with call.books.durable.acting(call.context(body.request_id), now) as engine:
        if body.amount is not None:
            amount = _amount(ledger, claim.block_ids, body.amount)
            ledger_call(
                key, lambda: engine.consume_amount(key, amount, request_id=request_id, time=now)
            )
        else:
            fraction = body.fraction
            assert fraction is not None, "bodies.consume_body checks one of them is given"
            ledger_call(
                key,
                lambda: engine.consume(key, request_id=request_id, time=now, fraction=fraction),
            )
    return claim_view(ledger, meta, ledger.claim(key))


def release(call: Call, claim_id: str, request_id: str) -> dict[str, Any]:
    """Give back what a grant has not consumed."""
    return _finish(call, claim_id, request_id, only_release=True)


def withdraw(call: Call, claim_id: str, request_id: str) -> dict[str, Any]:
    """A pending claim stops waiting (it expires); a granted one releases what is left."""
    return _finish(call, claim_id, request_id, only_release=False)


def _finish(call: Call, claim_id: str, request_id: str, *, only_release: bool) -> dict[str, Any]:
    found = call.owned(claim_id)
    key = call.key(claim_id)
    rid = ledger_id(call.caller.owner, request_id)
    if isinstance(found, Archived):
        return _archived_retry(found, rid, "release" if only_release else "withdraw")
    meta, claim = found
    ledger = call.ledger
    used = ledger.request(rid)
    if used is not None:
        op = used[0]  # a retry does what it did (or is refused if not this claim's)
    elif not only_release and claim.state is ClaimState.PENDING:
        op = "expire"
    else:
        op = "release"  # the ledger refuses states that hold no grant
    if op not in {"expire", "release"}:
        raise ApiError(409, "request_id", f"already used for {op} of this claim")
    now = call.now
    with call.books.durable.acting(call.context(request_id), now) as engine:
        ledger_call(key, lambda: _end(engine, op, key, rid, now))
    return claim_view(ledger, meta, ledger.claim(key))


def _end(engine: Engine, op: str, key: str, request_id: str, now: float) -> None:
    if op == "expire":
        engine.expire(key, request_id=request_id, time=now)
    else:
        engine.release(key, request_id=request_id, time=now)


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


def _archived_retry(found: Archived, request_id: str, op: str) -> dict[str, Any]:
    """An operation on a claim already archived: a retry of one it ran answers as it
    did; anything else is refused, as the ledger refuses a finished claim."""
    view: dict[str, Any] = found.record["view"]
    if request_id in found.record["request_ids"]:
        return view
    raise ApiError(409, "claim", f"cannot {op}: claim is {found.state} (finished and archived)")


# ------------------------------------------------------------------ retention
def forget_finished(books: Books, retention: float, now: float) -> int:
    """Move claims finished more than `retention` seconds ago from memory to the
    journal's archive (their final view, body and request ids); how many moved. Runs
    after a round and commits with it."""
    durable = books.durable
    state = books.state
    with durable.acting(Context(actor="retention"), now) as engine:
        forgotten = engine.forget_finished(now - retention, FORGET_PER_ROUND)
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
