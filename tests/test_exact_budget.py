"""Exact budget safety: what a block's grants hold never exceeds its capacity at the
order that admitted it, in exact arithmetic, also when demands sum to the capacity
exactly (ten claims of 0.1 on 1.0) or would pass it by less than the policies' slack.

The oracle reads every amount as the spec says: a float that is the nearest float to a
decimal with at most 12 digits after the point stands for that decimal; any other float
for its exact binary value."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsched.budget import MAX_BUDGET, Accounting
from dpsched.core import AllUnlocked, BlockSpec, ClaimState, Ledger, snapshot
from dpsched.core.exact import NEVER, SATURATED, units_down, units_up
from dpsched.core.explain import waiting_reason, waiting_reasons
from dpsched.engine import Engine
from dpsched.errors import DpschedError
from dpsched.sim.workloads.microbenchmark import curve_buckets, exact_share

ALPHAS = (2.0, 4.0, 8.0)


def true_value(x: float) -> Fraction:
    decimal = f"{x:.12f}"
    return Fraction(decimal) if float(decimal) == x else Fraction(x)


def held_by_blocks(ledger: Ledger) -> list[list[Fraction]]:
    """Per block and order, the exact sum of what the claims hold: their demand while
    allocated or consumed, what they consumed once released."""
    dims = ledger.accounting.dims
    total = [[Fraction(0)] * dims for _ in ledger.blocks]
    for claim in ledger.claims:
        if claim.state in (ClaimState.ALLOCATED, ClaimState.CONSUMED):
            held = claim.demand
        elif claim.state is ClaimState.RELEASED:
            held = claim.consumed
        else:
            continue
        for row, j in enumerate(claim.block_index.tolist()):
            for a in range(dims):
                total[j][a] += true_value(float(held[row, a]))
    return total


def check_exact(ledger: Ledger) -> None:
    held = held_by_blocks(ledger)
    for j in range(len(ledger.blocks)):
        if any(h > 0 for h in held[j]):
            capacity = [true_value(float(c)) for c in ledger.budget.capacity[j]]
            usable = ledger.budget.usable[j].tolist()
            assert any(ok and h <= c for ok, h, c in zip(usable, held[j], capacity, strict=True)), (
                f"block {j} is over capacity at every order in exact arithmetic"
            )
    assert ledger.invariant_violations() == []


def granted_on_one_block(demands: list[float], capacity: float = 1.0) -> int:
    ledger = Ledger(Accounting("basic"))
    engine = Engine(ledger, AllUnlocked(), "fcfs")
    engine.add_block(BlockSpec(id="b", epsilon=capacity), 0.0)
    for i, value in enumerate(demands):
        engine.submit({"id": f"c{i}", "blocks": ["b"], "demand": {"epsilon": value}}, 0.0)
    granted = len(engine.round(0.0).granted)
    check_exact(ledger)
    return granted


def test_decimal_demands_fill_a_capacity_exactly_and_never_pass_it() -> None:
    # Ten binary 0.1s sum to 1.0000000000000000555 exactly, but each stands for 0.1.
    assert sum(Fraction(0.1) for _ in range(10)) > 1
    assert granted_on_one_block([0.1] * 11) == 10
    assert granted_on_one_block([0.01] * 1001, capacity=10.0) == 1000
    assert granted_on_one_block([0.5, 0.25, 0.125, 0.125, 1e-12]) == 4
    # 1/3 is no 12-digit decimal: it is charged 0.333333333334, so a third does not fit.
    assert granted_on_one_block([1 / 3] * 3) == 2
    assert granted_on_one_block([0.333333333333] * 4) == 3


def test_a_grant_that_would_pass_the_capacity_by_less_than_the_slack_waits() -> None:
    """The policies plan with a 1e-9 slack; the ledger's exact check has the last word."""
    ledger = Ledger(Accounting("basic"))
    engine = Engine(ledger, AllUnlocked(), "fcfs")
    engine.add_block(BlockSpec(id="b", epsilon=1.0), 0.0)
    engine.submit({"id": "big", "blocks": ["b"], "demand": {"epsilon": 0.7}}, 0.0)
    engine.submit({"id": "hair", "blocks": ["b"], "demand": {"epsilon": 0.3 + 5e-10}}, 0.0)
    assert engine.round(0.0).granted == ["big"]
    assert ledger.claim("hair").state is ClaimState.PENDING
    assert not ledger.can_run("hair")
    why = "would take b over its capacity by less than the policies' 1e-9 slack"
    assert why in waiting_reason(ledger, ledger.claim("hair"))
    assert why in waiting_reasons(ledger)["hair"]
    check_exact(ledger)


