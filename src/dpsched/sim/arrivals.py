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
    """Claims per time unit: the config's, else the whole workload spread over the
    block-arrival window (one time unit if all blocks are at 0)."""
    if config.workload.arrival.rate is not None:
        return config.workload.arrival.rate
    return n_tasks / max(config.blocks.span, 1.0)


def claim_arrivals(
    config: SimConfig, tasks: Sequence[Task], rng: np.random.Generator
) -> np.ndarray:
    """Non-decreasing arrival times, one per task (all 0 in offline mode)."""
    n = len(tasks)
    if config.scheduler.mode == "offline":
        return np.zeros(n)
    kind = arrival_kind(config, tasks)
    if kind == "trace":
        if config.workload.arrival.rate is not None:
            raise InputError(
                "workload.arrival.rate", "a trace keeps its own spacing; drop rate or kind"
            )
        if any(t.gap is None for t in tasks):
            raise InputError(
                "workload.arrival.kind",
                f"trace arrivals need inter-arrival gaps, which {config.workload.name} lacks",
            )
        times = np.cumsum([float(t.gap or 0.0) for t in tasks])
        span = config.blocks.span
        if span <= 0 or times[-1] <= 0:
            return np.zeros(n)
        # Alibaba-DP's relative_submit_time is scaled so the trace spans the block arrivals.
        return np.asarray(times * (span / times[-1]))
    rate = arrival_rate(config, n)
    if kind == "constant":
        return np.arange(n) / rate
    return np.cumsum(rng.exponential(1.0 / rate, size=n))
