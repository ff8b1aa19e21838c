"""How a claim states its privacy cost: an epsilon, an RDP vector, a mechanism, a
`dp_accounting` DpEvent written as JSON, or a zCDP guarantee."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PositiveFloat,
    PositiveInt,
    Tag,
    field_validator,
    model_validator,
)

from dpsched.budget.events import canonical
from dpsched.budget.mechanisms import (
    Gaussian,
    Laplace,
    MechanismSpec,
    Probability,
    SubsampledGaussian,
)


class EpsilonDemand(BaseModel):
    """Basic accounting: epsilon adds up under composition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: float = Field(ge=0.0, allow_inf_nan=False)


class RdpDemand(BaseModel):
    """RDP accounting: one epsilon per order; `inf` means never allocatable at that order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rdp: tuple[float, ...] = Field(min_length=1)

    @field_validator("rdp")
    @classmethod
    def _non_negative(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if all(v >= 0 for v in values):  # NaN fails this too; the loop below names it
            return values
        for i, v in enumerate(values):
            if math.isnan(v) or v < 0:
                raise ValueError(f"entry {i} must be a non-negative number (inf allowed), got {v}")
        return values


class DpEventDemand(BaseModel):
    """A `dp_accounting` DpEvent as JSON (see `budget.events`), priced by its accountants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dp_event: dict[str, Any]

    @property
    def count(self) -> int:
        return 1  # repetition is the event's own business (SelfComposedDpEvent)

    def __hash__(self) -> int:
        return hash(canonical(self.dp_event))


class ZcdpDemand(BaseModel):
    """rho-zCDP (Bun and Steinke): dp_accounting's ZCDpEvent, the RDP curve rho * alpha."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zcdp: float = Field(ge=0.0, allow_inf_nan=False)

    @property
    def count(self) -> int:
        return 1


class ApproxZcdp(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rho: float = Field(ge=0.0, allow_inf_nan=False)
    delta: float = Field(ge=0.0, lt=1.0, allow_inf_nan=False)


class ApproxZcdpDemand(BaseModel):
    """(rho, delta)-approximate zCDP. Only delta = 0 can be charged soundly: budgets are
    per RDP order (or epsilon at the ledger's delta) and nothing would account for the
    claim's own delta, so delta > 0 is refused with that reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approx_zcdp: ApproxZcdp


class ElasticDemand(BaseModel):
    """A mechanism with an epsilon range instead of its noise: the grant is the largest
    epsilon in the range that fits, and the claim learns the noise to run with (its
    `noise_multiplier`, or the Laplace `scale`). The range is (epsilon, delta)-DP of the
    job as dp-accounting's RDP accountant converts it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mechanism: Literal["gaussian", "laplace", "subsampled_gaussian"]
    epsilon: tuple[PositiveFloat, PositiveFloat]
    delta: float | None = Field(None, gt=0.0, lt=1.0)
    sampling_rate: Probability | None = None
    steps: PositiveInt = 1

    @model_validator(mode="after")
    def _complete(self) -> Self:
        low, high = self.epsilon
        if not (math.isfinite(high) and low <= high):
            raise ValueError("epsilon must be a finite range [low, high] with low <= high")
        if self.mechanism == "laplace":
            if self.delta is not None or self.sampling_rate is not None:
                raise ValueError("a Laplace range is pure epsilon: no delta, no sampling_rate")
        elif self.delta is None:
            raise ValueError(f"a {self.mechanism} range needs 'delta'")
        if (self.mechanism == "subsampled_gaussian") != (self.sampling_rate is not None):
            raise ValueError("'sampling_rate' goes with subsampled_gaussian, and only with it")
        return self

    @property
    def noise_name(self) -> str:
        return "scale" if self.mechanism == "laplace" else "noise_multiplier"

    def at(self, noise: float) -> MechanismSpec:
        """The mechanism run with this noise (what is charged)."""
        if self.mechanism == "laplace":
            return Laplace(mechanism="laplace", scale=noise, count=self.steps)
        if self.mechanism == "gaussian":
            return Gaussian(mechanism="gaussian", sigma=noise, count=self.steps)
        assert self.sampling_rate is not None
        return SubsampledGaussian(
            mechanism="subsampled_gaussian",
            sigma=noise,
            sampling_rate=self.sampling_rate,
            steps=self.steps,
        )


DEMAND_KEYS = ("mechanism", "rdp", "epsilon", "dp_event", "zcdp", "approx_zcdp")


def _demand_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "mechanism" in value and isinstance(value.get("epsilon"), list | tuple):
            return "elastic"
        for key in DEMAND_KEYS:
            if key in value:
                return key
        return None
    for model, key in (
        (EpsilonDemand, "epsilon"),
        (RdpDemand, "rdp"),
        (DpEventDemand, "dp_event"),
        (ZcdpDemand, "zcdp"),
        (ApproxZcdpDemand, "approx_zcdp"),
        (ElasticDemand, "elastic"),
    ):
        if isinstance(value, model):
            return key
    return "mechanism"


DemandSpec = Annotated[
    Annotated[EpsilonDemand, Tag("epsilon")]
    | Annotated[RdpDemand, Tag("rdp")]
    | Annotated[MechanismSpec, Tag("mechanism")]
    | Annotated[DpEventDemand, Tag("dp_event")]
    | Annotated[ZcdpDemand, Tag("zcdp")]
    | Annotated[ApproxZcdpDemand, Tag("approx_zcdp")]
    | Annotated[ElasticDemand, Tag("elastic")],
    Discriminator(
        _demand_kind,
        custom_error_type="demand_kind",
        custom_error_message="a demand needs one of the keys 'epsilon', 'rdp', 'mechanism', "
        "'dp_event', 'zcdp' or 'approx_zcdp'",
    ),
]

PricedSpec = MechanismSpec | DpEventDemand | ZcdpDemand
"""Demands whose cost an accountant computes (curves and epsilons are cached by them)."""