def test_units_bracket_the_exact_value_and_read_decimals_as_written() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.exponential(1.0, 3000),
            rng.uniform(900, 1100, 1000),  # both sides of the fast path's limit
            rng.uniform(0, MAX_BUDGET, 1000),
            np.round(rng.uniform(0, 50, 2000), 6),
            [0.0, 1e-300, 5e-13, 1e-12, MAX_BUDGET],
        ]
    )
    up, down = units_up(values), units_down(values)
    assert up.dtype == down.dtype == np.int64
    for x, hi, lo in zip(values.tolist(), up.tolist(), down.tolist(), strict=True):
        decimal = f"{x:.12f}"
        if float(decimal) == x:
            assert hi == lo == int(Fraction(decimal) * 10**12), x
        else:
            assert Fraction(lo, 10**12) <= Fraction(x) <= Fraction(hi, 10**12), x
            assert hi == lo + 1, x
    assert units_up(np.array([0.1, 2.5, 1e-6])).tolist() == [10**11, 25 * 10**11, 10**6]
    assert units_up(np.array([np.inf, 1e30])).tolist() == [NEVER, NEVER]
    assert units_down(np.array([np.inf, 1e30])).tolist() == [SATURATED, SATURATED]
    assert units_up(np.array([MAX_BUDGET])) * 2 < 2**63  # sums of two budgets fit


def test_exact_units_survive_both_state_formats() -> None:
    ledger = Ledger(Accounting("rdp", ALPHAS))
    engine = Engine(ledger, AllUnlocked(), "dpf")
    engine.add_block(BlockSpec(id="b", capacity=[1.0, 1.0, 1.0]), 0.0)
    for i in range(12):
        engine.submit({"id": f"c{i}", "blocks": ["b"], "demand": {"rdp": [0.1, 0.2, 0.1]}}, 0.0)
    engine.round(0.0)
    engine.consume("c0", request_id="u", time=1.0, fraction=1 / 3)
    engine.release("c0", request_id="r", time=1.0)
    for copy in (
        snapshot.from_dict(snapshot.to_dict(ledger)),
        snapshot.from_arrays(snapshot.to_arrays(ledger)),
    ):
        assert copy.budget.spent_units.tolist() == ledger.budget.spent_units.tolist()
        assert copy.budget.capacity_units.tolist() == ledger.budget.capacity_units.tolist()
        check_exact(copy)
    # A third of c0's 0.1 stays spent: 0.0333... is no 12-digit decimal, so rounded up.
    assert ledger.budget.spent_units[0, 0] == 9 * 10**11 + 33_333_333_334


decimals = st.sampled_from([0.1, 0.2, 0.3, 0.7, 1 / 3, 0.05, 0.15, 0.25, 0.01, 0.3 + 4e-10])
step = st.one_of(
    st.tuples(st.just("claim"), st.integers(0, 1), decimals, st.booleans()),
    st.tuples(st.just("round"), st.sampled_from(["fcfs", "dpf", "dpack"])),
    st.tuples(st.just("consume"), st.integers(0, 40), st.sampled_from([0.1, 0.3, 0.5, 1.0])),
    st.tuples(st.just("release"), st.integers(0, 40)),
)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["basic", "rdp"]),
    st.sampled_from([1.0, 0.3, 0.7, 10.0]),
    st.lists(step, max_size=60),
)
def test_sums_that_hit_the_capacity_never_exceed_it_exactly(
    mode: str, capacity: float, steps: list[tuple[Any, ...]]
) -> None:
    accounting = Accounting(mode, ALPHAS) if mode == "rdp" else Accounting("basic")
    ledger = Ledger(accounting)
    engine = Engine(ledger, AllUnlocked(), "fcfs")
    for j in range(2):
        engine.add_block(BlockSpec(id=f"b{j}", capacity=[capacity] * accounting.dims), 0.0)
    made = 0
    for n, action in enumerate(steps):
        now = float(n)
        try:
            if action[0] == "claim":
                _, block, value, both = action
                blocks = ["b0", "b1"] if both else [f"b{block}"]
                demand: dict[str, Any] = (
                    {"epsilon": value} if mode == "basic" else {"rdp": [value, value * 2, value]}
                )
                engine.submit({"id": f"c{made}", "blocks": blocks, "demand": demand}, now)
                made += 1
            elif action[0] == "round":
                Engine(ledger, AllUnlocked(), action[1]).round(now)
            elif made:
                claim_id = f"c{action[1] % made}"
                if action[0] == "consume":
                    engine.consume(claim_id, request_id=f"u{n}", time=now, fraction=action[2])
                else:
                    engine.release(claim_id, request_id=f"r{n}", time=now)
        except DpschedError:
            pass  # refused (wrong state): nothing changed
        check_exact(ledger)


def test_microbenchmark_tasks_fill_a_block_exactly() -> None:
    """DPack's eps_min: 1/eps_min tasks of one curve fill a (10, 1e-7) block exactly."""
    for eps_min, count in ((0.1, 10), (0.005, 200)):
        for _, curve in curve_buckets()[5.0][:3]:
            demand = exact_share(curve, eps_min).tolist()
            ledger = Ledger(Accounting("rdp"))
            engine = Engine(ledger, AllUnlocked(), "fcfs")
            engine.add_block(BlockSpec(id="b", epsilon=10.0, delta=1e-7), 0.0)
            for i in range(count + 1):
                engine.submit({"id": f"t{i:03d}", "blocks": ["b"], "demand": {"rdp": demand}}, 0)
            assert len(engine.round(0.0).granted) == count
            assert ledger.invariant_violations() == []
