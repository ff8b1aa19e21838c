from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from dpsched.budget import Accounting
from dpsched.core import (
    AllUnlocked,
    BlockSpec,
    ClaimState,
    Ledger,
    Lifetime,
    PerArrival,
    PerStep,
    snapshot,
)
from dpsched.errors import InputError, LedgerError


def basic_ledger(n_blocks: int = 2, epsilon: float = 1.0, unlocked: bool = True) -> Ledger:
    ledger = Ledger(Accounting("basic"))
    for j in range(n_blocks):
        index = ledger.add_block(
            BlockSpec(
                id=f"b{j}",
                epsilon=epsilon,
                arrival=float(j),
                dataset="web",
                dimensions={"time": j, "region": "eu"},
            )
        )
        if unlocked:
            AllUnlocked().on_block_added(ledger, index, 0.0)
    return ledger


def submit(ledger: Ledger, cid: str, eps: float, blocks: list[str], **extra: object) -> None:
    ledger.submit({"id": cid, "blocks": blocks, "demand": {"epsilon": eps}, **extra}, time=0.0)


def state_json(ledger: Ledger) -> str:
    return json.dumps(snapshot.to_dict(ledger), sort_keys=True)


def test_allocate_is_all_or_nothing_and_keeps_the_identity() -> None:
    ledger = basic_ledger()
    submit(ledger, "a", 0.7, ["b0"])
    submit(ledger, "b", 0.5, ["b0", "b1"])
    ledger.allocate("a", request_id="r1", time=1.0)
    before = state_json(ledger)
    with pytest.raises(LedgerError, match=r"claim b.*b0"):
        ledger.allocate("b", request_id="r2", time=1.0)
    assert state_json(ledger) == before
    assert ledger.budget.unlocked[:, 0].tolist() == pytest.approx([0.3, 1.0])
    assert ledger.invariant_violations() == []


def test_operations_are_idempotent_per_request_id() -> None:
    ledger = basic_ledger()
    submit(ledger, "a", 0.4, ["b0"])
    ledger.allocate("a", request_id="r1", time=1.0)
    after_first = state_json(ledger)
    ledger.allocate("a", request_id="r1", time=2.0)
    assert state_json(ledger) == after_first
    ledger.consume("a", request_id="c1", time=3.0, fraction=0.5)
    ledger.consume("a", request_id="c1", time=3.0, fraction=0.5)
    assert ledger.budget.consumed[0, 0] == pytest.approx(0.2)
    with pytest.raises(LedgerError, match="already used for consume"):
        ledger.release("a", request_id="c1", time=4.0)


def test_consume_part_then_rest_then_nothing_more() -> None:
    ledger = basic_ledger()
    submit(ledger, "a", 0.4, ["b0", "b1"])
    ledger.allocate("a", request_id="r", time=0.0)
    ledger.consume("a", request_id="c1", time=1.0, fraction=0.25)
    assert ledger.claim("a").state is ClaimState.ALLOCATED
    with pytest.raises(LedgerError, match="more than the remaining allocation"):
        ledger.consume("a", request_id="c2", time=1.0, fraction=0.9)
    ledger.consume("a", request_id="c3", time=2.0, fraction=0.75)
    claim = ledger.claim("a")
    assert claim.state is ClaimState.CONSUMED
    assert ledger.budget.consumed[:, 0].tolist() == pytest.approx([0.4, 0.4])
    assert ledger.budget.allocated[:, 0].tolist() == pytest.approx([0.0, 0.0])
    with pytest.raises(LedgerError, match="claim is consumed"):
        ledger.consume("a", request_id="c4", time=3.0)
    submit(ledger, "b", 0.1, ["b0"])
    ledger.allocate("b", request_id="rb", time=0.0)
    with pytest.raises(InputError, match="fraction"):
        ledger.consume("b", request_id="cb", time=0.0, fraction=1.5)


def test_release_returns_only_the_unconsumed_part() -> None:
    ledger = basic_ledger()
    submit(ledger, "a", 0.6, ["b0"])
    ledger.allocate("a", request_id="r", time=0.0)
    ledger.consume("a", request_id="c", time=0.0, fraction=0.5)
    ledger.release("a", request_id="x", time=1.0)
    assert ledger.claim("a").state is ClaimState.RELEASED
    assert ledger.budget.unlocked[0, 0] == pytest.approx(0.7)
    assert ledger.budget.consumed[0, 0] == pytest.approx(0.3)
    assert ledger.invariant_violations() == []


def test_expire_and_timeouts() -> None:
    ledger = basic_ledger()
    ledger.submit(
        {"id": "a", "blocks": ["b0"], "demand": {"epsilon": 2.0}, "timeout": 5, "arrival": 1.0},
        time=1.0,
    )
    assert ledger.claim("a").state is ClaimState.REJECTED
    ledger.submit(
        {"id": "b", "blocks": ["b0"], "demand": {"epsilon": 0.5}, "timeout": 5, "arrival": 1.0},
        time=1.0,
    )
    assert ledger.expire_due(5.9) == []
    assert ledger.expire_due(6.0) == ["b"]
    assert ledger.claim("b").state is ClaimState.EXPIRED
    with pytest.raises(LedgerError, match="cannot allocate"):
        ledger.allocate("b", request_id="r", time=7.0)


