"""Declarative specs of DP mechanisms, as users write them in instances and claims.

Specs are frozen pydantic models so they can be validated once (clear error naming
the field), hashed for curve caching, and turned into `dp_accounting` events.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

Probability = Annotated[float, Field(gt=0.0, le=1.0)]


class _MechanismBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: PositiveInt = Field(1, description="number of times the mechanism is self-composed")


class _LaplaceNoise(_MechanismBase):
    """Laplace noise for a sensitivity-1 query, given by its scale b or by epsilon = 1/b."""

    scale: PositiveFloat | None = None
    epsilon: PositiveFloat | None = None

    @model_validator(mode="after")
    def _one_of_scale_or_epsilon(self) -> Self:
        if (self.scale is None) == (self.epsilon is None):
            raise ValueError("give exactly one of 'scale' or 'epsilon'")
        return self

    @property
    def noise_scale(self) -> float:
        if self.scale is not None:
            return self.scale
        assert self.epsilon is not None
        return 1.0 / self.epsilon


class Laplace(_LaplaceNoise):
    mechanism: Literal["laplace"]


class Gaussian(_MechanismBase):
    """Gaussian noise with standard deviation sigma for a sensitivity-1 query."""

    mechanism: Literal["gaussian"]
    sigma: PositiveFloat


class SubsampledGaussian(_MechanismBase):
    """DP-SGD: `steps` Poisson-subsampled Gaussian steps with noise multiplier sigma."""

    mechanism: Literal["subsampled_gaussian"]
    sigma: PositiveFloat
    sampling_rate: Probability
    steps: PositiveInt = 1


class SubsampledLaplace(_LaplaceNoise):
    """`steps` Poisson-subsampled Laplace steps (e.g. DP-SGD with Laplace noise)."""

    mechanism: Literal["subsampled_laplace"]
    sampling_rate: Probability
    steps: PositiveInt = 1


class DpFtrl(_MechanismBase):
    """DP-FTRL (Kairouz et al.): one epoch of `steps` tree-aggregated Gaussian releases.

    The alternative to DP-SGD when data cannot be sampled; accounted by
    dp-accounting's single-epoch tree-aggregation event.
    """

    mechanism: Literal["dp_ftrl"]
    sigma: PositiveFloat
    steps: PositiveInt


class Composition(_MechanismBase):
    """Sequential composition of heterogeneous mechanisms, as one task's pipeline."""

    mechanism: Literal["composition"]
    parts: list[MechanismSpec] = Field(min_length=1)

    def __hash__(self) -> int:
        return hash((self.count, tuple(self.parts)))


MechanismSpec = Annotated[
    Laplace | Gaussian | SubsampledGaussian | SubsampledLaplace | DpFtrl | Composition,
    Field(discriminator="mechanism"),
]

MECHANISM_NAMES: tuple[str, ...] = (
    "laplace",
    "gaussian",
    "subsampled_gaussian",
    "subsampled_laplace",
    "dp_ftrl",
    "composition",
)

Composition.model_rebuild()
