"""Why claims wait (`waiting_reasons`, `waiting_reason`) and blocks' room (`block_headroom`).

Expected texts are worked out by hand from the rules in `core.explain`: a block is short
of budget when no usable order of unlocked + locked budget holds the demand (then the
order named is the one where the demand is the smallest multiple of what is left), it
waits for unlocking when only unlocked budget is short, and at most three blocks are
named.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsched.budget import Accounting
from dpsched.core import (
    BatchBuilder,
    BlockSpec,
    Headroom,
    Ledger,
    PerArrival,
    block_headroom,
    rows_fit,
    snapshot,
    waiting_reason,
    waiting_reasons,
)

ALPHAS = (2.0, 4.0, 8.0)
FITS_NOW = "fits the unlocked budget now, but the policy has not chosen it"


def make_ledger(mode: str, capacities: list[list[float]], unlocked: list[float]) -> Ledger:
    """Blocks b0, b1, ... with explicit capacities, each unlocked to the given fraction."""
    ledger = Ledger(Accounting("rdp", ALPHAS) if mode == "rdp" else Accounting("basic"))
    for j, capacity in enumerate(capacities):
        ledger.add_block(BlockSpec(id=f"b{j}", capacity=tuple(capacity), arrival=float(j)))
    ledger.unlock(np.asarray(unlocked, dtype=float))
    return ledger


def submit(ledger: Ledger, claim_id: str, blocks: list[str], demand: Any) -> None:
    key = "rdp" if isinstance(demand, list) else "epsilon"
    claim = ledger.submit({"id": claim_id, "blocks": blocks, "demand": {key: demand}}, time=0.0)
    assert claim.reason is None, claim.reason  # pending, not rejected


def granted(ledger: Ledger, claim_id: str, blocks: list[str], demand: Any) -> None:
    submit(ledger, claim_id, blocks, demand)
    ledger.allocate(claim_id, request_id=f"grant-{claim_id}", time=0.0)


def both(ledger: Ledger) -> dict[str, str]:
    """The vectorised reasons, checked against the per-claim ones."""
    reasons = waiting_reasons(ledger)
    assert reasons == {c.id: waiting_reason(ledger, c) for c in ledger.pending()}
    return reasons


# ------------------------------------------------------------ short of budget
def test_basic_claim_short_of_budget_on_one_block() -> None:
    ledger = make_ledger("basic", [[1.0]], [1.0])
    granted(ledger, "a", ["b0"], 0.6)
    submit(ledger, "c", ["b0"], 0.5)  # 1.0 - 0.6 = 0.4 left, locked nothing
    assert both(ledger) == {"c": "not enough budget left on b0 (needs 0.5, 0.4 left)"}
    assert waiting_reason(ledger, ledger.claim("a")) == "not pending: allocated"


def test_rdp_claim_short_of_budget_names_the_closest_order() -> None:
    ledger = make_ledger(
        "rdp", [[1.0, 2.0, 4.0], [1.0, 1.0, 1.0], [0.0, 2.0, 2.0], [1.0, 2.0, 4.0]], [1.0] * 4
    )
    granted(ledger, "a", ["b0"], [0.5, 1.0, 1.0])  # b0 left: 0.5, 1.0, 3.0
    # On b0 the demand is 1.8x, 1.5x and 1.33x what is left: alpha=8 is closest. On b1
    # 0.9 <= 1.0 fits at alpha=2, so b1 is not named.
    submit(ledger, "c", ["b0", "b1"], [0.9, 1.5, 4.0])
    granted(ledger, "x", ["b2"], [0.0, 1.5, 0.5])  # b2 left: 0 (unusable), 0.5, 1.5
    # alpha=2 has no capacity on b2 (demand 0 <= 0 does not count); 2x at alpha=4,
    # 1.2x at alpha=8.
    submit(ledger, "d", ["b2"], [0.0, 1.0, 1.8])
    # b3 left: -0.5, 0, -0.5: nothing left anywhere, so the order closest to having room
    # (the largest left, alpha=4) is named, with 0 left.
    granted(ledger, "y", ["b3"], [1.5, 2.0, 4.5])
    submit(ledger, "z", ["b3"], [0.5, 0.5, 0.5])
    assert ledger.accounting.labels == ["alpha=2", "alpha=4", "alpha=8"]
    assert both(ledger) == {
        "c": "not enough budget left on b0 (needs 4 at alpha=8, 3 left)",
        "d": "not enough budget left on b2 (needs 1.8 at alpha=8, 1.5 left)",
        "z": "not enough budget left on b3 (needs 0.5 at alpha=4, 0 left)",
    }


def test_short_budget_outranks_locked_budget() -> None:
    ledger = make_ledger("basic", [[1.0], [1.0]], [1.0, 0.1])
    granted(ledger, "a", ["b0"], 0.8)  # b0: 0.2 left; b1: 10% unlocked
    submit(ledger, "c", ["b1", "b0"], 0.5)
    assert both(ledger) == {"c": "not enough budget left on b0 (needs 0.5, 0.2 left)"}


# ------------------------------------------------------------ waiting to unlock
def test_claim_waiting_only_for_unlocking() -> None:
    ledger = make_ledger("basic", [[1.0]], [0.4])  # 0.4 unlocked, 0.6 locked
    submit(ledger, "c", ["b0"], 0.5)
    submit(ledger, "f", ["b0"], 0.3)
    submit(ledger, "g", ["b0"], 0.4)  # exactly what is unlocked: fits
    assert both(ledger) == {
        "c": "waits for budget to be unlocked on b0 (40% unlocked)",
        "f": FITS_NOW,
        "g": FITS_NOW,
    }


def test_per_arrival_unlocking_names_only_the_blocks_that_are_short() -> None:
    ledger = make_ledger("basic", [[1.0], [1.0]], [0.0, 0.0])
    unlocking = PerArrival(4)
    for claim_id, blocks, epsilon in [("c1", ["b0"], 0.3), ("c2", ["b0", "b1"], 0.5)]:
        claim = ledger.submit(
            {"id": claim_id, "blocks": blocks, "demand": {"epsilon": epsilon}}, time=0.0
        )
        unlocking.on_claim_submitted(ledger, claim, 0.0)
    # b0: 1/4 + 1/4 = 50% unlocked, b1: 25%. c2 fits b0 (0.5 <= 0.5), not b1.
    assert ledger.budget.unlocked_fraction.tolist() == [0.5, 0.25]
    assert both(ledger) == {
        "c1": FITS_NOW,
        "c2": "waits for budget to be unlocked on b1 (25% unlocked)",
    }


def test_rdp_claim_fits_now_at_one_order_only() -> None:
    ledger = make_ledger("rdp", [[1.0, 2.0, 4.0]], [0.5])  # unlocked: 0.5, 1.0, 2.0
    submit(ledger, "now", ["b0"], [5.0, 5.0, 2.0])  # fits at alpha=8 only
    submit(ledger, "later", ["b0"], [0.6, 1.5, 3.0])  # fits nowhere now, alpha=2 later
    assert both(ledger) == {
        "now": FITS_NOW,
        "later": "waits for budget to be unlocked on b0 (50% unlocked)",
    }


def test_own_reservation_counts_as_available() -> None:
    ledger = make_ledger("basic", [[1.0]], [0.5])
    submit(ledger, "a", ["b0"], 0.5)
    submit(ledger, "b", ["b0"], 0.4)
    ledger.reserve("a", np.array([[0.3]]), request_id="r", time=0.0)
    # unlocked 0.2, reserved 0.3 for a; locked 0.5.
    expected = {"a": FITS_NOW, "b": "waits for budget to be unlocked on b0 (50% unlocked)"}
    assert both(ledger) == expected


# ---------------------------------------------------------------- many blocks
def test_more_than_three_blocks_are_counted() -> None:
    ledger = make_ledger("basic", [[1.0]] * 5, [1.0] * 5)
    every = [f"b{j}" for j in range(5)]
    granted(ledger, "a", every, 0.7)  # 0.3 left on each
    submit(ledger, "five", ["b4", "b2", "b0", "b1", "b3"], 0.5)
    submit(ledger, "four", ["b1", "b2", "b3", "b0"], 0.5)
    submit(ledger, "three", ["b0", "b1", "b2"], 0.5)
    short = "(needs 0.5, 0.3 left)"
    assert both(ledger) == {
        "five": f"not enough budget left on b4 {short}, b2 {short}, b0 {short} and 2 more blocks",
        "four": f"not enough budget left on b1 {short}, b2 {short}, b3 {short} and 1 more block",
        "three": f"not enough budget left on b0 {short}, b1 {short}, b2 {short}",
    }


def test_more_than_three_locked_blocks_are_counted() -> None:
    ledger = make_ledger("basic", [[1.0]] * 4, [0.0, 0.0, 0.0, 0.5])
    submit(ledger, "c", ["b3", "b0", "b1", "b2"], 0.6)
    assert both(ledger) == {
        "c": "waits for budget to be unlocked on b3 (50% unlocked), b0 (0% unlocked), "
        "b1 (0% unlocked) and 1 more block"
    }


# ---------------------------------------------------------------------- limit
def test_limit_keeps_the_first_pending_claims_in_submission_order() -> None:
    ledger = make_ledger("basic", [[1.0], [1.0]], [1.0, 0.5])
    submit(ledger, "p0", ["b1"], 0.9)  # waits for b1 to unlock
    submit(ledger, "gone", ["b0"], 0.1)
    submit(ledger, "p1", ["b0"], 0.2)  # fits
    submit(ledger, "p2", ["b0", "b1"], 0.6)  # waits for b1
    submit(ledger, "p3", ["b0"], 0.95)  # short once "gone" holds 0.1
    ledger.allocate("gone", request_id="r", time=0.0)
    everything = {
        "p0": "waits for budget to be unlocked on b1 (50% unlocked)",
        "p1": FITS_NOW,
        "p2": "waits for budget to be unlocked on b1 (50% unlocked)",
        "p3": "not enough budget left on b0 (needs 0.95, 0.9 left)",
    }
    assert both(ledger) == everything
    assert list(waiting_reasons(ledger)) == ["p0", "p1", "p2", "p3"]
    assert list(waiting_reasons(ledger, limit=2).items()) == list(everything.items())[:2]
    assert waiting_reasons(ledger, limit=1) == {"p0": everything["p0"]}
    assert waiting_reasons(ledger, limit=0) == {}
    assert waiting_reasons(ledger, limit=4) == everything
    assert waiting_reasons(ledger, limit=100) == everything


def test_no_pending_claims() -> None:
    ledger = make_ledger("rdp", [[1.0, 1.0, 1.0]], [1.0])
    assert waiting_reasons(ledger) == {}
    assert waiting_reasons(make_ledger("basic", [], [])) == {}


# ------------------------------------------------------------------- headroom
def test_block_headroom_picks_the_order_with_the_largest_remaining_fraction() -> None:
    ledger = make_ledger(
        "rdp",
        [
            [1.0, 2.0, 4.0],
            [0.0, 2.0, 4.0],
            [1.0, 2.0, 4.0],
            [0.0, 0.0, 0.0],
            [1.0, 2.0, 4.0],
            [2.0, 2.0, 2.0],
        ],
        [1.0] * 6,
    )
    granted(ledger, "a", ["b0"], [0.5, 0.5, 3.0])  # left 0.5, 1.5, 1.0 = 50%, 75%, 25%
    granted(ledger, "b", ["b1"], [5.0, 1.0, 3.0])  # alpha=2 unusable; 50%, 25%
    granted(ledger, "c", ["b2"], [1.0, 3.0, 5.0])  # left 0, -1, -1: exhausted
    granted(ledger, "e", ["b5"], [1.0, 0.5, 1.5])
    ledger.consume("e", request_id="use", time=1.0, fraction=0.5)  # half consumed, half held
    # b3 has no usable order; b4 is untouched (a tie: the first order).
    assert block_headroom(ledger) == [
        Headroom(1, 1.5, 0.75),
        Headroom(1, 1.0, 0.5),
        Headroom(None, 0.0, 0.0),
        Headroom(None, 0.0, 0.0),
        Headroom(0, 1.0, 1.0),
        Headroom(1, 1.5, 0.75),  # left 1.0, 1.5, 0.5 of 2.0 each
    ]


def test_block_headroom_basic_and_released_budget() -> None:
    ledger = make_ledger("basic", [[1.0], [1.0], [4.0]], [1.0, 1.0, 0.0])
    granted(ledger, "a", ["b0"], 0.25)
    granted(ledger, "b", ["b0"], 0.25)
    ledger.consume("b", request_id="use", time=1.0)
    granted(ledger, "c", ["b1"], 1.0)
    granted(ledger, "d", ["b1"], 0.0)
    assert block_headroom(ledger) == [
        Headroom(0, 0.5, 0.5),
        Headroom(None, 0.0, 0.0),
        Headroom(0, 4.0, 1.0),  # locked budget counts as remaining
    ]
    ledger.release("c", request_id="back", time=2.0)
    assert block_headroom(ledger)[1] == Headroom(0, 1.0, 1.0)
    assert block_headroom(make_ledger("rdp", [], [])) == []


# ------------------------------------------------------------------- property
demand_entry = st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 1e13])
capacity_entry = st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0])
fraction = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])


@st.composite
def busy_ledger(draw: st.DrawFn) -> Ledger:
    mode = draw(st.sampled_from(["basic", "rdp"]))
    dims = len(ALPHAS) if mode == "rdp" else 1
    n_blocks = draw(st.integers(1, 5))
    capacities = [
        draw(st.lists(capacity_entry, min_size=dims, max_size=dims)) for _ in range(n_blocks)
    ]
    unlocked = draw(st.lists(fraction, min_size=n_blocks, max_size=n_blocks))
    ledger = make_ledger(mode, capacities, unlocked)
    names = [f"b{j}" for j in range(n_blocks)]
    tasks = []
    for i in range(draw(st.integers(0, 12))):
        blocks = draw(st.lists(st.sampled_from(names), min_size=1, max_size=n_blocks, unique=True))
        values = draw(st.lists(demand_entry, min_size=dims, max_size=dims))
        demand = {"rdp": values} if mode == "rdp" else {"epsilon": values[0]}
        tasks.append({"id": f"c{i}", "blocks": blocks, "demand": demand})
    if draw(st.booleans()):
        for item in tasks:
            ledger.submit(item, time=0.0)
    else:  # claims whose arrays are views into shared batch arrays
        builder = BatchBuilder(ledger)
        for item in tasks:
            builder.add_raw(item)
        ledger.submit_batch(builder.build())
    for step in range(draw(st.integers(0, 10))):
        op = draw(
            st.sampled_from(["allocate", "allocate", "consume", "release", "expire", "unlock"])
        )
        if op == "unlock":
            index = draw(st.integers(0, n_blocks - 1))
            ledger.unlock(np.array([draw(fraction)]), np.array([index]))
            continue
        if not tasks:
            continue
        claim = ledger.claim(f"c{draw(st.integers(0, len(tasks) - 1))}")
        state = claim.state.value
        request = f"r{step}"
        if op == "allocate" and state == "pending" and ledger.can_run(claim.id):
            ledger.allocate(claim.id, request_id=request, time=float(step))
        elif op == "consume" and state == "allocated":
            ledger.consume(claim.id, request_id=request, time=float(step), fraction=0.5)
        elif op == "release" and state == "allocated":
            ledger.release(claim.id, request_id=request, time=float(step))
        elif op == "expire" and state == "pending":
            ledger.expire(claim.id, request_id=request, time=float(step))
    return ledger


@settings(max_examples=200, deadline=None)
@given(busy_ledger(), st.integers(0, 14))
def test_reasons_follow_the_admission_rule(ledger: Ledger, limit: int) -> None:
    """Against the ledger's own admission rule (`can_run`, `rows_fit`): a claim that can
    run now "fits"; one that could not run even with every block fully unlocked is
    "not enough budget left" and names its first blocks that lack room then; any other
    waits for unlocking and names its first blocks that lack room now."""
    pending = ledger.pending()
    reasons = waiting_reasons(ledger)
    assert list(reasons) == [c.id for c in pending]
    opened = snapshot.from_dict(snapshot.to_dict(ledger))
    opened.unlock(np.ones(len(opened.blocks)))
    for claim in pending:
        text = reasons[claim.id]
        assert waiting_reason(ledger, claim) == text
        named = re.findall(r"(?:on |, )(\S+) \(", text)
        if ledger.can_run(claim.id):
            assert text == FITS_NOW
            continue
        view = opened if not opened.can_run(claim.id) else ledger
        prefix = "not enough budget left on " if view is opened else "waits for budget to be "
        assert text.startswith(prefix), text
        rows = claim.block_index
        ok = rows_fit(
            claim.demand, view.budget.unlocked[rows] + claim.reserved, view.budget.usable[rows]
        )
        lacking = [b for b, fits in zip(claim.block_ids, ok.tolist(), strict=True) if not fits]
        assert named == lacking[:3]
        assert text.endswith(
            ""
            if len(lacking) <= 3
            else f"and {len(lacking) - 3} more block" + ("s" if len(lacking) > 4 else "")
        )
    assert waiting_reasons(ledger, limit=limit) == {c.id: reasons[c.id] for c in pending[:limit]}
