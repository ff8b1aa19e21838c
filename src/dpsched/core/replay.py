"""Replaying the ledger's own records (`core.records`) exactly: a restart, an audit and a
standby all rebuild state this way."""

from __future__ import annotations

import numpy as np

from dpsched.budget.demand import ElasticDemand
from dpsched.core.blocks import BlockSpec
from dpsched.core.claims import ClaimBatch
from dpsched.core.flexible import Flex
from dpsched.core.ledger import Ledger
from dpsched.core.records import (
    AddBlock,
    Allocate,
    Consume,
    Expand,
    Expire,
    Forget,
    LedgerOperation,
    Materialise,
    Release,
    Reserve,
    Submit,
    Unlock,
)
from dpsched.errors import InputError


def replay(ledger: Ledger, op: LedgerOperation) -> None:
    """Apply one reported operation to `ledger` (which reports it again, if listened to)."""
    match op:
        case AddBlock():
            ledger.add_block(BlockSpec.model_validate(op.spec))
        case Unlock():
            ledger.unlock(np.asarray(op.fraction, dtype=float), np.asarray(op.index))
        case Submit():
            ledger.submit_batch(_one_claim(ledger, op), time=float(op.time))
        case Reserve():
            amount = np.asarray(op.amount, dtype=float)
            ledger.reserve(op.claim, amount, request_id=op.request_id, time=op.time)
        case Allocate():
            ledger.allocate(op.claim, request_id=op.request_id, time=op.time)
        case Consume() if op.amount is not None:
            amount = np.asarray(op.amount, dtype=float)
            ledger.consume_amount(op.claim, amount, request_id=op.request_id, time=op.time)
        case Consume():
            if op.fraction is None:
                raise InputError("consume", "needs 'fraction' or 'amount'")
            ledger.consume(op.claim, request_id=op.request_id, time=op.time, fraction=op.fraction)
        case Release():
            ledger.release(op.claim, request_id=op.request_id, time=op.time)
        case Expire():
            ledger.expire(op.claim, request_id=op.request_id, time=op.time)
        case Forget():
            ledger.forget(op.claims)
        case Expand():
            ledger.set_grant(op.claim, np.asarray(op.demand, dtype=float), op.grant)
        case Materialise():
            ledger.set_blocks(op.claim, op.block_ids, op.time, valid=op.valid)
        case _:
            raise InputError("op", f"{op.op!r} is not an operation the ledger replays")


def _one_claim(ledger: Ledger, op: Submit) -> ClaimBatch:
    """A reported submission as a one-claim batch (with what makes it flexible or
    elastic, when it is)."""
    claim = op.claim
    block_ids = tuple(claim.block_ids)
    timeout = claim.timeout
    return ClaimBatch(
        ids=[claim.id],
        weight=np.asarray([claim.weight], dtype=float),
        arrival=np.asarray([claim.arrival], dtype=float),
        timeout=np.asarray([np.nan if timeout is None else timeout], dtype=float),
        min_blocks=[int(claim.min_blocks)],
        block_ids=[block_ids],
        indptr=np.asarray([0, len(block_ids)], dtype=np.int64),
        block_index=np.asarray([ledger.block_index(b) for b in block_ids], dtype=np.int64),
        demand=np.asarray(claim.demand, dtype=float).reshape(
            len(block_ids), ledger.accounting.dims
        ),
        flex=None if op.flex is None else [Flex.from_dict(op.flex)],
        elastic=None if op.elastic is None else [ElasticDemand.model_validate(op.elastic)],
        ceiling=None if op.ceiling is None else [np.asarray(op.ceiling, dtype=float)],
    )
