"""The discrete-event simulator: a driver of the shared engine on virtual time (simpy).

Blocks and claims arrive as simpy processes and go into the same `Engine` the
offline commands, the budget service and the operator use; every round is
`Engine.round`. The simulator only decides *when* things happen:

- offline: every block and claim is present at t=0; one step.
- batch: a step every `period` T, from t=0 (DPack §3.4).
- on_arrival: a step after every claim or block arrival (PrivateKube), plus a
  step every `period` while time-based unlocking (per_step, lifetime) releases budget.

At one instant, arrivals always come before the step, so a claim arriving at a
step's time is considered by it. A run ends once every block and claim has
arrived and no further step can change anything: nothing pending, no pending
claim could fit even the whole remaining budget, or no budget is left to unlock
(or at `horizon`). It always terminates: arrivals are finite, and time-based
unlocking completes after a bounded time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
import simpy

from dpsched.core import (
    BlockSpec,
    ClaimSpec,
    ClaimState,
    Condition,
    DatasetSelector,
    ExplicitSelector,
    Ledger,
    Lifetime,
    PerStep,
    RecentSelector,
    rows_fit,
)
from dpsched.core.admission import TOLERANCE
from dpsched.engine import Engine
from dpsched.engine.users import UserBlocks, UserCounter
from dpsched.sim.arrivals import claim_arrivals
from dpsched.sim.config import SimConfig
from dpsched.sim.results import SimResult
from dpsched.sim.workloads.base import Task, elastic_range
from dpsched.sim.workloads.registry import generate_tasks

USER_GROUPS = DatasetSelector(dataset="users")

Progress = Callable[[int, int], None]
"""Called after each step with (claims arrived so far, total claims)."""
TIMELINE_POINTS = 200
"""Steps kept in the per-block consumption timeline (evenly spaced, last one included)."""


def seeds(seed: int) -> tuple[int, int, int]:
    """Independent streams for the workload, the arrivals and random block picks, so that
    changing the scheduler never changes which tasks arrive when."""
    workload, arrivals, selection = np.random.SeedSequence(seed).generate_state(3)
    return int(workload), int(arrivals), int(selection)


def build_tasks(config: SimConfig) -> list[Task]:
    return generate_tasks(
        config.workload.name,
        n_tasks=config.workload.n_tasks,
        seed=seeds(config.seed)[0],
        params=config.workload.params,
        n_blocks=config.blocks.count,
        path=config.workload.path,
    )


class Simulator:
    def __init__(
        self,
        config: SimConfig,
        tasks: Sequence[Task] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.engine = Engine(
            Ledger(config.make_accounting()),
            config.scheduler.make_unlocking(),
            config.scheduler.policy,
            config.scheduler.options,
        )
        self.ledger = self.engine.ledger
        self.tasks = list(tasks) if tasks is not None else build_tasks(config)
        _, arrival_seed, selection_seed = seeds(config.seed)
        self.arrivals = claim_arrivals(config, self.tasks, np.random.default_rng(arrival_seed))
        self._pick = np.random.default_rng(selection_seed)
        self._progress = progress
        self._width = len(str(max(len(self.tasks) - 1, 0)))
        self._submitted = 0
        self._blocks_added = 0
        self._steps = 0
        self._cpu = 0.0
        self._timeline: list[tuple[float, np.ndarray, np.ndarray]] = []
        self.env = simpy.Environment()
        self._first_block = self.env.event()
        self._granted_last = False
        self._arrivals: simpy.Event = self.env.event()
        self._selectors: dict[int, RecentSelector] = {}
        semantics = config.semantics
        self._users: UserBlocks | None = None
        if semantics.kind != "event":
            counter = UserCounter(
                semantics.epsilon_count, semantics.beta, np.random.default_rng(selection_seed + 1)
            )
            self._users = UserBlocks(
                self.engine,
                counter,
                epsilon=config.blocks.epsilon,
                delta=config.blocks.delta,
                group=semantics.group,
            )

    # ------------------------------------------------------------ arrivals
    def _block_times(self) -> np.ndarray:
        blocks = self.config.blocks
        if self.config.scheduler.mode == "offline":
            return np.zeros(blocks.count)
        return blocks.arrival_times()

    def _add_block(self, now: float) -> None:
        """One period's blocks: a day block (event), or the user blocks the DP count of
        users allows (user, user_time)."""
        j = self._blocks_added
        blocks = self.config.blocks
        if self._users is None:
            spec = BlockSpec(
                id=f"b{j:04d}",
                epsilon=blocks.epsilon,
                delta=blocks.delta,
                arrival=now,
                dimensions={"time": j},
            )
            self.engine.add_block(spec, now)
        elif self.config.semantics.kind == "user":
            self._users.release(self.config.semantics.users_per_period, now)
        else:
            self._users.release_window(self.config.semantics.users_per_period, now, j)
        self._blocks_added += 1
        if not self._first_block.triggered and self.ledger.blocks:
            self._first_block.succeed()

    def _submit(self, i: int, now: float) -> None:
        task = self.tasks[i]
        available = self._blocks_added
        k = min(task.n_blocks, available)
        options = self.config.claims
        selector: RecentSelector | ExplicitSelector | DatasetSelector
        flexible: dict[str, Any] = {}
        if self._users is not None:
            selector = self._user_selector(task.n_blocks)
        elif options.choose_among is not None:
            # Any k of the `choose_among` most recent blocks with room, at grant time.
            selector = self._recent(max(options.choose_among, task.n_blocks))
            flexible = {"min_blocks": task.n_blocks, "max_blocks": task.n_blocks}
        elif task.selection == "most_recent":
            selector = self._recent(max(k, 1))
        else:
            chosen = np.sort(self._pick.choice(available, size=k, replace=False))
            selector = ExplicitSelector(ids=tuple(f"b{j:04d}" for j in chosen))
        demand = task.demand.spec(self.ledger.accounting)
        if options.elastic is not None and task.demand.mechanism is not None:
            ranged = elastic_range(task.demand.mechanism, task.demand, options.elastic)
            demand = ranged if ranged is not None else demand
        # Every field was validated when the workload and config were built; validating
        # 100,000 specs again costs more than simulating them.
        spec = ClaimSpec.model_construct(
            id=f"c{i:0{self._width}d}",
            weight=task.weight,
            arrival=now,
            timeout=self.config.scheduler.timeout,
            blocks=selector,
            demand=demand,
            **flexible,
        )
        self.engine.submit(spec, now)
        self._submitted += 1

    def _user_selector(self, periods: int) -> DatasetSelector:
        """User DP: every user group. User-Time DP: every group's blocks of the last
        `periods` periods."""
        if self.config.semantics.kind == "user":
            return USER_GROUPS
        last = self._blocks_added - 1
        window = Condition(dimension="time", op="in", value=(last - periods + 1.0, last + 1.0))
        return DatasetSelector(dataset=USER_GROUPS.dataset, where=(window,))

    def _recent(self, count: int) -> RecentSelector:
        selector = self._selectors.get(count)
        if selector is None:
            selector = self._selectors[count] = RecentSelector(most_recent=count)
        return selector

    def _blocks_process(self) -> Generator[simpy.Event, Any, None]:
        times = self._block_times()
        position = 0
        while position < times.size:
            yield self.env.timeout(max(times[position] - self.env.now, 0.0))
            while position < times.size and times[position] <= self.env.now:
                self._add_block(self.env.now)
                position += 1
            if self.config.scheduler.mode == "on_arrival":
                self._step()

    def _claims_process(self) -> Generator[simpy.Event, Any, None]:
        times = self.arrivals
        position = 0
        while position < times.size:
            yield self.env.timeout(max(times[position] - self.env.now, 0.0))
            if not self._first_block.triggered:
                # Claims select among arrived blocks; early ones wait for the first block.
                yield self._first_block
            while position < times.size and times[position] <= self.env.now:
                self._submit(position, self.env.now)
                position += 1
            if self.config.scheduler.mode == "on_arrival":
                self._step()

    # ------------------------------------------------------------ stepping
    def _step(self) -> None:
        now = float(self.env.now)
        start = time.process_time()
        outcome = self.engine.round(now)
        self._cpu += time.process_time() - start
        self._granted_last = bool(outcome.granted)
        self._steps += 1
        used = self.engine.used_fraction()
        self._timeline.append((now, used, self.ledger.budget.unlocked_fraction.copy()))
        if self._progress is not None:
            self._progress(self._submitted, len(self.tasks))

    @property
    def timeline(self) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """(time, used fraction per block, unlocked fraction per block) after each step."""
        return self._timeline

    @property
    def steps(self) -> int:
        return self._steps

    @property
    def scheduler_time_s(self) -> float:
        """CPU time spent inside scheduling steps (policy, fit checks, grants)."""
        return self._cpu

    def _arrivals_done(self) -> bool:
        return self._submitted == len(self.tasks) and self._blocks_added == self.config.blocks.count

    def _time_unlocking(self) -> bool:
        return isinstance(self.engine.unlocking, PerStep | Lifetime)

    def _finished(self) -> bool:
        if self.config.horizon is not None and self.env.now >= self.config.horizon - TOLERANCE:
            return True
        if not self._arrivals_done():
            return False
        if self.ledger.pending_count == 0:
            return True
        if not self._time_unlocking() or (self.ledger.budget.unlocked_fraction >= 1.0).all():
            return True
        if (self.ledger.budget.reserved > 0).any():
            # Reserved shares count only for their own claims, which the early exit below
            # does not see: wait for unlocking to complete instead.
            return False
        # An early exit only: a step that granted something will be followed by another.
        return not self._granted_last and not self.engine.could_ever_fit()

    def _controller(self) -> Generator[simpy.Event, Any, None]:
        mode = self.config.scheduler.mode
        period = self.config.scheduler.period
        if mode == "offline":
            yield self.env.timeout(0)
            self._step()
            return
        if mode == "on_arrival" and not self._time_unlocking():
            while not self._arrivals_done():
                yield self._arrivals
            self._step()
            return
        next_time = 0.0
        while True:
            yield self.env.timeout(max(next_time - self.env.now, 0.0))
            yield self.env.timeout(0)  # let arrivals at this instant go first
            self._step()
            if self._finished():
                return
            next_time += period

    # ------------------------------------------------------------ running
    def run(self) -> SimResult:
        wall = time.perf_counter()
        blocks = self.env.process(self._blocks_process())
        claims = self.env.process(self._claims_process())
        self._arrivals = self.env.all_of([blocks, claims])
        controller = self.env.process(self._controller())
        self.env.run(until=controller)
        return collect(self, wall_time_s=time.perf_counter() - wall)


def _quantile(values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q)) if values.size else None


def collect(sim: Simulator, wall_time_s: float) -> SimResult:
    """A finished run's report, read from the simulator's state. It lives here, beside
    what it reads, so that `results` (the report's shape and files) needs nothing from
    the simulator."""
    config = sim.config
    ledger = sim.ledger
    fair_n = config.fair_share_n
    usable = ledger.budget.usable
    claims = []
    delays = []
    total_weight = 0.0
    counts = dict.fromkeys(ClaimState, 0)
    fair_allocated = 0
    grants_per_block = np.zeros(len(ledger.blocks), dtype=np.int64)
    for claim in ledger.claims:
        counts[claim.state] += 1
        rows = claim.block_index
        fair = bool(
            rows_fit(claim.demand, ledger.budget.capacity[rows] / fair_n, usable[rows]).all()
        )
        granted = claim.allocated_at is not None
        delay = claim.allocated_at - claim.arrival if claim.allocated_at is not None else None
        if granted:
            delays.append(delay)
            total_weight += claim.weight
            fair_allocated += fair
            grants_per_block[rows] += 1
        task = sim.tasks[int(claim.id[1:])]
        claims.append(
            {
                "id": claim.id,
                "task": task.name,
                "weight": claim.weight,
                "n_blocks": len(claim.block_ids),
                "arrival": claim.arrival,
                "state": claim.state.value,
                "allocated_at": claim.allocated_at,
                "delay": delay,
                "fair_share": fair,
                "reason": claim.reason,
            }
        )
    n_allocated = len(delays)
    delay_array = np.asarray(delays, dtype=float)
    used = sim.engine.used_fraction()
    blocks = [
        {
            "id": spec.id,
            "arrival": spec.arrival,
            "unlocked_fraction": float(ledger.budget.unlocked_fraction[j]),
            "used_fraction": float(used[j]),
            "spent_epsilon": ledger.spent_epsilon(spec.id),
            "delta": spec.delta,
            "n_allocated": int(grants_per_block[j]),
        }
        for j, spec in enumerate(ledger.blocks)
    ]
    steps = sim.timeline
    keep = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), TIMELINE_POINTS)).astype(int))
    timeline = [
        {
            "time": t,
            "block": ledger.blocks[j].id,
            "used_fraction": float(u[j]),
            "unlocked_fraction": float(f[j]),
        }
        for t, u, f in (steps[i] for i in keep)
        for j in range(u.size)
    ]
    violations = ledger.invariant_violations()
    summary: dict[str, Any] = {
        "policy": config.scheduler.policy,
        "n_submitted": len(claims),
        "n_allocated": n_allocated,
        "total_weight": total_weight,
        "scheduler_time_s": sim.scheduler_time_s,
        "wall_time_s": wall_time_s,
        "mean_delay": float(delay_array.mean()) if n_allocated else None,
        "median_delay": _quantile(delay_array, 0.5),
        "p90_delay": _quantile(delay_array, 0.9),
        "max_delay": float(delay_array.max()) if n_allocated else None,
        "n_rejected": counts[ClaimState.REJECTED],
        "n_expired": counts[ClaimState.EXPIRED],
        "n_pending_at_end": counts[ClaimState.PENDING],
        "fair_share_n": fair_n,
        "fair_share_of_allocated": fair_allocated / n_allocated if n_allocated else None,
        "mode": config.scheduler.mode,
        "workload": config.workload.name,
        "accounting": config.accounting,
        "seed": config.seed,
        "n_blocks": len(ledger.blocks),
        "n_steps": sim.steps,
        "end_time": float(sim.env.now),
        "budget_violations": len(violations),
    }
    return SimResult(config, summary, claims, blocks, timeline, ledger)
