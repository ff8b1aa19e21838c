"""The safety invariant under arbitrary operation sequences, for both accounting modes.

After every operation (successful or refused): capacity = locked + unlocked + reserved +
allocated + consumed per order, locked >= 0, and every block that granted anything
stays within capacity at some usable order. Refused operations change nothing. Claims
are fixed, flexible (blocks chosen at every materialisation) or elastic (an epsilon
range, grown after the policy's allocation).
"""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dpsched.budget import Accounting
from dpsched.core import BlockSpec, Ledger, PerArrival, fits, rows_fit, snapshot
from dpsched.errors import DpschedError
from dpsched.policies import POLICIES, schedule_step

ALPHAS = (1.5, 2.0, 4.0, 8.0, 32.0)
N_BLOCKS = 3

demand_values = st.one_of(
    st.floats(min_value=0.0, max_value=6.0, allow_nan=False),
    st.sampled_from([0.0, 0.5, 1.0, 2.5, 5.0]),  # exact ties with the unlocked budget
)
operation = st.one_of(
    st.tuples(
        st.just("submit"),
        st.lists(st.integers(0, N_BLOCKS - 1), min_size=1, max_size=3, unique=True),
        st.lists(demand_values, min_size=len(ALPHAS), max_size=len(ALPHAS)),
    ),
    st.tuples(st.just("submit_flexible"), st.integers(1, 2), st.floats(0.1, 6.0), st.booleans()),
    st.tuples(st.just("submit_elastic"), st.sampled_from([(0.5, 2.0), (1.0, 8.0), (3.0, 3.0)])),
    st.tuples(st.just("materialise")),
    st.tuples(st.just("allocate"), st.integers(0, 30)),
    st.tuples(st.just("consume"), st.integers(0, 30), st.floats(0.01, 1.2)),
    st.tuples(st.just("release"), st.integers(0, 30)),
    st.tuples(st.just("expire"), st.integers(0, 30)),
    st.tuples(st.just("unlock"), st.floats(0.0, 1.0)),
    st.tuples(st.just("reserve"), st.integers(0, 30), st.floats(0.0, 1.5)),
    st.tuples(st.just("schedule"), st.sampled_from(["fcfs", "dpf", "area", "dpack", "rr"])),
)


def run_sequence(mode: str, ops: list[tuple[object, ...]]) -> None:
    accounting = Accounting(mode, ALPHAS)
    ledger = Ledger(accounting)
    for j in range(N_BLOCKS):
        ledger.add_block(BlockSpec(id=f"b{j}", epsilon=10.0, delta=1e-6))
    unlock = PerArrival(3)
    submitted = 0
    for step, op in enumerate(ops):
        before = json.dumps(snapshot.to_dict(ledger), sort_keys=True)
        kind = op[0]
        claim_id = (
            f"c{op[1]}" if kind in ("allocate", "consume", "release", "expire", "reserve") else ""
        )
        try:
            if kind == "submit":
                blocks, values = op[1], op[2]
                demand = {"epsilon": values[0]} if mode == "basic" else {"rdp": values}
                claim = ledger.submit(
                    {"id": f"c{submitted}", "blocks": [f"b{b}" for b in blocks], "demand": demand},
                    time=float(step),
                )
                unlock.on_claim_submitted(ledger, claim, float(step))
                submitted += 1
            elif kind == "submit_flexible":
                # Any `op[1]` of the blocks with room, chosen at every materialisation.
                value = float(op[2])
                demand = {"epsilon": value} if mode == "basic" else {"zcdp": value / 10}
                extra = {"max_blocks": op[1]} if op[3] else {"min_blocks": op[1]}
                body = {"id": f"c{submitted}", "blocks": {"dataset": "default"}, **extra}
                claim = ledger.submit({**body, "demand": demand}, time=float(step))
                unlock.on_claim_submitted(ledger, claim, float(step))
                submitted += 1
            elif kind == "submit_elastic":
                if mode == "basic":
                    continue  # ranges need rdp accounting
                low, high = op[1]
                demand = {"mechanism": "gaussian", "epsilon": [low, high], "delta": 1e-6}
                claim = ledger.submit(
                    {"id": f"c{submitted}", "blocks": ["b0", "b1"], "demand": demand},
                    time=float(step),
                )
                unlock.on_claim_submitted(ledger, claim, float(step))
                submitted += 1
            elif kind == "materialise":
                ledger.materialise(float(step))
            elif kind == "allocate":
                ledger.allocate(claim_id, request_id=f"r{step}", time=float(step))
            elif kind == "consume":
                ledger.consume(
                    claim_id, request_id=f"r{step}", time=float(step), fraction=float(op[2])
                )
            elif kind == "release":
                ledger.release(claim_id, request_id=f"r{step}", time=float(step))
            elif kind == "expire":
                ledger.expire(claim_id, request_id=f"r{step}", time=float(step))
            elif kind == "reserve":
                # Up to 1.5x of what may legally be reserved: the excess must be refused.
                claim = ledger.claim(claim_id)
                room = np.maximum(ledger.budget.unlocked[claim.block_index], 0.0)
                amount = np.minimum(claim.demand - claim.reserved, room) * float(op[2])
                ledger.reserve(claim_id, amount, request_id=f"r{step}", time=float(step))
            elif kind == "unlock":
                ledger.unlock(np.full(N_BLOCKS, float(op[1])))
            else:
                schedule_step(ledger, POLICIES[str(op[1])], time=float(step))
        except DpschedError:
            assert json.dumps(snapshot.to_dict(ledger), sort_keys=True) == before, (
                f"refused {op} changed state"
            )
        assert ledger.invariant_violations() == [], op
        check_fit_answers(ledger)
        spent = ledger.budget.spent()
        within = ((spent <= ledger.budget.capacity + 1e-9) & ledger.budget.usable).any(axis=1)
        assert (within | ~(spent > 0).any(axis=1)).all()


def check_fit_answers(ledger: Ledger) -> None:
    """The ledger's incremental fit answers (bounds kept across operations) equal the
    admission rule applied claim by claim."""
    now = ledger.pending_fit()
    arrays = now.view.arrays
    fast = {str(arrays.ids[i]): bool(now.fit[i]) for i in range(arrays.n) if now.view.alive[i]}
    pending = [c for c in ledger.pending() if not ledger.waits_aside(c.id)]
    usable = ledger.budget.usable
    slow = {
        c.id: fits(c.demand, ledger.budget.unlocked[c.block_index], usable[c.block_index])
        for c in pending
    }
    assert fast == slow
    touching = now.touching(np.ones(ledger.budget.capacity.shape[0], dtype=bool))
    fast_touch = {str(arrays.ids[i]) for i in np.flatnonzero(touching)}
    slow_touch = {
        c.id
        for c in pending
        if rows_fit(c.demand, ledger.budget.unlocked[c.block_index], usable[c.block_index]).any()
    }
    assert fast_touch == slow_touch
    whole = ledger.budget.unlocked + ledger.budget.locked
    ever = any(fits(c.demand, whole[c.block_index], usable[c.block_index]) for c in pending)
    assert ledger.any_pending_could_fit() == ever


@given(st.lists(operation, max_size=40))
def test_rdp_blocks_never_exceed_budget(ops: list[tuple[object, ...]]) -> None:
    run_sequence("rdp", ops)


@given(st.lists(operation, max_size=40))
def test_basic_blocks_never_exceed_budget(ops: list[tuple[object, ...]]) -> None:
    run_sequence("basic", ops)