def test_rejection_reasons() -> None:
    ledger = basic_ledger(3)
    claim = ledger.submit(
        {"id": "few", "blocks": {"most_recent": 2}, "min_blocks": 3, "demand": {"epsilon": 0.1}},
        time=0.0,
    )
    assert claim.state is ClaimState.REJECTED
    assert "at least 3" in (claim.reason or "")
    assert ledger.pending() == []


def test_selectors() -> None:
    ledger = basic_ledger(5)
    ledger.add_block(BlockSpec(id="other", epsilon=1.0, dataset="mail", dimensions={"time": 9}))
    recent = ledger.submit(
        {"id": "r", "blocks": {"most_recent": 2, "dataset": "web"}, "demand": {"epsilon": 0.1}},
        time=0.0,
    )
    assert recent.block_ids == ("b3", "b4")
    ranged = ledger.submit(
        {
            "id": "d",
            "blocks": {"dataset": "web", "where": ["time >= 1", "time < 4", "region == 'eu'"]},
            "demand": {"epsilon": 0.1},
        },
        time=0.0,
    )
    assert ranged.block_ids == ("b1", "b2", "b3")
    capped = ledger.submit(
        {"id": "m", "blocks": {"dataset": "web"}, "max_blocks": 2, "demand": {"epsilon": 0.1}},
        time=0.0,
    )
    assert capped.block_ids == ("b3", "b4")
    with pytest.raises(InputError, match="unknown block 'nope'"):
        ledger.submit({"id": "x", "blocks": ["nope"], "demand": {"epsilon": 0.1}}, time=0.0)


def test_demand_by_block_must_match_the_selection() -> None:
    ledger = basic_ledger(2)
    claim = ledger.submit(
        {"id": "a", "demand_by_block": {"b0": {"epsilon": 0.1}, "b1": {"epsilon": 0.3}}}, time=0.0
    )
    assert claim.demand[:, 0].tolist() == [0.1, 0.3]
    with pytest.raises(InputError, match="no demand for blocks"):
        ledger.submit(
            {"id": "b", "blocks": ["b0", "b1"], "demand_by_block": {"b0": {"epsilon": 0.1}}},
            time=0.0,
        )
    with pytest.raises(InputError, match="duplicate task id"):
        ledger.submit({"id": "a", "blocks": ["b0"], "demand": {"epsilon": 0.1}}, time=0.0)


def test_rdp_admission_needs_one_order_and_deducts_the_whole_vector() -> None:
    ledger = Ledger(Accounting("rdp", (2.0, 4.0)))
    ledger.add_block(BlockSpec(id="b", capacity=(1.0, 1.0)))
    ledger.unlock(np.array([1.0]))
    ledger.submit({"id": "a", "blocks": ["b"], "demand": {"rdp": [0.9, 1.5]}}, time=0.0)
    ledger.submit({"id": "c", "blocks": ["b"], "demand": {"rdp": [0.5, float("inf")]}}, time=0.0)
    ledger.allocate("a", request_id="1", time=0.0)
    assert ledger.budget.unlocked[0].tolist() == pytest.approx([0.1, -0.5])
    assert not ledger.can_run("c")
    assert ledger.invariant_violations() == []


def test_infinite_demand_is_never_admitted_at_that_order() -> None:
    ledger = Ledger(Accounting("rdp", (2.0, 4.0)))
    ledger.add_block(BlockSpec(id="b", capacity=(1.0, 1.0)))
    ledger.unlock(np.array([1.0]))
    ledger.submit({"id": "a", "blocks": ["b"], "demand": {"rdp": [float("inf"), 0.2]}}, time=0.0)
    ledger.allocate("a", request_id="1", time=0.0)
    assert np.isfinite(ledger.budget.unlocked).all()
    assert ledger.budget.unlocked[0, 0] < 0  # order 2 is exhausted for good
    ledger.submit({"id": "z", "blocks": ["b"], "demand": {"rdp": [0.0, 0.7]}}, time=0.0)
    assert ledger.can_run("z")


def test_state_round_trips_through_json() -> None:
    ledger = basic_ledger(3)
    submit(ledger, "a", 0.3, ["b0", "b1"])
    submit(ledger, "b", 0.2, ["b2"], timeout=3)
    ledger.allocate("a", request_id="r", time=1.0)
    ledger.consume("a", request_id="c", time=2.0, fraction=0.5)
    restored = snapshot.from_dict(json.loads(json.dumps(snapshot.to_dict(ledger))))
    assert snapshot.to_dict(restored) == snapshot.to_dict(ledger)
    # The restored ledger behaves the same, including idempotency memory.
    twin = copy.deepcopy(ledger)
    for each in (twin, restored):
        each.consume("a", request_id="c", time=2.0, fraction=0.5)
        each.allocate("b", request_id="r2", time=3.0)
    assert snapshot.to_dict(restored) == snapshot.to_dict(twin)


