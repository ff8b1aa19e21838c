"""How a claim states its privacy cost: an epsilon, an RDP vector, or a mechanism."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from dpsched.budget.mechanisms import MechanismSpec


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


def _demand_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("mechanism", "rdp", "epsilon"):
            if key in value:
                return key
        return None
    if isinstance(value, EpsilonDemand):
        return "epsilon"
    if isinstance(value, RdpDemand):
        return "rdp"
    return "mechanism"


DemandSpec = Annotated[
    Annotated[EpsilonDemand, Tag("epsilon")]
    | Annotated[RdpDemand, Tag("rdp")]
    | Annotated[MechanismSpec, Tag("mechanism")],
    Discriminator(
        _demand_kind,
        custom_error_type="demand_kind",
        custom_error_message="a demand needs one of the keys 'epsilon', 'rdp' or 'mechanism'",
    ),
]
