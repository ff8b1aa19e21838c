"""Private blocks: a slice of data (a day, a user group) carrying its own global budget."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dpsched.budget import MAX_BUDGET

DimensionValue = float | int | str | tuple[float, float]
"""A block's coordinate along a dimension: a number (a day), a word (a country), or a
half-open range [low, high) written as a two-number list (a group of user ids)."""


class BlockSpec(BaseModel):
    """A block as users declare it; its capacity comes from (epsilon, delta) or is explicit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    dataset: str = "default"
    dimensions: dict[str, DimensionValue] = Field(default_factory=dict)
    arrival: float = Field(0.0, allow_inf_nan=False)
    epsilon: float | None = Field(None, gt=0.0, le=MAX_BUDGET, allow_inf_nan=False)
    delta: float | None = None
    capacity: tuple[float, ...] | None = None
    size: int | None = Field(
        None, ge=0, description="records in the block (public metadata; flexible claims count it)"
    )

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> Self:
        for name, value in self.dimensions.items():
            if isinstance(value, tuple) and not value[0] < value[1]:
                raise ValueError(f"dimension {name!r}: a range [low, high) needs low < high")
        return self

    @model_validator(mode="after")
    def _budget_given_once(self) -> Self:
        if (self.epsilon is None) == (self.capacity is None):
            raise ValueError("give either 'epsilon' (with 'delta' for rdp) or 'capacity'")
        return self
