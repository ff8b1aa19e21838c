"""Claims join and leave the pending set in one place (`core.pending.PendingSet`), so its
parts never disagree: every pending claim is either in the index policies read or
waiting aside, pending flexible claims are listed apart, and a claim that leaves leaves
all of them, whichever transition took it out."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from tests.test_operations import UNLOCKINGS, drive, histories

from dpsched.budget import Accounting
from dpsched.core import AllUnlocked, BlockSpec, ClaimState, Ledger
from dpsched.engine import Engine


def assert_consistent(ledger: Ledger) -> None:
    pending = ledger.pending_set
    states = {c.id: c.state for c in ledger.claims}
    ids = pending.ids
    assert all(states[c] is ClaimState.PENDING for c in ids)
    assert {c for c, s in states.items() if s is ClaimState.PENDING} == set(ids)
    assert set(pending.aside) <= set(ids)
    assert set(pending.flexible) == {c for c in ids if ledger.claim(c).flex is not None}
    view = ledger.pending_set.index.view()
    indexed = {str(i) for i in view.arrays.ids[view.alive]}
    assert indexed == set(ids) - set(pending.aside)
    assert ledger.pending_count == len(ids)


@settings(max_examples=120, deadline=None)
@given(histories())
def test_the_pending_parts_agree_after_every_operation(
    history: tuple[Accounting, str, str, list[tuple[Any, ...]]],
) -> None:
    accounting, unlocking, policy, actions = history
    engine = Engine(Ledger(accounting), UNLOCKINGS[unlocking](), policy)
    for action in actions:
        drive(engine, [action])
        assert_consistent(engine.ledger)


def aside_and_fixed() -> Ledger:
    """A flexible claim waiting aside for records (its blocks have room) and a fixed one."""
    engine = Engine(Ledger(Accounting("basic")), AllUnlocked(), "fcfs")
    for j in range(2):
        engine.add_block(BlockSpec(id=f"b{j}", epsilon=1.0, size=10), 0.0)
    flexible = {"most_recent": 2}
    engine.submit(
        {"id": "wide", "blocks": flexible, "demand": {"epsilon": 0.1}, "min_data": 100}, 0.0
    )
    engine.submit({"id": "plain", "blocks": ["b0"], "demand": {"epsilon": 0.1}}, 0.0)
    return engine.ledger


def test_a_claim_waiting_aside_is_never_granted_by_a_batch_of_grants() -> None:
    # Before the pending set, allocate_many fell back to can_run, which did not know the
    # claim waited aside, and the allocation it then tried raised mid-way.
    ledger = aside_and_fixed()
    assert ledger.waits_aside("wide") and not ledger.can_run("wide")
    assert ledger.allocate_many(["wide", "plain"], time=1.0) == ["plain"]
    assert ledger.claim("wide").state is ClaimState.PENDING
    assert ledger.pending_set.aside == ["wide"]
    assert_consistent(ledger)


def test_leaving_clears_every_part() -> None:
    ledger = aside_and_fixed()
    ledger.expire("wide", request_id="give-up", time=1.0)
    assert ledger.pending_set.aside == [] and ledger.pending_set.flexible == []
    assert_consistent(ledger)
