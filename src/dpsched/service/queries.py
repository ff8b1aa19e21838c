"""The reads the writer answers: blocks, claims, listings, dry runs and explanations.

They run on the writer thread, as writes do, so that an answer never shows what is not
committed; none of them changes anything or writes to the journal. Each is a plain
function of the `Call` and the request's parsed input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from dpsched.core import ClaimSpec, Ledger
from dpsched.engine.journal import Archived
from dpsched.errors import InputError, LedgerError
from dpsched.service.books import Call, known
from dpsched.service.errors import ApiError
from dpsched.service.state import ledger_id
from dpsched.service.views import block_view, claim_view, fit_view

T = TypeVar("T")


# ------------------------------------------------------------------ blocks
def list_blocks(call: Call) -> dict[str, Any]:
    ledger = call.ledger
    return {"blocks": [block_view(ledger, j) for j in range(len(ledger.blocks))]}


def get_block(call: Call, block_id: str) -> dict[str, Any]:
    ledger = call.ledger
    try:
        return block_view(ledger, ledger.block_index(block_id))
    except LedgerError:
        raise ApiError(404, "block", f"no block {block_id!r}") from None


# ------------------------------------------------------------------ claims
def get_claim(call: Call, claim_id: str) -> dict[str, Any]:
    return known(call.owned(claim_id), call.ledger)[1]


def list_claims(call: Call, wanted: str | None, limit: int, after: int) -> dict[str, Any]:
    """One page of the caller's claims in submission order, live and archived merged,
    after the cursor `after` (a submission number)."""
    ledger = call.ledger
    state = call.books.state
    owner = call.caller.owner
    found: list[tuple[int, dict[str, Any]]] = []
    for n, key in state.listing(owner).after(after):
        claim = ledger.claim(key)
        if wanted is None or claim.state.value == wanted:
            found.append((n, claim_view(ledger, state.claims[key], claim)))
            if len(found) > limit:
                break
    archived = call.books.durable.journal.archived_page(owner, after, limit + 1, wanted)
    found += [(a.n, a.record["view"]) for a in archived]
    found.sort(key=lambda item: item[0])
    more = len(found) > limit
    page = found[:limit]
    return {
        "claims": [view for _, view in page],
        "next_cursor": str(page[-1][0]) if more else None,
    }


def explain(call: Call, claim_id: str) -> dict[str, Any]:
    """Why a claim waits: block by block, would its demand fit now, or once unlocked."""
    found = call.owned(claim_id)
    ledger = call.ledger
    if isinstance(found, Archived):
        view: dict[str, Any] = {"fits_now": False, "fits_when_unlocked": False, "blocks": {}}
        described = found.record["view"]
    else:
        meta, claim = found
        view = fit_view(ledger, claim.block_ids, claim.block_index, claim.demand, claim.reserved)
        described = claim_view(ledger, meta, claim)
    return {"id": claim_id, "state": described["state"], **view, "reason": described["reason"]}


def dry_run(call: Call, spec: ClaimSpec) -> dict[str, Any]:
    """Would this claim fit, and if not why, without submitting it."""
    ledger = call.ledger
    stored = spec.model_copy(update={"id": ledger_id(call.caller.owner, spec.id)})
    check_selector(stored, ledger)
    field = f"tasks.{stored.id}"
    block_ids, demand, _, _ = ledger_call(stored.id, lambda: ledger.resolver.resolve(stored, field))
    index = np.asarray([ledger.block_index(b) for b in block_ids], dtype=np.int64)
    view = fit_view(ledger, tuple(block_ids), index, ledger.resolver.stored_demand(demand, index))
    return {**view, "reason": _fit_reason(view, len(block_ids), stored.min_blocks)}


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


# ------------------------------------------------------- shared with writes
def check_selector(spec: ClaimSpec, ledger: Ledger) -> None:
    """Blocks are resolved at submission: a selector that can match none of the blocks
    whatever their values is a typo (unknown dataset or dimension)."""
    if spec.blocks is not None:
        problem = spec.blocks.unmatchable(ledger.blocks)
        if problem is not None:
            raise ApiError(422, f"blocks.{problem[0]}", problem[1])


def ledger_call(key: str, call: Callable[[], T]) -> T:
    """A ledger operation: its refusals as API errors, fields named as in the body."""
    try:
        return call()
    except InputError as exc:
        field = exc.field.removeprefix(f"tasks.{key}.").removeprefix(f"tasks.{key}")
        raise ApiError(422, field or "body", exc.reason) from None
    except LedgerError as exc:
        raise ApiError(409, "claim", exc.reason) from None
