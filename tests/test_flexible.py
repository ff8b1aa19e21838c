"""Flexible block choice: the rule against brute force over subsets, and flexible claims
in the ledger and the engine (chosen at grant time, new blocks count, rejections)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_operations import apply, recorded

from dpsched.budget import Accounting
from dpsched.core import AllUnlocked, BlockSpec, ClaimState, Ledger, snapshot, waiting_reasons
from dpsched.core.flexible import Flex, choose
from dpsched.core.selectors import DatasetSelector
from dpsched.engine import Engine
from dpsched.errors import InputError, LedgerError


def brute_force(flex: Flex, recent: list[int], fits: list[bool], sizes: list[int]) -> list[int]:
    """The rule as stated: among valid subsets of the fitting blocks, the one whose
    blocks, most recent first, are lexicographically greatest (extension beats prefix)."""
    candidates = [
        (k, j, s) for k, (j, ok, s) in enumerate(zip(recent, fits, sizes, strict=True)) if ok
    ]
    best: list[int] | None = None
    best_key: list[int] = []
    for mask in range(1, 2 ** len(candidates)):
        chosen = [c for i, c in enumerate(candidates) if mask >> i & 1]
        count, data = len(chosen), sum(s for _, _, s in chosen)
        if count < flex.min_blocks or data < flex.min_data:
            continue
        if flex.max_blocks is not None and count > flex.max_blocks:
            continue
        if flex.expected_data is not None:
            rest = chosen[:-1]
            rest_data = sum(s for _, _, s in rest)
            enough = rest_data >= flex.expected_data and rest_data >= flex.min_data
            if enough and len(rest) >= flex.min_blocks:
                continue  # redundant: its oldest block adds nothing needed
        key = [-k for k, _, _ in chosen]
        if best is None or key > best_key:
            best, best_key = [j for _, j, _ in chosen], key
    return best or []


@settings(max_examples=3000, deadline=None)
@given(
    st.integers(0, 7).flatmap(
        lambda n: st.tuples(
            st.lists(st.booleans(), min_size=n, max_size=n),
            st.lists(st.integers(0, 6), min_size=n, max_size=n),
        )
    ),
    st.integers(1, 3),
    st.one_of(st.none(), st.integers(0, 4)),
    st.integers(0, 8),
    st.one_of(st.none(), st.integers(0, 10)),
)
def test_the_greedy_choice_equals_brute_force_over_subsets(
    blocks: tuple[list[bool], list[int]],
    min_blocks: int,
    extra: int | None,
    min_data: int,
    more_data: int | None,
) -> None:
    fits, sizes = blocks
    flex = Flex(
        selector=DatasetSelector(dataset="default"),
        row=np.zeros(1),
        min_blocks=min_blocks,
        max_blocks=None if extra is None else min_blocks + extra,
        min_data=min_data,
        expected_data=None if more_data is None else max(1, min_data + more_data),
    )
    recent = list(range(len(fits)))[::-1]
    assert choose(flex, recent, fits, sizes) == brute_force(flex, recent, fits, sizes)


def ledger_with(capacities: list[float], sizes: list[int] | None = None) -> Ledger:
    ledger = Ledger(Accounting("basic"))
    for j, capacity in enumerate(capacities):
        size = None if sizes is None else sizes[j]
        ledger.add_block(BlockSpec(id=f"b{j}", epsilon=capacity, arrival=j, size=size))
        ledger.unlock(np.ones(1), np.asarray([j]))
    return ledger


def claim(**extra: Any) -> dict[str, Any]:
    return {"id": "c", "blocks": {"dataset": "default"}, "demand": {"epsilon": 0.5}, **extra}


def test_the_most_recent_blocks_with_room_are_chosen_at_grant_time() -> None:
    ledger = ledger_with([1.0, 1.0, 1.0, 0.2])  # b3, the most recent, cannot hold 0.5
    engine = Engine(ledger, AllUnlocked(), "fcfs")
    made = engine.submit(claim(max_blocks=2), 0.0)
    assert made.block_ids == ("b1", "b2") and made.flex is not None
    fixed = engine.submit({**claim(), "id": "fixed"}, 0.0)  # no count: every matching block
    assert fixed.block_ids == ("b0", "b1", "b2", "b3")
    assert engine.round(1.0).granted == ["c"]
    assert ledger.claim("c").state is ClaimState.ALLOCATED
    assert fixed.state is ClaimState.REJECTED  # b3 can never hold it: all or nothing


def test_blocks_that_arrive_later_count_for_pending_claims() -> None:
    ledger = ledger_with([0.1])
    engine = Engine(ledger, AllUnlocked(), "dpf")
    waiting = engine.submit(claim(min_blocks=2, max_blocks=3), 0.0)
    assert waiting.state is ClaimState.PENDING and engine.round(0.0).granted == []
    engine.add_block(BlockSpec(id="b1", epsilon=1.0, arrival=1), 1.0)
    assert engine.round(1.0).granted == []  # one block with room: needs two
    engine.add_block(BlockSpec(id="b2", epsilon=1.0, arrival=2), 2.0)
    assert engine.round(2.0).granted == ["c"]
    assert ledger.claim("c").block_ids == ("b1", "b2")


def test_data_amounts_choose_blocks_by_size() -> None:
    ledger = ledger_with([1.0] * 4, sizes=[500, 100, 300, 200])
    engine = Engine(ledger, AllUnlocked(), "fcfs")
    engine.submit(claim(min_data=250, expected_data=450), 0.0)
    engine.round(0.0)
    granted = ledger.claim("c")
    assert granted.block_ids == ("b2", "b3")  # 200 + 300 = 500 >= 450, most recent first
    assert ledger.data_of(granted) == 500


def test_impossible_claims_over_fixed_blocks_are_rejected_and_selectors_wait() -> None:
    ledger = ledger_with([1.0, 0.1, 0.1])
    fixed = ledger.submit(
        {"id": "ids", "blocks": ["b0", "b1", "b2"], "min_blocks": 2, "demand": {"epsilon": 0.5}},
        0.0,
    )
    assert fixed.state is ClaimState.REJECTED
    assert (
        fixed.reason == "its demand fits the whole capacity of 1 of its 3 blocks, needs at least 2"
    )
    waiting = ledger.submit(claim(min_blocks=2), 0.0)
    assert waiting.state is ClaimState.PENDING


def test_flexible_claims_round_trip_and_replay() -> None:
    ledger = Ledger(Accounting("basic"))
    log = recorded(ledger)
    engine = Engine(ledger, AllUnlocked(), "fcfs")
    for j, capacity in enumerate([1.0, 1.0, 0.2]):
        engine.add_block(BlockSpec(id=f"b{j}", epsilon=capacity, arrival=j), 0.0)
    engine.submit(claim(max_blocks=1, timeout=5), 0.0)
    engine.submit({**claim(max_blocks=1), "id": "d", "demand": {"epsilon": 0.9}}, 0.0)
    engine.round(0.0)
    engine.add_block(BlockSpec(id="b3", epsilon=1.0, arrival=3), 1.0)
    engine.round(1.0)
    assert "materialise" in [op for op, _ in log]
    copy = Ledger(Accounting("basic"))
    for op, args in log:
        apply(copy, op, args)
    assert snapshot.to_dict(copy) == snapshot.to_dict(ledger)
    assert snapshot.to_dict(snapshot.from_arrays(snapshot.to_arrays(ledger))) == snapshot.to_dict(
        ledger
    )
    assert snapshot.to_dict(snapshot.from_dict(snapshot.to_dict(ledger))) == snapshot.to_dict(
        ledger
    )


@pytest.mark.parametrize("field", ["min_data", "expected_data"])
def test_data_amounts_need_a_selector(field: str) -> None:
    ledger = ledger_with([1.0])
    with pytest.raises(Exception, match="need 'blocks'"):
        ledger.submit({"id": "x", "demand_by_block": {"b0": {"epsilon": 0.1}}, field: 1}, 0.0)


def test_a_claim_without_a_valid_choice_waits_aside_and_is_never_granted() -> None:
    ledger = ledger_with([1.0])
    engine = Engine(ledger, AllUnlocked(), "fcfs")
    engine.submit(claim(min_blocks=2, timeout=10), 0.0)
    assert engine.round(0.0).granted == []  # its one matching block is not enough
    assert ledger.waits_aside("c")
    reason = "waits for at least 2 matching blocks with room for it (its current best: b0)"
    assert waiting_reasons(ledger) == {"c": reason}
    with pytest.raises(LedgerError, match="waits for at least 2"):
        ledger.allocate("c", request_id="try", time=1.0)
    engine.add_block(BlockSpec(id="b1", epsilon=1.0, arrival=1), 1.0)
    assert engine.round(1.0).granted == ["c"] and not ledger.waits_aside("c")
    copy = snapshot.from_arrays(snapshot.to_arrays(ledger))
    assert snapshot.to_dict(copy) == snapshot.to_dict(ledger)
    engine.submit({**claim(min_blocks=3, timeout=2), "id": "late"}, 1.0)
    assert engine.round(5.0).expired == ["late"]  # aside claims time out like any other


def test_a_claim_that_waited_aside_keeps_its_place_in_submission_order() -> None:
    ledger = ledger_with([1.0])
    engine = Engine(ledger, AllUnlocked(), "fcfs")
    engine.submit(claim(min_blocks=2), 0.0)  # aside until a second block arrives
    assert ledger.waits_aside("c")
    engine.submit({"id": "later", "blocks": ["b0"], "demand": {"epsilon": 0.6}}, 0.0)
    engine.add_block(BlockSpec(id="b1", epsilon=1.0, arrival=1), 1.0)
    # c re-joins the pending claims after `later`, but was submitted first: it goes
    # first, and then `later` no longer fits on b0 (0.5 left of 1.0).
    assert engine.round(1.0).granted == ["c"]


def test_a_flexible_claim_naming_an_unknown_block_is_refused() -> None:
    ledger = ledger_with([1.0])
    with pytest.raises(InputError, match="unknown block 'zz'") as refused:
        ledger.submit(
            {"id": "x", "blocks": ["b0", "zz"], "min_blocks": 1, "demand": {"epsilon": 0.1}}, 0.0
        )
    assert refused.value.field == "tasks.x.blocks"
