"""How a claim states its privacy cost: an epsilon, an RDP vector, a mechanism, a
`dp_accounting` DpEvent written as JSON, or a zCDP guarantee."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from dpsched.budget.events import canonical
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


DEMAND_KEYS = ("mechanism", "rdp", "epsilon", "dp_event", "zcdp", "approx_zcdp")


def _demand_kind(value: Any) -> str | None:
    if isinstance(value, dict):
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
    | Annotated[ApproxZcdpDemand, Tag("approx_zcdp")],
    Discriminator(
        _demand_kind,
        custom_error_type="demand_kind",
        custom_error_message="a demand needs one of the keys 'epsilon', 'rdp', 'mechanism', "
        "'dp_event', 'zcdp' or 'approx_zcdp'",
    ),
]

PricedSpec = MechanismSpec | DpEventDemand | ZcdpDemand
"""Demands whose cost an accountant computes (curves and epsilons are cached by them)."""
