"""When each claim arrives, in virtual time units (one block interval is the unit)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dpsched.errors import InputError
from dpsched.sim.config import SimConfig
from dpsched.sim.workloads.base import Task


def arrival_kind(config: SimConfig, tasks: Sequence[Task]) -> str:
    kind = config.workload.arrival.kind
    if kind is not None:
        return kind
    return "trace" if tasks and all(t.gap is not None for t in tasks) else "poisson"


def arrival_rate(config: SimConfig, n_tasks: int) -> float:
    """Claims per time unit: the config's, else the `n_tasks` that arrive over time
    spread over the block-arrival window (one time unit if all blocks are at 0)."""
    if config.workload.arrival.rate is not None:
        return config.workload.arrival.rate
    return n_tasks / max(config.blocks.span, 1.0)


def claim_arrivals(
    config: SimConfig, tasks: Sequence[Task], rng: np.random.Generator
) -> np.ndarray:
    """Non-decreasing arrival times, one per task (all 0 in offline mode): the `initial`
    tasks at t=0, then the arrival process's instants in workload order."""
    n = len(tasks)
    if config.scheduler.mode == "offline":
        return np.zeros(n)
    initial = config.workload.arrival.initial
    if initial > n:
        raise InputError(
            "workload.arrival.initial", f"{initial} initial tasks, but the workload has {n}"
        )
    later = _process_times(config, tasks, n - initial, rng)
    return later if initial == 0 else np.concatenate([np.zeros(initial), later])


def _process_times(
    config: SimConfig, tasks: Sequence[Task], count: int, rng: np.random.Generator
) -> np.ndarray:
    """The arrival process's first `count` instants."""
    arrival = config.workload.arrival
    first = arrival.first_arrival
    kind = arrival_kind(config, tasks)
    if kind == "trace":
        if arrival.rate is not None:
            raise InputError(
                "workload.arrival.rate", "a trace keeps its own spacing; drop rate or kind"
            )
        if any(t.gap is None for t in tasks):
            raise InputError(
                "workload.arrival.kind",
                f"trace arrivals need inter-arrival gaps, which {config.workload.name} lacks",
            )
    if count == 0:
        return np.zeros(0)
    if kind == "trace":
        times = np.cumsum([float(t.gap or 0.0) for t in tasks])
        span = config.blocks.span
        if span <= 0 or times[-1] <= 0:
            return np.full(count, first or 0.0)
        # Alibaba-DP's relative_submit_time is scaled so that the whole trace (every row's
        # gap, also when the initial tasks leave some unused, as in the DPack artifact)
        # spans the block arrivals.
        scale = span / times[-1]
        if first is None:
            return np.asarray(times[:count] * scale)
        return np.asarray(first + np.concatenate([[0.0], times[: count - 1]]) * scale)
    rate = arrival_rate(config, count)
    if kind == "constant":
        return (first or 0.0) + np.arange(count) / rate
    # The same draws either way, so first_arrival moves a run's arrivals but not its stream.
    gaps = rng.exponential(1.0 / rate, size=count)
    if first is None:
        return np.cumsum(gaps)
    return first + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
