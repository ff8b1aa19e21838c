"""Elastic budget: an epsilon range with calibrated noise. The grant is the most of the
range the blocks hold (after every claim the policy chose has its minimum), charged as
the curve of the mechanism with the noise the claim is told to use."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from dp_accounting import (
    GaussianDpEvent,
    LaplaceDpEvent,
    PoissonSampledDpEvent,
    SelfComposedDpEvent,
    rdp,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_operations import apply, recorded

from dpsched.budget import Accounting
from dpsched.core import AllUnlocked, BlockSpec, ClaimState, Ledger, snapshot
from dpsched.engine import Engine
from dpsched.errors import InputError

ALPHAS = (2.0, 4.0, 8.0, 16.0, 32.0)


def engine_with(capacities: list[float], policy: str = "fcfs") -> Engine:
    ledger = Ledger(Accounting("rdp", ALPHAS))
    engine = Engine(ledger, AllUnlocked(), policy)
    for j, capacity in enumerate(capacities):
        engine.add_block(BlockSpec(id=f"b{j}", capacity=[capacity] * len(ALPHAS)), 0.0)
    return engine


def sgd(low: float, high: float, **extra: Any) -> dict[str, Any]:
    return {
        "mechanism": "subsampled_gaussian",
        "sampling_rate": 0.05,
        "steps": 40,
        "epsilon": [low, high],
        "delta": 1e-6,
        **extra,
    }


def rdp_of(sigma: float, rate: float | None, steps: int) -> np.ndarray:
    """The RDP curve of what the job runs, straight from dp-accounting's accountant."""
    accountant = rdp.RdpAccountant(orders=list(ALPHAS))
    step: Any = GaussianDpEvent(sigma)
    if rate is not None:
        step = PoissonSampledDpEvent(rate, step)
    accountant.compose(SelfComposedDpEvent(step, steps))
    return np.asarray(accountant._rdp)


def test_with_room_the_grant_is_the_top_of_the_range() -> None:
    engine = engine_with([100.0])
    engine.submit({"id": "job", "blocks": ["b0"], "demand": sgd(1.0, 4.0)}, 0.0)
    assert engine.round(0.0).granted == ["job"]
    claim = engine.ledger.claim("job")
    assert claim.grant is not None
    assert 4.0 * (1 - 1e-6) <= claim.grant["epsilon"] <= 4.0
    charged = rdp_of(claim.grant["noise_multiplier"], 0.05, 40)
    assert np.allclose(claim.demand[0], charged, rtol=1e-12)


def test_a_tight_block_grants_part_of_the_range_and_stays_within_capacity() -> None:
    full = engine_with([100.0])
    full.submit({"id": "top", "blocks": ["b0"], "demand": sgd(1.0, 4.0)}, 0.0)
    full.round(0.0)
    bottom = engine_with([100.0])
    bottom.submit({"id": "low", "blocks": ["b0"], "demand": sgd(1.0, 1.0)}, 0.0)
    bottom.round(0.0)
    top, low = full.ledger.claim("top").demand[0], bottom.ledger.claim("low").demand[0]
    capacity = float((top[-1] + low[-1]) / 2)  # room between the range's two ends
    engine = engine_with([capacity])
    engine.submit({"id": "job", "blocks": ["b0"], "demand": sgd(1.0, 4.0)}, 0.0)
    assert engine.round(0.0).granted == ["job"]
    claim = engine.ledger.claim("job")
    assert claim.grant is not None and 1.0 < claim.grant["epsilon"] < 4.0
    assert (engine.ledger.budget.spent()[0] <= capacity).any()  # some order holds (the RDP rule)
    assert engine.ledger.invariant_violations() == []


def test_growth_never_takes_what_the_policy_gave_another_claim() -> None:
    engine = engine_with([6.0])
    engine.submit({"id": "elastic", "blocks": ["b0"], "demand": sgd(0.5, 50.0)}, 0.0)
    engine.submit({"id": "fixed", "blocks": ["b0"], "demand": {"rdp": [3.0] * 5}}, 0.0)
    assert engine.round(0.0).granted == ["elastic", "fixed"]
    assert engine.ledger.claim("fixed").state is ClaimState.ALLOCATED
    assert engine.ledger.invariant_violations() == []


