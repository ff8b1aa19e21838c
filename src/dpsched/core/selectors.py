"""Which blocks a claim asks for: explicit ids, a dataset filtered by dimensions, or the N newest.

A fixed claim's selector is resolved once, when it is submitted, against the blocks
the ledger holds then: its block set never changes afterwards, which is what makes
all-or-nothing allocation well defined. A flexible claim (`core.flexible`) keeps its
selector and re-resolves it before every round, so blocks that arrive later count for
it. Where every block is known up front
(offline instances), `unmatchable` turns a selector that can never match (a typo
in a dataset or dimension name) into an input error instead of a silent rejection.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PositiveInt,
    Tag,
    field_validator,
    model_validator,
)

from dpsched.core.blocks import BlockSpec, DimensionValue

_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")
_WORD = re.compile(r"^[A-Za-z_][\w.-]*$")
_RANGE = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s+in\s+\[([^,\]]+),([^,\])]+)\)\s*$")
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class Condition(BaseModel):
    """`dimension op value`, e.g. `time >= 10` or `country == "fr"`, or a half-open
    range `dimension in [low, high)`, e.g. `user_id in [0, 5000)`: a block's number
    lies in it, or a block's own range (a user group) lies within it. Comparisons other
    than `in` never hold for a block whose dimension is a range."""

    model_config = ConfigDict(frozen=True)

    dimension: str
    op: str
    value: DimensionValue

    @model_validator(mode="after")
    def _operator_fits_value(self) -> Self:
        if self.op not in _OPERATORS and self.op != "in":
            raise ValueError(f"unknown operator {self.op!r}; one of {', '.join(_OPERATORS)}, in")
        if (self.op == "in") != isinstance(self.value, tuple):
            raise ValueError("'in' takes a range [low, high), and only 'in' does")
        if isinstance(self.value, tuple) and not self.value[0] < self.value[1]:
            raise ValueError("a range [low, high) needs low < high")
        return self

    @classmethod
    def parse(cls, text: str) -> Condition:
        ranged = _RANGE.match(text)
        if ranged is not None:
            name, low, high = ranged.groups()
            try:
                bounds = (float(low), float(high))
            except ValueError:
                raise ValueError(
                    f"cannot parse condition {text!r}: range bounds must be numbers"
                ) from None
            if not bounds[0] < bounds[1]:
                raise ValueError(f"condition {text!r}: a range [low, high) needs low < high")
            return cls(dimension=name, op="in", value=bounds)
        match = _CONDITION.match(text)
        if match is None:
            raise ValueError(f"cannot parse condition {text!r}: expected 'dimension op value'")
        name, op, raw = match.groups()
        value: DimensionValue
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            value = raw[1:-1]
        else:
            try:
                value = float(raw)
            except ValueError:
                if _WORD.match(raw) is None:
                    # e.g. `time >>= 1`: the regex took `>` and left `>= 1` as the value.
                    raise ValueError(
                        f"cannot parse condition {text!r}: the value {raw!r} is not a number, "
                        "a word or a quoted string"
                    ) from None
                value = raw
        return cls(dimension=name, op=op, value=value)

    def holds(self, dimensions: dict[str, DimensionValue]) -> bool:
        """False when the block lacks the dimension or the types cannot be compared."""
        if self.dimension not in dimensions:
            return False
        actual = dimensions[self.dimension]
        if self.op == "in":
            assert isinstance(self.value, tuple)
            low, high = self.value
            if isinstance(actual, tuple):
                return low <= actual[0] and actual[1] <= high
            return not isinstance(actual, str) and low <= actual < high
        if isinstance(actual, tuple) or isinstance(actual, str) != isinstance(self.value, str):
            return False
        return _OPERATORS[self.op](actual, self.value)

    def __str__(self) -> str:
        if isinstance(self.value, tuple):
            return f"{self.dimension} in [{self.value[0]:g}, {self.value[1]:g})"
        return f"{self.dimension} {self.op} {self.value}"


class ExplicitSelector(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ids: tuple[str, ...] = Field(min_length=1)

    @field_validator("ids")
    @classmethod
    def _unique(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(ids)) != len(ids):
            raise ValueError("block ids must not repeat")
        return ids

    def select(self, blocks: Sequence[BlockSpec]) -> list[str]:
        return list(self.ids)

    def unmatchable(self, blocks: Sequence[BlockSpec]) -> tuple[str, str] | None:
        """Unknown ids are refused when the claim is submitted, with the id."""
        return None


class DatasetSelector(BaseModel):
    """All blocks of a dataset whose dimensions satisfy every condition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    where: tuple[Condition, ...] = ()

    @field_validator("where", mode="before", json_schema_input_type=str | list[str | Condition])
    @classmethod
    def _parse(cls, values: Any) -> Any:
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list | tuple):
            return values  # pydantic names the field: it must be a list of conditions
        return [Condition.parse(v) if isinstance(v, str) else v for v in values]

    def select(self, blocks: Sequence[BlockSpec]) -> list[str]:
        return [
            b.id
            for b in blocks
            if b.dataset == self.dataset and all(c.holds(b.dimensions) for c in self.where)
        ]

    def unmatchable(self, blocks: Sequence[BlockSpec]) -> tuple[str, str] | None:
        """Why this selector can match none of `blocks` whatever their values, if it can't.

        An unknown dataset, a dimension no block of the dataset has, or a comparison of
        a numeric dimension with a string (or the reverse) is a typo, not a claim that
        happens to select nothing: where all blocks are known up front (offline), it
        is an input error naming (field, reason)."""
        problem = _unknown_dataset(self.dataset, blocks)
        if problem is not None:
            return problem
        pool = [b for b in blocks if b.dataset == self.dataset]
        for i, condition in enumerate(self.where):
            values = [
                b.dimensions[condition.dimension]
                for b in pool
                if condition.dimension in b.dimensions
            ]
            if not values:
                known = sorted({d for b in pool for d in b.dimensions})
                return (
                    f"where[{i}]",
                    f"no block of dataset {self.dataset!r} has dimension "
                    f"{condition.dimension!r} (they have: {', '.join(known) or 'none'})",
                )
            wants_text = isinstance(condition.value, str)
            if all(isinstance(v, str) != wants_text for v in values):
                kind = "text" if not wants_text else "a number"
                return (
                    f"where[{i}]",
                    f"dimension {condition.dimension!r} is {kind} on every block; "
                    f"{condition} can never hold",
                )
        return None


