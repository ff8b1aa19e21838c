"""The engine: the one place a scheduling round is defined, driven with explicit times."""

from __future__ import annotations

import pytest

from dpsched.budget import Accounting
from dpsched.core import AllUnlocked, BlockSpec, Ledger, PerArrival, PerStep
from dpsched.engine import Engine
from dpsched.errors import InputError
from dpsched.offline import parse_instance, run_policy
from dpsched.policies import get_policy, schedule_step
from dpsched.sim.workloads import mixed


def basic_engine(unlocking: object, blocks: int = 2, policy: str = "fcfs") -> Engine:
    engine = Engine(Ledger(Accounting("basic")), unlocking, policy)  # type: ignore[arg-type]
    for j in range(blocks):
        engine.add_block(BlockSpec(id=f"b{j}", epsilon=1.0), time=0.0)
    return engine


def test_a_round_withdraws_timed_out_claims_before_the_policy_runs() -> None:
    engine = basic_engine(AllUnlocked())
    engine.submit({"id": "late", "blocks": ["b0"], "timeout": 1, "demand": {"epsilon": 0.7}}, 0)
    engine.submit({"id": "ok", "blocks": ["b0"], "arrival": 1, "demand": {"epsilon": 0.7}}, 1)
    outcome = engine.round(1.0)
    # fcfs would grant `late` first (it arrived first) if it were still pending.
    assert outcome.expired == ["late"] and outcome.granted == ["ok"]
    assert engine.ledger.claim("late").state.value == "expired"
    assert outcome.time == 1.0 and outcome.considered == 1


def test_submissions_and_ticks_drive_the_unlocking_strategy() -> None:
    engine = basic_engine(PerArrival(4))
    engine.submit({"id": "a", "blocks": ["b0"], "demand": {"epsilon": 0.1}}, 0)
    assert engine.ledger.budget.unlocked_fraction.tolist() == [0.25, 0.0]
    rejected = engine.submit({"id": "big", "blocks": ["b1"], "demand": {"epsilon": 2}}, 0)
    assert rejected.state.value == "rejected"
    assert engine.ledger.budget.unlocked_fraction.tolist() == [0.25, 0.0]  # rejected: no unlock
    timed = basic_engine(PerStep(2, period=10.0))
    assert timed.ledger.budget.unlocked_fraction.tolist() == [0.0, 0.0]
    timed.round(5.0)
    assert timed.ledger.budget.unlocked_fraction.tolist() == [0.5, 0.5]
    timed.round(25.0)
    assert timed.ledger.budget.unlocked_fraction.tolist() == [1.0, 1.0]


def test_could_ever_fit_follows_the_ledger() -> None:
    engine = basic_engine(PerStep(2, period=10.0), blocks=1)
    engine.submit({"id": "a", "blocks": ["b0"], "demand": {"epsilon": 0.6}}, 0)
    engine.submit({"id": "b", "blocks": ["b0"], "demand": {"epsilon": 0.6}}, 0)
    assert engine.could_ever_fit()
    engine.round(10.0)  # half unlocked: 0.6 does not fit in 0.5, nothing granted yet
    assert engine.ledger.pending_count == 2
    outcome = engine.round(20.0)
    assert outcome.granted == ["a"]
    assert not engine.could_ever_fit()  # b needs 0.6 of the 0.4 left, whatever unlocks
    assert engine.used_fraction().tolist() == [pytest.approx(0.6)]


@pytest.mark.parametrize("policy", ["fcfs", "dpf", "area", "dpack", "rr"])
def test_offline_runs_are_one_engine_round(policy: str) -> None:
    instance = parse_instance(mixed(120, 6, seed=2).to_instance_dict())
    _, report = run_policy(instance, policy)
    ledger = instance.ledger()
    direct = schedule_step(ledger, get_policy(policy), time=0.0)
    assert report["allocated"] == direct.granted
    assert report["n_allocated"] > 0


def test_engine_refuses_bad_policies_and_options() -> None:
    with pytest.raises(InputError, match=r"dpack option\.eta"):
        Engine(Ledger(Accounting("basic")), AllUnlocked(), "dpack", {"eta": 5})
    with pytest.raises(InputError, match="unknown policy 'dpak'"):
        Engine(Ledger(Accounting("basic")), AllUnlocked(), "dpak")