@settings(max_examples=20, deadline=None)
@given(
    st.sampled_from(["gaussian", "laplace", "subsampled_gaussian"]),
    st.floats(0.2, 3.0),
    st.floats(1.0, 4.0),
    st.floats(0.5, 40.0),
)
def test_the_charge_covers_the_mechanism_with_the_returned_noise(
    mechanism: str, low: float, stretch: float, capacity: float
) -> None:
    high = low * stretch
    demand: dict[str, Any] = {"mechanism": mechanism, "epsilon": [low, high]}
    if mechanism != "laplace":
        demand["delta"] = 1e-6
    if mechanism == "subsampled_gaussian":
        demand |= {"sampling_rate": 0.1, "steps": 10}
    engine = engine_with([capacity])
    engine.submit({"id": "job", "blocks": ["b0"], "demand": demand}, 0.0)
    engine.round(0.0)
    claim = engine.ledger.claim("job")
    assert engine.ledger.invariant_violations() == []
    if claim.state is not ClaimState.ALLOCATED:
        assert claim.grant is None
        return
    assert claim.grant is not None
    assert low * (1 - 1e-6) <= claim.grant["epsilon"] <= high
    if mechanism == "laplace":
        accountant = rdp.RdpAccountant(orders=list(ALPHAS))
        accountant.compose(LaplaceDpEvent(claim.grant["scale"]))
        runs = np.asarray(accountant._rdp)
    else:
        rate = 0.1 if mechanism == "subsampled_gaussian" else None
        runs = rdp_of(claim.grant["noise_multiplier"], rate, 10 if rate else 1)
    assert (claim.demand[0] >= runs * (1 - 1e-12)).all()


def test_elastic_grants_replay_and_round_trip_exactly() -> None:
    ledger = Ledger(Accounting("rdp", ALPHAS))
    log = recorded(ledger)
    engine = Engine(ledger, AllUnlocked(), "dpack")
    engine.add_block(BlockSpec(id="b0", capacity=[8.0] * len(ALPHAS)), 0.0)
    engine.submit({"id": "job", "blocks": ["b0"], "demand": sgd(1.0, 8.0)}, 0.0)
    vector = {"rdp": [1.0] * 5}
    body = {"id": "vec", "blocks": ["b0"], "demand": vector, "min_demand": {"rdp": [0.1] * 5}}
    engine.submit(body, 0.0)
    engine.round(0.0)
    assert [op for op, _ in log].count("expand") == 2
    copy = Ledger(Accounting("rdp", ALPHAS))
    for op, args in log:
        apply(copy, op, args)
    assert snapshot.to_dict(copy) == snapshot.to_dict(ledger)
    assert snapshot.to_dict(snapshot.from_arrays(snapshot.to_arrays(ledger))) == snapshot.to_dict(
        ledger
    )


def test_ranges_are_checked() -> None:
    basic = Ledger(Accounting("basic"))
    basic.add_block(BlockSpec(id="b0", epsilon=1.0))
    with pytest.raises(InputError, match="needs accounting: rdp"):
        basic.submit({"id": "x", "blocks": ["b0"], "demand": sgd(1.0, 2.0)}, 0.0)
    ledger = engine_with([1.0]).ledger
    for bad, message in (
        (sgd(2.0, 1.0), "low <= high"),
        ({"mechanism": "gaussian", "epsilon": [1.0, 2.0]}, "needs 'delta'"),
        ({"mechanism": "laplace", "epsilon": [1.0, 2.0], "delta": 1e-6}, "pure epsilon"),
    ):
        with pytest.raises(InputError, match=message):
            ledger.submit({"id": "x", "blocks": ["b0"], "demand": bad}, 0.0)


def test_min_demand_grows_the_most_of_the_way_to_demand_that_fits() -> None:
    engine = engine_with([1.25])
    body = {"id": "v", "blocks": ["b0"], "demand": {"rdp": [2.0] * 5}}
    engine.submit({**body, "min_demand": {"rdp": [0.5] * 5}}, 0.0)
    assert engine.round(0.0).granted == ["v"]
    claim = engine.ledger.claim("v")
    assert claim.grant is not None
    assert claim.grant["fraction"] == pytest.approx(0.5, abs=1e-6)
    assert (claim.demand[0] <= 1.25).all() and claim.demand[0][0] == pytest.approx(1.25, abs=2e-6)
    assert engine.ledger.invariant_violations() == []
    copy = snapshot.from_arrays(snapshot.to_arrays(engine.ledger))
    assert snapshot.to_dict(copy) == snapshot.to_dict(engine.ledger)


def test_min_demand_is_checked() -> None:
    ledger = engine_with([1.0]).ledger
    body = {"id": "v", "blocks": ["b0"], "demand": {"rdp": [1.0] * 5}}
    with pytest.raises(InputError, match="must not exceed 'demand'") as over:
        ledger.submit({**body, "min_demand": {"rdp": [2.0] * 5}}, 0.0)
    assert over.value.field == "tasks.v.min_demand"
    with pytest.raises(InputError, match="goes with an explicit 'demand'"):
        ledger.submit({**body, "demand": {"zcdp": 0.1}, "min_demand": {"rdp": [0.1] * 5}}, 0.0)
