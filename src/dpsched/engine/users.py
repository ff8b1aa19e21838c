"""User DP blocks (PrivateKube §5.3): one block per group of user ids, made grantable only
when a DP count of the users says, with high probability, that all of them exist.

Under User DP nobody may learn which users exist, so the front end does not add a user
group's block when its first user appears. Instead a DP counter of users is released
every period and the group [k G, (k + 1) G) becomes a block once the counter's *lower*
bound reaches (k + 1) G: with probability 1 - beta all its users exist, so no claim
spends budget on users that are not there yet. Each block pays the counter once, on
creation: its capacity is the global guarantee's minus the counter's cost (dp-accounting's
Laplace curve at scale 1 / epsilon_count, or epsilon_count itself in basic accounting),
PrivateKube's eps_G - ln(1/delta_G)/(alpha - 1) - counter(alpha).

The counter releases, every period, the number of *new* users plus Laplace(1 /
epsilon_count) noise: a user is new in exactly one period, so every user is in one
release only and the whole counter is epsilon_count-DP per user. The published count
after k releases is the sum of the noisy increments: the true count plus the sum S of
k independent Laplace(b) variables, b = 1 / epsilon_count. Its lower bound is
count - t(k, beta), with the smaller of two tails, each P(S > t) <= beta:

- union: S > t needs one term above t / k, each with probability exp(-t / (k b)) / 2,
  so t = k b ln(k / (2 beta));
- sub-exponential (Chan, Shi and Song 2011, Lemma 2.8): with nu = b sqrt(k),
  P(S > t) <= exp(-t^2 / (8 nu^2)) for t < 2 sqrt(2) nu^2 / b, so
  t = nu sqrt(8 ln(1 / beta)) when that t is below 2 sqrt(2) k b.

The upper bound is count + t(k, beta) (the noise is symmetric).

User-Time DP splits each user group by time window as well: every period, each group
whose first id is below the counter's *upper* bound gets a block for that window (the
first time its users may have contributed), with a `time` dimension; a window's block
that turns out empty costs nothing later, since no data can enter it once the window
has passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dpsched.budget import Accounting
from dpsched.budget.curves import rdp_curve
from dpsched.budget.mechanisms import Laplace
from dpsched.core import BlockSpec
from dpsched.core.blocks import DimensionValue
from dpsched.engine.engine import Engine
from dpsched.errors import InputError


def tail(releases: int, scale: float, beta: float) -> float:
    """t with P(sum of `releases` Laplace(scale) > t) <= beta (see the module docstring)."""
    if releases <= 0:
        return 0.0
    union = releases * scale * math.log(releases / (2.0 * beta))
    nu = scale * math.sqrt(releases)
    concentrated = nu * math.sqrt(8.0 * math.log(1.0 / beta))
    if concentrated < 2.0 * math.sqrt(2.0) * releases * scale:
        return min(union, concentrated)
    return union


@dataclass
class UserCounter:
    """The DP count of users: per period, the new users plus Laplace(1 / epsilon) noise."""

    epsilon: float
    beta: float
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    releases: int = 0
    count: float = 0.0
    """The published (noisy) number of users so far."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise InputError("epsilon_count", f"must be a number > 0, got {self.epsilon}")
        if not 0.0 < self.beta < 0.5:
            raise InputError("beta", f"must be in (0, 0.5), got {self.beta}")

    @property
    def scale(self) -> float:
        return 1.0 / self.epsilon

    def release(self, new_users: int) -> float:
        """Publish one period's count (the true number of new users goes in, noised)."""
        if new_users < 0:
            raise InputError("new_users", f"must be >= 0, got {new_users}")
        self.count += new_users + float(self.rng.laplace(0.0, self.scale))
        self.releases += 1
        return self.count

    @property
    def lower(self) -> float:
        """With probability >= 1 - beta, at most the true number of users."""
        return self.count - tail(self.releases, self.scale, self.beta)

    @property
    def upper(self) -> float:
        """With probability >= 1 - beta, at least the true number of users."""
        return self.count + tail(self.releases, self.scale, self.beta)


def counter_cost(accounting: Accounting, epsilon: float) -> np.ndarray:
    """What the counter costs every user block: its Laplace curve from dp-accounting
    (rdp), or epsilon (basic)."""
    if accounting.mode == "basic":
        return np.array([epsilon])
    return rdp_curve(Laplace(mechanism="laplace", epsilon=epsilon), accounting.alphas)


@dataclass
class UserBlocks:
    """Adds user-group blocks to an engine: as the counter's lower bound passes them
    (User DP), or per time window once its upper bound reaches them (User-Time DP)."""

    engine: Engine
    counter: UserCounter
    epsilon: float
    """The global guarantee eps_G of every block, before the counter's cost."""
    delta: float | None
    group: int
    """User ids per block."""
    dataset: str = "users"
    made: int = 0
    """Groups made into blocks so far (ids below made * group)."""

    def __post_init__(self) -> None:
        if self.group < 1:
            raise InputError("group", f"must be >= 1, got {self.group}")
        accounting = self.engine.ledger.accounting
        full = accounting.capacity(self.epsilon, self.delta, "users")
        self.capacity = np.maximum(full - counter_cost(accounting, self.counter.epsilon), 0.0)
        if not (self.capacity > 0).any():
            raise InputError("epsilon_count", "the counter would take every block's whole budget")

    def release(self, new_users: int, time: float) -> list[int]:
        """One period: publish the count, then add the groups now surely complete."""
        self.counter.release(new_users)
        complete = max(0, math.floor(self.counter.lower / self.group))
        added = []
        while self.made < complete:
            added.append(self.engine.add_block(self._block(self.made, time, None), time))
            self.made += 1
        return added

    def release_window(self, new_users: int, time: float, window: int) -> list[int]:
        """User-Time DP: publish the count, then add this window's block of every group
        whose first id is below the upper bound."""
        self.counter.release(new_users)
        groups = max(0, math.ceil(self.counter.upper / self.group))
        return [self.engine.add_block(self._block(k, time, window), time) for k in range(groups)]

    def _block(self, group: int, time: float, window: int | None) -> BlockSpec:
        low = group * self.group
        dimensions: dict[str, DimensionValue] = {"user_id": (float(low), float(low + self.group))}
        name = f"{self.dataset}-{low}"
        if window is not None:
            dimensions["time"] = window
            name += f"-t{window}"
        return BlockSpec(
            id=name,
            dataset=self.dataset,
            arrival=time,
            capacity=tuple(self.capacity.tolist()),
            dimensions=dimensions,
            size=self.group,  # its users: the data a User DP claim counts
        )
