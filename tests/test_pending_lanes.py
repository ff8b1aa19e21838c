"""Knapsack lanes kept across online rounds (`PendingLanes`) change no decision: an
engine that keeps them grants, round after round, exactly what one that rebuilds every
knapsack from the claims of the step grants, and their counts are fresh knapsacks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsched.budget import Accounting
from dpsched.core import BlockSpec, Ledger, PerStep, snapshot
from dpsched.core.admission import TOLERANCE
from dpsched.engine import Engine
from dpsched.policies import lanes as lanes_module
from dpsched.policies.knapsack import knapsack_values

LEVELS = (0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 1.0, float("inf"))


def _engines(dims: int, n_unlock: int, recompute: int) -> tuple[Engine, Engine]:
    alphas = tuple(float(a) for a in (2, 3, 4, 8)[:dims])
    pair = []
    for _ in range(2):
        ledger = Ledger(Accounting("rdp", alphas))
        pair.append(
            Engine(ledger, PerStep(n_unlock, period=1.0), "dpack", {"recompute_every": recompute})
        )
    pair[1].memory = None
    return pair[0], pair[1]


@dataclass(frozen=True)
class Run:
    seed: int
    dims: int
    n_unlock: int
    recompute: int
    rounds: int
    equal: bool
    timeouts: bool


@st.composite
def online_runs(draw: st.DrawFn) -> Run:
    return Run(
        seed=draw(st.integers(0, 2**32 - 1)),
        dims=draw(st.integers(1, 4)),
        n_unlock=draw(st.sampled_from([1, 3, 10])),
        recompute=draw(st.sampled_from([0, 1, 2, 5])),
        rounds=draw(st.integers(3, 12)),
        equal=draw(st.booleans()) or draw(st.booleans()),
        timeouts=draw(st.booleans()),
    )


def _drive(run: Run, check_counts: bool = False) -> int:
    """Feed both engines the same blocks, claims and rounds; return claims granted."""
    rng = np.random.default_rng(run.seed)
    kept, fresh = _engines(run.dims, run.n_unlock, run.recompute)
    granted = 0
    claim = 0
    for t in range(run.rounds):
        for _ in range(int(rng.integers(0, 2)) + (t == 0)):
            j = kept.ledger.budget.capacity.shape[0]
            capacity = rng.choice([0.0, 1.0, 2.0], size=run.dims)
            capacity[0] = max(capacity[0], 1.0)
            block = BlockSpec(id=f"b{j}", capacity=tuple(capacity.tolist()))
            for engine in (kept, fresh):
                engine.add_block(block, time=float(t))
        m = kept.ledger.budget.capacity.shape[0]
        for _ in range(int(rng.integers(0, 9))):
            reads = rng.choice(m, size=int(rng.integers(1, min(m, 3) + 1)), replace=False)
            demand = rng.choice(LEVELS, size=run.dims)
            demand[0] = min(demand[0], 1.0)
            spec: dict[str, Any] = {
                "id": f"c{claim:03d}",
                "blocks": [f"b{j}" for j in sorted(reads.tolist())],
                "demand": {"rdp": demand.tolist()},
                "weight": 1.0 if run.equal else float(rng.integers(1, 4)),
            }
            if run.timeouts and rng.random() < 0.3:
                spec["timeout"] = float(rng.integers(1, 4))
            claim += 1
            for engine in (kept, fresh):
                engine.submit(dict(spec), float(t))
        a, b = kept.round(float(t) + 0.5), fresh.round(float(t) + 0.5)
        assert (a.granted, a.expired) == (b.granted, b.expired), f"round {t}"
        granted += len(a.granted)
        if check_counts:
            _assert_fresh_counts(kept)
    assert snapshot.to_dict(kept.ledger) == snapshot.to_dict(fresh.ledger)
    return granted


def _assert_fresh_counts(engine: Engine) -> None:
    """Every block's kept counts equal an equal-weight knapsack over its pending claims."""
    ledger, lanes = engine.ledger, engine.memory
    assert lanes is not None
    pending = ledger.pending_arrays()
    if pending.n == 0:
        return
    needed = np.zeros(ledger.budget.capacity.shape[0], dtype=bool)
    needed[pending.entry_block] = True
    lent = lanes.open(
        ledger, ledger.pending_set.index.view(), needed, ledger.budget.unlocked, pending
    )
    try:
        counts = lent.counts()
        for j in np.flatnonzero(needed).tolist():
            rows = pending.entry_block == j
            demand = pending.entry_demand[rows]
            values, _ = knapsack_values(
                demand, np.ones(demand.shape[0]), ledger.budget.unlocked[j], 0.05
            )
            open_orders = ledger.budget.usable[j] & (ledger.budget.unlocked[j] > TOLERANCE)
            assert counts[j][open_orders].tolist() == values[open_orders].tolist(), f"block {j}"
    finally:
        lent.close()


@settings(max_examples=60, deadline=None)
@given(online_runs())
def test_kept_lanes_grant_what_fresh_knapsacks_grant(run: Run) -> None:
    _drive(run)


@settings(max_examples=25, deadline=None)
@given(online_runs())
def test_kept_counts_are_fresh_knapsacks_after_every_round(run: Run) -> None:
    _drive(replace(run, equal=True), check_counts=True)


def test_lanes_start_over_when_superseded_builds_dominate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no slack every rebuild starts over; decisions stay the same."""
    monkeypatch.setattr(lanes_module, "REBUILD_SLACK", 0)
    runs = [Run(s, 3, 3, r, 10, equal=True, timeouts=True) for s in range(6) for r in (0, 2)]
    assert sum(_drive(run, check_counts=True) for run in runs) > 0


def test_lanes_of_a_long_run_stay_within_twice_the_pending_claims(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Blocks come and go and claims leave: what the lanes hold follows what is pending,
    not the history (a long-running service)."""
    monkeypatch.setattr(lanes_module, "REBUILD_SLACK", 0)
    engine, _ = _engines(2, 10, 0)
    largest = 0
    for t in range(60):
        engine.add_block(BlockSpec(id=f"b{t}", capacity=(1.0, 2.0)), time=float(t))
        for i in range(12):
            spec = {"id": f"c{t}-{i}", "blocks": {"most_recent": 2}, "arrival": t, "timeout": 3}
            engine.submit({**spec, "demand": {"rdp": [0.05 * (1 + i % 5), 0.3]}}, float(t))
        pending = engine.ledger.pending_arrays()
        largest = max(largest, pending.entry_block.size * 2)  # positions: entries x orders
        engine.round(float(t) + 0.5)
        assert engine.memory is not None
        # A round may add one build (at most every pending entry) after the check.
        assert engine.memory.held <= 2 * largest + largest
    assert engine.memory.held > 0 and largest < 200
