"""Simulated claims that choose their blocks and ask for epsilon ranges (`claims` in a
run config): the same engine code paths as the service, driven on virtual time."""

from __future__ import annotations

from typing import Any

import pytest

from dpsched.core import ClaimState
from dpsched.errors import InputError
from dpsched.sim.config import parse_config
from dpsched.sim.simulator import Simulator

AMAZON: dict[str, Any] = {
    "seed": 3,
    "accounting": "rdp",
    "blocks": {"initial": 2, "total": 12, "epsilon": 10, "delta": 1e-7},
    "workload": {"name": "amazon", "n_tasks": 150, "params": {"max_blocks": 4}},
    "scheduler": {"policy": "dpf", "period": 1, "unlocking": {"kind": "per_arrival", "n": 20}},
}


def simulate(workload: dict[str, Any] | None = None, **claims: Any) -> Simulator:
    config = {**AMAZON, "claims": claims} | ({"workload": workload} if workload else {})
    simulator = Simulator(parse_config(config))
    result = simulator.run()
    assert result.summary["budget_violations"] == 0
    return simulator


def test_claims_choose_among_recent_blocks_with_room() -> None:
    fixed = simulate()
    flexible = simulate(choose_among=6)
    claims = list(flexible.ledger.claims)
    assert all(c.flex is not None and c.flex.max_blocks == c.flex.min_blocks for c in claims)
    granted = [c for c in claims if c.state is ClaimState.ALLOCATED]
    assert granted and all(len(c.block_ids) == c.flex.min_blocks for c in granted if c.flex)
    assert all(c.flex is None for c in fixed.ledger.claims)


def test_elastic_ranges_grant_between_their_ends() -> None:
    # PrivateKube's mice and elephants: two Gaussian demands, so two ranges to calibrate.
    workload = {"name": "privatekube", "n_tasks": 150, "params": {"last_block_probability": 0.75}}
    simulator = simulate(workload, elastic=0.5)
    granted = [c for c in simulator.ledger.claims if c.grant is not None]
    assert granted
    for claim in granted:
        assert claim.elastic is not None
        low, high = claim.elastic.epsilon
        assert low * (1 - 1e-6) <= claim.grant["epsilon"] <= high
    assert simulator.ledger.invariant_violations() == []


def test_ranges_need_rdp_accounting() -> None:
    with pytest.raises(InputError, match=r"claims\.elastic: epsilon ranges need accounting: rdp"):
        parse_config({**AMAZON, "accounting": "basic", "claims": {"elastic": 0.5}})
    with pytest.raises(InputError, match="claims"):
        parse_config({**AMAZON, "claims": {"choose": 3}})


@pytest.mark.parametrize("kind", ["user", "user_time"])
def test_user_semantics_run_on_user_blocks_within_budget(kind: str) -> None:
    config = {
        **AMAZON,
        "blocks": {"initial": 1, "total": 15, "epsilon": 10, "delta": 1e-7},
        "semantics": {"kind": kind, "users_per_period": 1000, "group": 2000},
    }
    simulator = Simulator(parse_config(config))
    result = simulator.run()
    assert result.summary["budget_violations"] == 0
    ledger = simulator.ledger
    blocks = ledger.blocks
    assert blocks and all(b.dataset == "users" and "user_id" in b.dimensions for b in blocks)
    # Groups appear only once the count's bound passes them: at most 15,000 users exist.
    assert max(b.dimensions["user_id"][1] for b in blocks) <= 15_000 + 2000
    if kind == "user_time":
        assert {b.dimensions["time"] for b in blocks} <= set(range(15))
    granted = [c for c in ledger.claims if c.state is ClaimState.ALLOCATED]
    assert granted and all(b.startswith("users-") for c in granted for b in c.block_ids)
    assert ledger.invariant_violations() == []


def test_event_semantics_grant_more_than_user_semantics() -> None:
    counts = {}
    for kind in ("event", "user"):
        config = {**AMAZON, "semantics": {"kind": kind, "group": 2000}}
        counts[kind] = Simulator(parse_config(config)).run().summary["n_allocated"]
    assert counts["event"] > counts["user"] > 0
