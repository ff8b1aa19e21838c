"""What workload generators return.

Online workloads are lists of `Task`: a cost, how many blocks and which ones (most
recent or random), a weight, and optionally the trace's inter-arrival gap. Blocks
and arrival times belong to the run's config, not to the workload, so one task list
replays under any block schedule. A task's cost is kept in a form both accounting
modes can read: its (epsilon, delta) for basic composition, and its RDP curve as a
mechanism (evaluated by dp-accounting at the run's orders) or as trace values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np

from dpsched.budget import (
    Accounting,
    DemandSpec,
    EpsilonDemand,
    MechanismSpec,
    RdpDemand,
    dp_epsilon,
    rdp_curve,
    rdp_to_epsilon,
)
from dpsched.budget.demand import ElasticDemand
from dpsched.budget.mechanisms import Gaussian, Laplace, SubsampledGaussian
from dpsched.core import BlockSpec, ClaimSpec
from dpsched.errors import InputError

Selection = Literal["most_recent", "random"]


@dataclass(frozen=True, eq=False)
class TaskDemand:
    """A task's privacy cost under either accounting mode.

    Exactly one of `mechanism` (curve from dp-accounting at the run's orders) or
    `rdp` (values at `alphas`, from a trace or a rescaled curve). `epsilon` is the
    task's (epsilon, delta)-DP cost for basic composition; when not given it is
    converted from the RDP curve on first use (generators leave it lazy because
    the conversion is the slowest part of building 60k tasks).
    """

    delta: float
    mechanism: MechanismSpec | None = None
    alphas: tuple[float, ...] = ()
    rdp: tuple[float, ...] = ()
    epsilon: float | None = None

    def __post_init__(self) -> None:
        if (self.mechanism is None) == (not self.rdp):
            raise InputError("demand", "give exactly one of a mechanism or an RDP curve")
        if self.rdp and len(self.rdp) != len(self.alphas):
            raise InputError("demand.rdp", "needs one value per order in 'alphas'")

    @cached_property
    def basic_epsilon(self) -> float:
        if self.epsilon is not None:
            return self.epsilon
        if self.mechanism is not None:
            return dp_epsilon(self.mechanism, self.delta)
        return rdp_to_epsilon(self.alphas, np.asarray(self.rdp), self.delta)

    def curve(self, alphas: tuple[float, ...]) -> np.ndarray:
        """RDP epsilon at `alphas`: from dp-accounting, or picked from the trace's orders."""
        if self.mechanism is not None:
            return rdp_curve(self.mechanism, alphas)
        if alphas == self.alphas:
            return np.asarray(self.rdp, dtype=float)
        lookup = dict(zip(self.alphas, self.rdp, strict=True))
        missing = [a for a in alphas if a not in lookup]
        if missing:
            raise InputError(
                "alphas",
                f"the workload's RDP curves have no value at orders {missing}; "
                f"they cover {list(self.alphas)}",
            )
        return np.array([lookup[a] for a in alphas], dtype=float)

    def spec(self, accounting: Accounting) -> DemandSpec:
        """The claim demand under `accounting`, built once per task demand and mode."""
        key = (accounting.mode, accounting.alphas)
        cached = self._specs.get(key)
        if cached is None:
            cached = self._build_spec(accounting)
            self._specs[key] = cached
        return cached

    @cached_property
    def _specs(self) -> dict[tuple[str, tuple[float, ...]], DemandSpec]:
        return {}

    def _build_spec(self, accounting: Accounting) -> DemandSpec:
        if accounting.mode == "basic":
            return EpsilonDemand(epsilon=self.basic_epsilon)
        if self.mechanism is not None:
            return self.mechanism
        return RdpDemand(rdp=tuple(self.curve(accounting.alphas).tolist()))


@dataclass(frozen=True, eq=False)
class Task:
    """One generated task before it meets a ledger."""

    name: str
    demand: TaskDemand
    n_blocks: int
    selection: Selection = "most_recent"
    weight: float = 1.0
    gap: float | None = None
    """Trace inter-arrival time before this task (Alibaba's relative_submit_time)."""

    def __post_init__(self) -> None:
        # Checked here once, so the simulator can submit tasks without re-validating.
        if not (np.isfinite(self.weight) and self.weight > 0):
            raise InputError(f"tasks.{self.name}.weight", f"must be > 0, got {self.weight}")
        if self.n_blocks < 1:
            raise InputError(f"tasks.{self.name}.n_blocks", f"must be >= 1, got {self.n_blocks}")


@dataclass(frozen=True)
class Workload:
    """An offline instance: accounting, blocks and fully resolved claims."""

    accounting: Accounting
    blocks: tuple[BlockSpec, ...]
    tasks: tuple[ClaimSpec, ...]

    def to_instance_dict(self) -> dict[str, Any]:
        """The offline instance format (see README), e.g. to ship as a YAML example."""
        data: dict[str, Any] = {"accounting": self.accounting.mode}
        if self.accounting.mode == "rdp":
            data["alphas"] = list(self.accounting.alphas)
        data["delta"] = self.accounting.delta
        data["blocks"] = [b.model_dump(exclude_defaults=True) for b in self.blocks]
        data["tasks"] = [t.model_dump(mode="json", exclude_defaults=True) for t in self.tasks]
        return data


def elastic_range(mechanism: MechanismSpec, demand: TaskDemand, low: float) -> ElasticDemand | None:
    """The task's mechanism with an epsilon range [low x target, target] instead of its
    noise (None for a mechanism that has no range form)."""
    target = demand.basic_epsilon
    epsilon = (low * target, target)
    if isinstance(mechanism, Laplace):
        return ElasticDemand(mechanism="laplace", epsilon=epsilon, steps=mechanism.count)
    if isinstance(mechanism, Gaussian):
        return ElasticDemand(
            mechanism="gaussian", epsilon=epsilon, delta=demand.delta, steps=mechanism.count
        )
    if isinstance(mechanism, SubsampledGaussian):
        return ElasticDemand(
            mechanism="subsampled_gaussian",
            epsilon=epsilon,
            delta=demand.delta,
            sampling_rate=mechanism.sampling_rate,
            steps=mechanism.steps * mechanism.count,
        )
    return None
