"""The ledger's operations as data: what `Ledger.listener` reports, replayed exactly.

A journal stores each change of state as (operation, JSON-able arguments), as the
ledger reported it after the change, including the outcome of every decision: the
blocks a submission resolved to and its demand, the fractions an unlocking reached,
each reservation and allocation a policy made. Replaying them in order on a ledger
in the same prior state reproduces its state exactly, without selectors, mechanism
curves, unlocking strategies or policies (so a time-limited `optimal` replays the
same grants it made).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dpsched.budget.demand import ElasticDemand
from dpsched.core.blocks import BlockSpec
from dpsched.core.claims import ClaimBatch
from dpsched.core.flexible import Flex
from dpsched.core.ledger import Ledger
from dpsched.errors import InputError

OPERATIONS = (
    "add_block",
    "unlock",
    "submit",
    "reserve",
    "allocate",
    "consume",
    "release",
    "expire",
    "forget",
    "materialise",
    "expand",
)


def apply(ledger: Ledger, op: str, args: dict[str, Any]) -> None:
    """Replay one reported operation on `ledger` (which reports it again, if listened to)."""
    if op == "add_block":
        ledger.add_block(BlockSpec.model_validate(args["spec"]))
    elif op == "unlock":
        ledger.unlock(np.asarray(args["fraction"], dtype=float), np.asarray(args["index"]))
    elif op == "submit":
        batch = _one_claim(ledger, args)
        ledger.submit_batch(batch, time=float(args["time"]))
    elif op == "reserve":
        amount = np.asarray(args["amount"], dtype=float)
        ledger.reserve(args["claim"], amount, request_id=args["request_id"], time=args["time"])
    elif op == "allocate":
        ledger.allocate(args["claim"], request_id=args["request_id"], time=args["time"])
    elif op == "consume" and "amount" in args:
        amount = np.asarray(args["amount"], dtype=float)
        ledger.consume_amount(
            args["claim"], amount, request_id=args["request_id"], time=args["time"]
        )
    elif op == "consume":
        ledger.consume(
            args["claim"],
            request_id=args["request_id"],
            time=args["time"],
            fraction=args["fraction"],
        )
    elif op == "release":
        ledger.release(args["claim"], request_id=args["request_id"], time=args["time"])
    elif op == "expire":
        ledger.expire(args["claim"], request_id=args["request_id"], time=args["time"])
    elif op == "forget":
        ledger.forget(args["claims"])
    elif op == "expand":
        ledger.set_grant(args["claim"], np.asarray(args["demand"], dtype=float), args["grant"])
    elif op == "materialise":
        ledger.set_blocks(args["claim"], args["block_ids"], args["time"], valid=args["valid"])
    else:
        raise InputError("op", f"unknown operation {op!r}; one of {', '.join(OPERATIONS)}")


def _one_claim(ledger: Ledger, args: dict[str, Any]) -> ClaimBatch:
    """A reported submission as a one-claim batch (with what makes it flexible or
    elastic, when it is)."""
    claim = args["claim"]
    flex, elastic, ceiling = args.get("flex"), args.get("elastic"), args.get("ceiling")
    block_ids = tuple(claim["block_ids"])
    dims = ledger.accounting.dims
    timeout = claim["timeout"]
    return ClaimBatch(
        ids=[claim["id"]],
        weight=np.asarray([claim["weight"]], dtype=float),
        arrival=np.asarray([claim["arrival"]], dtype=float),
        timeout=np.asarray([np.nan if timeout is None else timeout], dtype=float),
        min_blocks=[int(claim["min_blocks"])],
        block_ids=[block_ids],
        indptr=np.asarray([0, len(block_ids)], dtype=np.int64),
        block_index=np.asarray([ledger.block_index(b) for b in block_ids], dtype=np.int64),
        demand=np.asarray(claim["demand"], dtype=float).reshape(len(block_ids), dims),
        flex=None if flex is None else [Flex.from_dict(flex)],
        elastic=None if elastic is None else [ElasticDemand.model_validate(elastic)],
        ceiling=None if ceiling is None else [np.asarray(ceiling, dtype=float)],
    )