def test_per_arrival_unlocking_is_dpf_n() -> None:
    ledger = basic_ledger(2, epsilon=4.0, unlocked=False)
    unlock = PerArrival(4)
    claim = ledger.submit({"id": "a", "blocks": ["b0"], "demand": {"epsilon": 1.0}}, time=0.0)
    unlock.on_claim_submitted(ledger, claim, 0.0)
    assert ledger.budget.unlocked[:, 0].tolist() == [1.0, 0.0]
    for i in range(10):
        c = ledger.submit({"id": f"x{i}", "blocks": ["b0"], "demand": {"epsilon": 0.1}}, time=0.0)
        unlock.on_claim_submitted(ledger, c, 0.0)
    assert ledger.budget.unlocked[0, 0] == pytest.approx(4.0)
    assert ledger.budget.locked[0, 0] == pytest.approx(0.0)


def test_per_step_unlocking_follows_dpack_formula() -> None:
    ledger = basic_ledger(2, epsilon=10.0, unlocked=False)  # arrivals 0 and 1
    unlock = PerStep(n=4, period=2.0)
    unlock.on_tick(ledger, 0.0)
    assert ledger.budget.unlocked[:, 0].tolist() == [0.0, 0.0]
    unlock.on_tick(ledger, 2.0)  # ceil(2/2)=1, ceil(1/2)=1
    assert ledger.budget.unlocked[:, 0].tolist() == pytest.approx([2.5, 2.5])
    unlock.on_tick(ledger, 4.0)  # ceil(4/2)=2, ceil(3/2)=2
    assert ledger.budget.unlocked[:, 0].tolist() == pytest.approx([5.0, 5.0])
    unlock.on_tick(ledger, 100.0)
    assert ledger.budget.unlocked[:, 0].tolist() == pytest.approx([10.0, 10.0])


def test_lifetime_unlocking_is_linear_and_never_relocks() -> None:
    ledger = basic_ledger(1, epsilon=10.0, unlocked=False)
    unlock = Lifetime(lifetime=5.0)
    unlock.on_tick(ledger, 2.0)
    assert ledger.budget.unlocked[0, 0] == pytest.approx(4.0)
    unlock.on_tick(ledger, 1.0)
    assert ledger.budget.unlocked[0, 0] == pytest.approx(4.0)
    with pytest.raises(InputError, match=r"unlocking\.lifetime"):
        Lifetime(lifetime=0.0)


def test_consuming_an_explicit_amount_per_block() -> None:
    ledger = basic_ledger(2)
    ledger.submit({"id": "a", "blocks": ["b0", "b1"], "demand": {"epsilon": 0.4}}, time=0.0)
    ledger.allocate("a", request_id="grant", time=0.0)
    before = snapshot.to_dict(ledger)
    with pytest.raises(LedgerError, match=r"more than is left of the grant on blocks \['b1'\]"):
        ledger.consume_amount("a", np.array([[0.1], [0.5]]), request_id="too-much", time=1.0)
    with pytest.raises(InputError, match="amount: must be finite and non-negative"):
        ledger.consume_amount("a", np.array([[-0.1], [0.0]]), request_id="negative", time=1.0)
    with pytest.raises(InputError, match=r"amount: must have shape \(2, 1\)"):
        ledger.consume_amount("a", np.array([0.1]), request_id="shape", time=1.0)
    assert snapshot.to_dict(ledger) == before
    claim = ledger.consume_amount("a", np.array([[0.1], [0.0]]), request_id="use", time=1.0)
    assert claim.state.value == "allocated"
    assert claim.consumed[:, 0].tolist() == [0.1, 0.0]
    assert claim.allocated[:, 0].tolist() == [pytest.approx(0.3), 0.4]
    ledger.consume_amount("a", np.array([[0.1], [0.0]]), request_id="use", time=2.0)  # retry
    assert claim.consumed[:, 0].tolist() == [0.1, 0.0]
    claim = ledger.consume_amount("a", claim.allocated.copy(), request_id="rest", time=3.0)
    assert claim.state.value == "consumed" and claim.finished_at == 3.0
    assert ledger.invariant_violations() == []


def test_holders_count_the_claims_holding_each_block() -> None:
    ledger = basic_ledger(n_blocks=2)
    submit(ledger, "a", 0.2, ["b0", "b1"])
    submit(ledger, "b", 0.2, ["b1"])
    for cid in ("a", "b"):
        ledger.allocate(cid, request_id=f"al-{cid}", time=0.0)
    assert ledger.budget.holders.tolist() == [1, 2]
    ledger.consume("a", request_id="use", time=1.0)  # fully consumed: holds no more
    ledger.release("b", request_id="rel", time=1.0)
    assert ledger.budget.holders.tolist() == [0, 0]
    submit(ledger, "c", 0.2, ["b0"])
    ledger.allocate("c", request_id="al-c", time=2.0)
    for copy_ in (
        snapshot.from_dict(snapshot.to_dict(ledger)),
        snapshot.from_arrays(snapshot.to_arrays(ledger)),
    ):
        assert copy_.budget.holders.tolist() == [1, 0]
