"""One simulation run as a validated YAML config.

The top-level keys (seed, accounting, alphas, blocks, workload, scheduler) are a
contract: scripts outside the project drive the simulator with them. Every
unknown key or bad value is refused with its dotted path.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dpsched.engine.config import AccountingConfig, PolicyConfig
from dpsched.errors import InputError, from_validation_error
from dpsched.readers import read_mapping
from dpsched.sim.workloads.registry import GENERATORS, WORKLOAD_NAMES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BlocksConfig(_Strict):
    """`initial` blocks at t=0, then one every `interval` time units up to `total`, the
    first of them at `first_arrival`."""

    initial: int = Field(1, ge=0)
    total: int | None = Field(None, ge=1, description="default: initial")
    epsilon: float = Field(10.0, gt=0, allow_inf_nan=False)
    delta: float = Field(1e-7, gt=0, lt=1)
    interval: float = Field(1.0, gt=0, allow_inf_nan=False)
    first_arrival: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="time of the first block after the initial ones; default: one interval "
        "(a block is a period's data, complete at the period's end); the DPack artifact: 0",
    )

    @model_validator(mode="after")
    def _enough(self) -> Self:
        if self.total is None:
            self.total = self.initial
        if self.total < max(self.initial, 1):
            raise ValueError("total must be >= initial and >= 1")
        return self

    @property
    def count(self) -> int:
        assert self.total is not None
        return self.total

    @property
    def span(self) -> float:
        """The window claims arrive in: one interval per block after the initial ones (with
        the default `first_arrival`, t=0 to the last block's arrival)."""
        return (self.count - self.initial) * self.interval

    def arrival_times(self) -> np.ndarray:
        """When each block arrives online: the initial ones at 0, the others every
        interval from `first_arrival`."""
        if self.first_arrival is None:
            online = np.arange(1, self.count - self.initial + 1) * self.interval
        else:
            online = self.first_arrival + np.arange(self.count - self.initial) * self.interval
        return np.concatenate([np.zeros(self.initial), online])


class ArrivalConfig(_Strict):
    """When claims arrive. Default: the trace's gaps if the workload has them, else Poisson.

    The arrival process yields instants that the tasks after the `initial` ones take in
    workload order; consecutive instants are one gap apart (the trace's gaps in file
    order, Poisson draws, or 1/rate), and the first is one gap after t=0 (constant: at
    t=0) unless `first_arrival` says when. Ours reads a trace's relative_submit_time as
    the gap before its task; the DPack artifact (initial 100, first_arrival 0) starts its
    process at t=0 and takes each gap after a task."""

    kind: Literal["poisson", "constant", "trace"] | None = None
    rate: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="claims per time unit; default: the workload's own, else spread over "
        "the block-arrival span",
    )
    initial: int = Field(
        0,
        ge=0,
        description="the first N tasks arrive at t=0, ahead of the arrival process (the "
        "DPack artifact's tasks.initial_num: 100)",
    )
    first_arrival: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="time of the process's first arrival; default: one gap after t=0 "
        "(constant: t=0); the DPack artifact: 0",
    )


class WorkloadConfig(_Strict):
    name: str
    path: str | None = None
    n_tasks: int | None = Field(None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    arrival: ArrivalConfig = Field(default_factory=ArrivalConfig)

    @model_validator(mode="after")
    def _known(self) -> Self:
        if self.name not in WORKLOAD_NAMES:
            raise ValueError(
                f"unknown workload {self.name!r}; choose from {', '.join(WORKLOAD_NAMES)}"
            )
        if self.name in GENERATORS:
            GENERATORS[self.name].params(self.params)
        return self


class SchedulerConfig(PolicyConfig):
    """The engine's policy settings, plus when the simulator runs rounds and how long a
    claim may wait (in time units)."""

    mode: Literal["offline", "batch", "on_arrival"] = "batch"
    timeout: float | None = Field(None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.mode == "offline" and self.unlocking.kind in ("per_step", "lifetime"):
            raise ValueError(
                f"offline mode schedules once at t=0, where {self.unlocking.kind} unlocking "
                "has released nothing; use none or per_arrival"
            )
        return self


class SemanticsConfig(_Strict):
    """What a block protects (PrivateKube §5.3). `event`: a block per period (day).
    `user`: a block per group of `group` user ids, made grantable once a DP count of the
    users (`epsilon_count`, failure probability `beta`) says all of them exist; claims
    read every user group (the data of any period is spread over all users). `user_time`:
    every period, a block per user group the count's upper bound has reached; a claim
    reading k periods reads every group's blocks of the last k periods. Each period
    brings `users_per_period` new users."""

    kind: Literal["event", "user", "user_time"] = "event"
    users_per_period: int = Field(1000, ge=0)
    group: int = Field(5000, ge=1)
    epsilon_count: float = Field(0.1, gt=0, allow_inf_nan=False)
    beta: float = Field(0.05, gt=0, lt=0.5)


class ClaimsConfig(_Strict):
    """What simulated claims ask for beyond their workload's fixed demand and blocks."""

    choose_among: int | None = Field(
        None,
        ge=1,
        description="flexible: a task reading k blocks takes any k of the `choose_among` most "
        "recent with room, chosen at grant time (instead of exactly the k most recent)",
    )
    elastic: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="elastic: a mechanism demand whose target is epsilon asks for the range "
        "[elastic x epsilon, epsilon] (rdp accounting)",
    )


class MetricsConfig(_Strict):
    fair_share_n: int | None = Field(
        None, ge=1, description="N of the fair share capacity/N; default: unlocking n, else 50"
    )


class SimConfig(AccountingConfig):
    seed: int = 0
    blocks: BlocksConfig = Field(default_factory=BlocksConfig)
    workload: WorkloadConfig
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    claims: ClaimsConfig = Field(default_factory=ClaimsConfig)
    semantics: SemanticsConfig = Field(default_factory=SemanticsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    horizon: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="stop at this time even if work remains"
    )

    @property
    def fair_share_n(self) -> int:
        if self.metrics.fair_share_n is not None:
            return self.metrics.fair_share_n
        return self.scheduler.unlocking.n or 50


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """data["a"]["b"] = value for key "a.b", creating mappings on the way."""
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise InputError(".".join(parts[: i + 1]), "is not a mapping; cannot set a key in it")
        node = child
    node[parts[-1]] = value


def parse_config(data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> SimConfig:
    merged = copy.deepcopy(dict(data))
    for key, value in (overrides or {}).items():
        set_dotted(merged, key, value)
    try:
        config = SimConfig.model_validate(merged)
    except ValidationError as exc:
        raise from_validation_error("config", exc, merged) from None
    accounting = config.make_accounting()
    if config.claims.elastic is not None and accounting.mode != "rdp":
        raise InputError("claims.elastic", "epsilon ranges need accounting: rdp")
    if config.claims.choose_among is not None and config.semantics.kind != "event":
        raise InputError("claims.choose_among", "chooses among periods: event semantics only")
    return config


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> SimConfig:
    file = Path(path)
    data = read_mapping(file, "config")
    workload = data.get("workload")
    if isinstance(workload, dict) and isinstance(workload.get("path"), str):
        # A path in the file is relative to the file; one given with --set, to the shell.
        workload["path"] = str((file.parent / workload["path"]).resolve())
    return parse_config(data, overrides)
