"""Journaled operations replay exactly: the ledger's reports, applied in order to a fresh
ledger, give the same state, whatever the unlocking strategy and the policy."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsched.budget import Accounting
from dpsched.core import AllUnlocked, BlockSpec, Ledger, Lifetime, PerArrival, PerStep, snapshot
from dpsched.core.records import LedgerOperation, Operation, decode, encode
from dpsched.core.replay import replay
from dpsched.engine import Engine
from dpsched.errors import DpschedError, InputError

ALPHAS = (2.0, 4.0, 8.0)
UNLOCKINGS = {
    "all": AllUnlocked,
    "per_arrival": lambda: PerArrival(3),
    "per_step": lambda: PerStep(4, period=1.0),
    "lifetime": lambda: Lifetime(5.0),
}


def recorded(ledger: Ledger) -> list[tuple[str, dict[str, Any]]]:
    """Reports as a journal stores them: encoded, through JSON."""
    log: list[tuple[str, dict[str, Any]]] = []

    def hear(operation: LedgerOperation) -> None:
        op, args = encode(operation)
        log.append((op, json.loads(json.dumps(args))))

    ledger.listener = hear
    return log


def apply(ledger: Ledger, op: str, args: dict[str, Any]) -> None:
    """Replay one stored row: decoded, then applied."""
    operation = decode(op, args)
    assert isinstance(operation, LedgerOperation)
    replay(ledger, operation)


def replayed(accounting: Accounting, log: list[tuple[str, dict[str, Any]]]) -> Ledger:
    ledger = Ledger(accounting)
    for op, args in log:
        apply(ledger, op, args)
    return ledger


@st.composite
def histories(draw: st.DrawFn) -> tuple[Accounting, str, str, list[tuple[Any, ...]]]:
    mode = draw(st.sampled_from(["basic", "rdp"]))
    accounting = Accounting(mode, ALPHAS) if mode == "rdp" else Accounting("basic")
    unlocking = draw(st.sampled_from(sorted(UNLOCKINGS)))
    policy = draw(st.sampled_from(["fcfs", "dpf", "area", "dpack", "optimal", "rr"]))
    dims = accounting.dims
    value = st.floats(0.0, 0.9, allow_nan=False)
    actions: list[tuple[Any, ...]] = [("block", 0)]
    for step in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["block", "claim", "claim", "claim", "round", "act", "forget"]))
        if kind == "block":
            actions.append(("block", step + 1))
        elif kind == "claim":
            demand = draw(st.lists(value, min_size=dims, max_size=dims))
            blocks = draw(st.sampled_from(["recent1", "recent2", "first"]))
            timeout = draw(st.sampled_from([None, 1.0, 3.0]))
            flexible = draw(st.sampled_from([{}, {}, {"max_blocks": 1}, {"min_blocks": 2}]))
            if blocks == "first" or draw(st.booleans()):
                flexible = {**flexible, "min_data": 2} if flexible else flexible
            actions.append(("claim", step, demand, blocks, timeout, flexible))
        elif kind == "round":
            actions.append(("round",))
        elif kind == "forget":
            actions.append(("forget", draw(st.sampled_from([0.0, 1.0, 3.0]))))
        else:
            op = draw(st.sampled_from(["consume", "release", "expire"]))
            actions.append(("act", op, draw(st.integers(0, 30)), draw(value)))
    return accounting, unlocking, policy, actions


def drive(engine: Engine, actions: list[tuple[Any, ...]]) -> None:
    now = 0.0
    for action in actions:
        now += 0.5
        if action[0] == "block":
            spec = (
                BlockSpec(id=f"b{action[1]}", epsilon=1.0, size=action[1] % 3)
                if engine.ledger.accounting.mode == "basic"
                else BlockSpec(id=f"b{action[1]}", capacity=(0.5, 1.0, 1.2), size=1)
            )
            engine.add_block(spec, now)
        elif action[0] == "claim":
            _, step, demand, blocks, timeout, flexible = action
            selector: Any = (
                {"most_recent": 1 if blocks == "recent1" else 2}
                if blocks != "first"
                else [engine.ledger.blocks[0].id]
            )
            key = "epsilon" if engine.ledger.accounting.mode == "basic" else "rdp"
            body = {
                "id": f"c{step}",
                "blocks": selector,
                "arrival": now,
                "timeout": timeout,
                "demand": {key: demand[0] if key == "epsilon" else demand},
                **flexible,
            }
            engine.submit(body, now)
        elif action[0] == "round":
            engine.round(now)
        elif action[0] == "forget":
            engine.forget_finished(now - action[1])
        else:
            _, op, pick, fraction = action
            claims = list(engine.ledger.claims)
            if not claims:
                continue
            claim = claims[pick % len(claims)]
            try:
                if op == "consume" and fraction > 0.5:
                    engine.ledger.consume_amount(
                        claim.id, claim.allocated * 0.5, request_id=f"r{now}", time=now
                    )
                elif op == "consume":
                    engine.consume(
                        claim.id, request_id=f"r{now}", time=now, fraction=max(fraction, 0.1)
                    )
                elif op == "release":
                    engine.release(claim.id, request_id=f"r{now}", time=now)
                else:
                    engine.expire(claim.id, request_id=f"r{now}", time=now)
            except DpschedError:
                pass  # refused (wrong state): nothing changed, nothing reported


@settings(max_examples=150, deadline=None)
@given(histories())
def test_replaying_the_reports_rebuilds_the_state_exactly(
    history: tuple[Accounting, str, str, list[tuple[Any, ...]]],
) -> None:
    accounting, unlocking, policy, actions = history
    ledger = Ledger(accounting)
    log = recorded(ledger)
    drive(Engine(ledger, UNLOCKINGS[unlocking](), policy), actions)
    ledger_ops = {op for op, kind in Operation.kinds.items() if issubclass(kind, LedgerOperation)}
    assert {op for op, _ in log} <= ledger_ops
    copy = replayed(accounting, log)
    assert snapshot.to_dict(copy) == snapshot.to_dict(ledger)
    assert copy.invariant_violations() == []
    fresh = Ledger(accounting)  # a replay, listened to, reports the same operations
    relog = recorded(fresh)
    for op, args in log:
        apply(fresh, op, args)
    assert relog == log


def test_refused_and_repeated_operations_report_nothing() -> None:
    ledger = Ledger(Accounting("basic"))
    log = recorded(ledger)
    engine = Engine(ledger, AllUnlocked(), "fcfs")
    engine.add_block(BlockSpec(id="b0", epsilon=1.0), 0.0)
    engine.submit({"id": "a", "blocks": ["b0"], "demand": {"epsilon": 0.5}}, 0.0)
    engine.round(0.0)
    count = len(log)
    engine.consume("a", request_id="once", time=1.0)
    engine.consume("a", request_id="once", time=2.0)  # a retry: applied once
    assert len(log) == count + 1
    with pytest.raises(DpschedError):
        engine.release("a", request_id="late", time=3.0)  # consumed: refused
    with pytest.raises(InputError):
        engine.submit({"id": "a", "blocks": ["b0"], "demand": {"epsilon": 0.1}}, 3.0)
    assert len(log) == count + 1
    assert [op for op, _ in log] == ["add_block", "unlock", "submit", "allocate", "consume"]


def test_forgetting_drops_finished_claims_and_their_request_ids_only() -> None:
    ledger = Ledger(Accounting("basic"))
    log = recorded(ledger)
    engine = Engine(ledger, AllUnlocked(), "fcfs")
    engine.add_block(BlockSpec(id="b0", epsilon=1.0), 0.0)
    for name in ("done", "held", "late"):
        engine.submit({"id": name, "blocks": ["b0"], "demand": {"epsilon": 0.2}}, 0.0)
    engine.round(0.0)
    engine.consume("done", request_id="use", time=1.0)
    engine.release("late", request_id="give-back", time=5.0)
    spent = ledger.budget.spent().copy()
    with pytest.raises(DpschedError, match="cannot forget: claim is allocated"):
        ledger.forget(["done", "held"])  # all or nothing
    assert ledger.has_claim("done")
    assert ledger.finished_before(4.0) == ["done"]
    forgotten = engine.forget_finished(4.0)
    assert [(f.claim.id, f.claim.state.value) for f in forgotten] == [("done", "consumed")]
    assert forgotten[0].request_ids == ("allocate:done", "use")
    assert not ledger.has_claim("done") and ledger.has_claim("late")
    assert ledger.request("use") is None and ledger.request("give-back") is not None
    assert (ledger.budget.spent() == spent).all()  # what was consumed stays consumed
    assert log[-1] == ("forget", {"claims": ["done"]})
    assert engine.forget_finished(4.0) == []  # nothing more is due
    assert snapshot.to_dict(replayed(Accounting("basic"), log)) == snapshot.to_dict(ledger)
    copy = snapshot.from_arrays(snapshot.to_arrays(ledger))
    assert copy.finished_before(10.0) == ["late"]
    assert [f.request_ids for f in copy.forget(["late"])] == [("allocate:late", "give-back")]


def test_unknown_operations_are_refused() -> None:
    with pytest.raises(InputError, match="unknown operation 'drop'"):
        decode("drop", {})


@settings(max_examples=60, deadline=None)
@given(histories())
def test_the_columnar_state_round_trips_exactly(
    history: tuple[Accounting, str, str, list[tuple[Any, ...]]],
) -> None:
    accounting, unlocking, policy, actions = history
    ledger = Ledger(accounting)
    drive(Engine(ledger, UNLOCKINGS[unlocking](), policy), actions)
    copy = snapshot.from_arrays(snapshot.to_arrays(ledger))
    assert snapshot.to_dict(copy) == snapshot.to_dict(ledger)
    assert [c.id for c in copy.pending()] == [c.id for c in ledger.pending()]
    # The copy keeps working: the same round gives the same grants.
    assert Engine(copy, AllUnlocked(), policy).round(99.0).granted == (
        Engine(ledger, AllUnlocked(), policy).round(99.0).granted
    )


def test_any_claim_id_survives_the_columnar_state() -> None:
    ledger = Ledger(Accounting("basic"))
    ledger.add_block(BlockSpec(id="b\u00e9 0", epsilon=1.0))
    for claim_id in ("a\x00b", "émoji 🎉", '"quoted", [json]', " "):
        ledger.submit({"id": claim_id, "blocks": ["b\u00e9 0"], "demand": {"epsilon": 0.1}}, 0)
    assert snapshot.to_dict(snapshot.from_arrays(snapshot.to_arrays(ledger))) == snapshot.to_dict(
        ledger
    )
