"""`Ledger.allocate_many` leaves the ledger exactly as granting the claims one by one
(`can_run`, then `allocate`) does: same grants, same floats bit for bit, same journal."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsched.budget import Accounting
from dpsched.core import AllUnlocked, BlockSpec, Ledger, snapshot
from dpsched.core.records import LedgerOperation


def build(seed: int, n: int, m: int, mode: str) -> Ledger:
    rng = np.random.default_rng(seed)
    accounting = Accounting(mode)
    ledger = Ledger(accounting)
    for j in range(m):
        epsilon = float(rng.choice([1.0, 3.0]))
        index = ledger.add_block(BlockSpec(id=f"b{j}", epsilon=epsilon, delta=1e-6))
        AllUnlocked().on_block_added(ledger, index, 0.0)
    dims = accounting.dims
    for i in range(n):
        blocks = sorted(rng.choice(m, size=int(rng.integers(1, m + 1)), replace=False).tolist())
        if mode == "basic":
            demand: dict[str, Any] = {"epsilon": float(rng.choice([0.1, 0.3, 1 / 3, 0.7]))}
        else:
            demand = {"rdp": rng.choice([0.05, 0.1, 0.3, 2.0], size=dims).tolist()}
        ledger.submit({"id": f"c{i}", "blocks": [f"b{j}" for j in blocks], "demand": demand}, 0.0)
    return ledger


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 30),
    st.integers(1, 4),
    st.sampled_from(["basic", "rdp"]),
    st.data(),
)
def test_allocating_many_is_allocating_one_by_one(
    seed: int, n: int, m: int, mode: str, data: st.DataObject
) -> None:
    ledger = build(seed, n, m, mode)
    ids = data.draw(st.permutations([f"c{i}" for i in range(n)]))
    ids = ids[: data.draw(st.integers(1, n))]
    one_by_one = copy.deepcopy(ledger)
    events: list[LedgerOperation] = []
    expected_events: list[LedgerOperation] = []
    ledger.listener = events.append
    one_by_one.listener = expected_events.append

    granted = ledger.allocate_many(ids, time=1.0)

    expected = []
    for claim_id in ids:
        if one_by_one.can_run(claim_id):
            one_by_one.allocate(claim_id, request_id=f"allocate:{claim_id}", time=1.0)
            expected.append(claim_id)
    assert granted == expected
    assert events == expected_events
    ledger.listener = one_by_one.listener = None
    assert snapshot.to_dict(ledger) == snapshot.to_dict(one_by_one)
    for name in ("unlocked", "allocated", "spent_units", "holders"):
        assert np.array_equal(getattr(ledger.budget, name), getattr(one_by_one.budget, name)), name