class RecentSelector(BaseModel):
    """The N most recently arrived blocks (optionally of one dataset), as DPack's tasks ask."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    most_recent: PositiveInt
    dataset: str | None = None

    def select(self, blocks: Sequence[BlockSpec]) -> list[str]:
        if self.dataset is None:
            return [b.id for b in blocks[-self.most_recent :]]
        pool = [b for b in blocks if b.dataset == self.dataset]
        return [b.id for b in pool[-self.most_recent :]]

    def unmatchable(self, blocks: Sequence[BlockSpec]) -> tuple[str, str] | None:
        """An unknown dataset, named as (field, reason); see `DatasetSelector.unmatchable`."""
        return None if self.dataset is None else _unknown_dataset(self.dataset, blocks)


def _unknown_dataset(dataset: str, blocks: Sequence[BlockSpec]) -> tuple[str, str] | None:
    known = sorted({b.dataset for b in blocks})
    if dataset in known:
        return None
    return "dataset", f"unknown dataset {dataset!r} (the blocks have: {', '.join(known)})"


def _selector_kind(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        return "ids"
    if isinstance(value, dict):
        for key in ("ids", "most_recent", "dataset"):
            if key in value:
                return key
        return None
    if isinstance(value, ExplicitSelector):
        return "ids"
    if isinstance(value, RecentSelector):
        return "most_recent"
    if isinstance(value, DatasetSelector):
        return "dataset"
    return None


def _explicit_from_list(value: Any) -> Any:
    return {"ids": value} if isinstance(value, list | tuple) else value


BlockSelector = Annotated[
    Annotated[ExplicitSelector, Tag("ids")]
    | Annotated[RecentSelector, Tag("most_recent")]
    | Annotated[DatasetSelector, Tag("dataset")],
    Discriminator(
        _selector_kind,
        custom_error_type="selector_kind",
        custom_error_message=(
            "blocks must be a list of ids, or a mapping with 'ids', 'most_recent' or 'dataset'"
        ),
    ),
]
