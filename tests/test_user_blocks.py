"""User DP blocks: the counter's lower bound covers the true count with probability at
least 1 - beta (checked by simulation), each block pays the counter's dp-accounting
curve once, and groups become blocks only once the bound says all their users exist."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dp_accounting import LaplaceDpEvent, rdp

from dpsched.budget import Accounting
from dpsched.core import AllUnlocked, Ledger
from dpsched.engine import Engine
from dpsched.engine.users import UserBlocks, UserCounter, counter_cost, tail
from dpsched.errors import InputError

ALPHAS = (2.0, 4.0, 8.0, 16.0)


@pytest.mark.parametrize("releases", [1, 3, 10, 60])
@pytest.mark.parametrize("beta", [0.01, 0.05, 0.2])
def test_the_bounds_cover_the_true_count_with_probability_one_minus_beta(
    releases: int, beta: float
) -> None:
    rng = np.random.default_rng(releases * 1000 + int(beta * 100))
    trials, epsilon = 20_000, 0.5
    noise = rng.laplace(0.0, 1 / epsilon, size=(trials, releases)).sum(axis=1)
    t = tail(releases, 1 / epsilon, beta)
    below = np.mean(noise > t)  # the lower bound count - t is above the truth
    above = np.mean(noise < -t)
    slack = 4 * math.sqrt(beta * (1 - beta) / trials)
    assert below <= beta + slack and above <= beta + slack
    assert t > 0


def test_the_counter_publishes_noisy_sums_and_its_bounds() -> None:
    counter = UserCounter(epsilon=1.0, beta=0.05, rng=np.random.default_rng(3))
    truth = 0
    for new in (100, 50, 0, 200):
        truth += new
        counter.release(new)
    assert counter.releases == 4
    assert counter.lower <= truth <= counter.upper
    assert counter.upper - counter.lower == pytest.approx(2 * tail(4, 1.0, 0.05))
    with pytest.raises(InputError, match="beta"):
        UserCounter(epsilon=1.0, beta=0.7)


def test_every_user_block_pays_the_counter_once_from_dp_accounting() -> None:
    accounting = Accounting("rdp", ALPHAS)
    accountant = rdp.RdpAccountant(orders=list(ALPHAS))
    accountant.compose(LaplaceDpEvent(noise_multiplier=1 / 0.1))
    assert np.allclose(counter_cost(accounting, 0.1), accountant._rdp)
    engine = Engine(Ledger(accounting), AllUnlocked(), "fcfs")
    counter = UserCounter(epsilon=0.1, beta=0.05, rng=np.random.default_rng(0))
    users = UserBlocks(engine, counter, epsilon=10.0, delta=1e-7, group=1000)
    full = accounting.capacity(10.0, 1e-7)
    assert np.allclose(users.capacity, np.maximum(full - accountant._rdp, 0.0))


def test_groups_become_blocks_only_below_the_lower_bound_and_flexible_claims_use_them() -> None:
    engine = Engine(Ledger(Accounting("rdp", ALPHAS)), AllUnlocked(), "fcfs")
    counter = UserCounter(epsilon=1.0, beta=0.05, rng=np.random.default_rng(1))
    users = UserBlocks(engine, counter, epsilon=10.0, delta=1e-7, group=1000)
    claim = {
        "id": "model",
        "blocks": {"dataset": "users", "where": ["user_id in [0, 3000)"]},
        "min_blocks": 3,
        "demand": {"zcdp": 0.05},
    }
    engine.submit(claim, 0.0)
    truth, made, grants = 0, [], []
    for day, new in enumerate([1500, 1000, 900, 2000], start=1):
        truth += new
        added = users.release(new, float(day))
        for index in added:  # every block made holds users that exist
            _low, high = engine.ledger.blocks[index].dimensions["user_id"]
            assert high <= truth
        made.append(len(engine.ledger.blocks))
        grants.append(engine.round(float(day)).granted)
    # The noise is a few users (epsilon_count 1): groups appear as the truth passes them.
    assert made == [1, 2, 3, 5]
    assert grants == [[], [], ["model"], []]
    claim = engine.ledger.claim("model")
    assert claim.block_ids == ("users-0", "users-1000", "users-2000")
    assert engine.ledger.data_of(claim) == 3000


def test_user_time_windows_open_every_group_the_upper_bound_has_reached() -> None:
    engine = Engine(Ledger(Accounting("rdp", ALPHAS)), AllUnlocked(), "fcfs")
    counter = UserCounter(epsilon=1.0, beta=0.05, rng=np.random.default_rng(2))
    users = UserBlocks(engine, counter, epsilon=10.0, delta=1e-7, group=1000)
    truth = 0
    for window, new in enumerate([1500, 1000, 0]):
        truth += new
        users.release_window(new, float(window), window)
        made = [b for b in engine.ledger.blocks if b.dimensions["time"] == window]
        lows = [b.dimensions["user_id"][0] for b in made]
        assert lows == [1000.0 * k for k in range(len(lows))]
        assert max(lows) < counter.upper and truth <= 1000 * len(lows)  # nobody left out
    claim = {
        "id": "recent",
        "blocks": {"dataset": "users", "where": ["time in [1, 3)", "user_id in [0, 2000)"]},
        "demand": {"zcdp": 0.01},
    }
    made = engine.submit(claim, 3.0)
    assert made.block_ids == ("users-0-t1", "users-1000-t1", "users-0-t2", "users-1000-t2")
