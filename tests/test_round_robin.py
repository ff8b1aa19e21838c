"""Round robin: ledger reservations, the max-min fair split, and the policy over steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.test_ledger import basic_ledger, submit

from dpsched.core import Ledger, snapshot
from dpsched.errors import InputError, LedgerError
from dpsched.policies import POLICIES, schedule_step
from dpsched.policies.round_robin import water_fill
from dpsched.sim.config import parse_config
from dpsched.sim.simulator import Simulator


def state_json(ledger: Ledger) -> str:
    return json.dumps(snapshot.to_dict(ledger), sort_keys=True)


def test_reservation_is_granted_from_first_and_returned_on_expiry() -> None:
    ledger = basic_ledger(n_blocks=1)
    submit(ledger, "a", 0.6, ["b0"])
    submit(ledger, "b", 0.3, ["b0"])
    ledger.reserve("a", np.array([[0.5]]), request_id="r1", time=0.0)
    assert ledger.budget.unlocked[0, 0] == pytest.approx(0.5)
    assert ledger.budget.reserved[0, 0] == pytest.approx(0.5)
    # The claim's own reservation counts for it, not for others.
    ledger.allocate("a", request_id="r2", time=1.0)
    assert ledger.budget.unlocked[0, 0] == pytest.approx(0.4)
    assert ledger.budget.reserved[0, 0] == pytest.approx(0.0)
    ledger.reserve("b", np.array([[0.2]]), request_id="r3", time=1.0)
    ledger.expire("b", request_id="r4", time=2.0)
    assert ledger.budget.unlocked[0, 0] == pytest.approx(0.4)
    assert ledger.claim("b").reserved.sum() == 0.0
    assert ledger.invariant_violations() == []


def test_reservations_survive_a_json_round_trip() -> None:
    ledger = basic_ledger(n_blocks=1)
    submit(ledger, "a", 0.6, ["b0"])
    ledger.reserve("a", np.array([[0.25]]), request_id="r1", time=0.0)
    copy = snapshot.from_dict(json.loads(state_json(ledger)))
    assert state_json(copy) == state_json(ledger)
    assert copy.claim("a").reserved[0, 0] == 0.25


@pytest.mark.parametrize(
    ("claim", "amount", "error", "message"),
    [
        ("a", [[0.7]], LedgerError, "more than the claim demands"),
        ("a", [[-0.1]], InputError, "non-negative"),
        ("a", [[0.1], [0.1]], InputError, "shape"),
        ("b", [[0.5]], LedgerError, "more than is unlocked"),
        ("c", [[0.1]], LedgerError, "no such claim"),
    ],
)
def test_bad_reservations_are_refused_and_change_nothing(
    claim: str, amount: list[list[float]], error: type[Exception], message: str
) -> None:
    ledger = basic_ledger(n_blocks=1)
    submit(ledger, "a", 0.6, ["b0"])
    submit(ledger, "b", 0.9, ["b0"])
    ledger.reserve("a", np.array([[0.6]]), request_id="r0", time=0.0)
    before = state_json(ledger)
    with pytest.raises(error, match=message):
        ledger.reserve(claim, np.array(amount), request_id="r1", time=0.0)
    assert state_json(ledger) == before


@given(
    st.lists(st.floats(0.0, 5.0), min_size=1, max_size=12),
    st.floats(0.0, 20.0),
)
def test_water_fill_is_max_min_fair(needs: list[float], pool: float) -> None:
    need = np.array(needs)[:, None]
    share = water_fill(need, np.array([pool]))[:, 0]
    assert (share >= -1e-12).all() and (share <= need[:, 0] + 1e-12).all()
    assert share.sum() == pytest.approx(min(pool, need.sum()), abs=1e-9)
    # Whoever gets less than it needs gets the largest share: nobody could be raised
    # without lowering someone who has no more.
    short = share < need[:, 0] - 1e-9
    if short.any():
        assert share[short].min() == pytest.approx(share.max(), abs=1e-9)


def test_round_robin_shares_evenly_and_runs_covered_claims_over_steps() -> None:
    ledger = basic_ledger(n_blocks=1, unlocked=False)
    for claim_id, eps in (("small", 0.1), ("mid", 0.3), ("big", 0.9)):
        submit(ledger, claim_id, eps, ["b0"])
    rr = POLICIES["rr"]
    ledger.unlock(np.array([0.3]))
    assert schedule_step(ledger, rr, 1.0).granted == ["small"]
    # 0.3 split three ways: small is covered; mid and big hold 0.1 each.
    assert ledger.claim("mid").reserved[0, 0] == pytest.approx(0.1)
    assert ledger.claim("big").reserved[0, 0] == pytest.approx(0.1)
    ledger.unlock(np.array([0.7]))
    assert schedule_step(ledger, rr, 2.0).granted == ["mid"]
    assert ledger.claim("big").reserved[0, 0] == pytest.approx(0.3)
    assert ledger.invariant_violations() == []


def test_round_robin_runs_in_the_simulator_below_dpf_on_privatekube() -> None:
    config = {
        "accounting": "basic",
        "blocks": {"initial": 1},
        "workload": {"name": "privatekube", "n_tasks": 200, "arrival": {"rate": 1.0}},
        "scheduler": {
            "mode": "on_arrival",
            "timeout": 300,
            "unlocking": {"kind": "per_arrival", "n": 100},
        },
    }
    allocated = {}
    for policy in ("rr", "dpf"):
        result = Simulator(parse_config(config, {"scheduler.policy": policy})).run()
        assert result.summary["budget_violations"] == 0
        allocated[policy] = result.summary["n_allocated"]
    assert 0 < allocated["rr"] < allocated["dpf"]
