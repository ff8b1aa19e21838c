"""Privacy claims (tasks): what users submit, and the record the ledger keeps of each."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Self

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    model_validator,
)

from dpsched.budget import MAX_BUDGET, DemandSpec
from dpsched.budget.demand import ElasticDemand, EpsilonDemand, RdpDemand
from dpsched.core.flexible import FLEXIBLE_KEYS, Flex
from dpsched.core.selectors import BlockSelector


def _list_means_ids(value: Any) -> Any:
    return {"ids": list(value)} if isinstance(value, list | tuple) else value


class ClaimSpec(BaseModel):
    """A claim as submitted: blocks to read, the cost per block, and scheduling hints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0.0, le=MAX_BUDGET, allow_inf_nan=False)
    arrival: float = Field(0.0, allow_inf_nan=False)
    timeout: float | None = Field(None, gt=0.0)
    blocks: (
        Annotated[
            BlockSelector,
            BeforeValidator(_list_means_ids, json_schema_input_type=list[str] | BlockSelector),
        ]
        | None
    ) = None
    demand: DemandSpec | None = None
    demand_by_block: dict[str, DemandSpec] | None = None
    min_blocks: PositiveInt = 1
    max_blocks: PositiveInt | None = None
    min_demand: DemandSpec | None = None
    """With an explicit `demand`: the least the claim accepts; the grant is the most of
    the way from here to `demand` that fits (elastic, like an epsilon range)."""
    min_data: NonNegativeInt | None = None
    """Records (block `size`) the claim needs at least (flexible claims)."""
    expected_data: PositiveInt | None = None
    """Records the claim would like: blocks are added until they cover it."""

    @property
    def flexible(self) -> bool:
        """Blocks chosen at grant time: a selector with a count or an amount of data."""
        return self.blocks is not None and bool(FLEXIBLE_KEYS & self.model_fields_set)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.demand is None) == (self.demand_by_block is None):
            raise ValueError("give exactly one of 'demand' or 'demand_by_block'")
        if self.blocks is None and self.demand_by_block is None:
            raise ValueError("'blocks' is required unless 'demand_by_block' names the blocks")
        if self.max_blocks is not None and self.max_blocks < self.min_blocks:
            raise ValueError("max_blocks must be >= min_blocks")
        if self.min_demand is not None:
            explicit = (EpsilonDemand, RdpDemand)
            if not (isinstance(self.demand, explicit) and isinstance(self.min_demand, explicit)):
                raise ValueError(
                    "min_demand goes with an explicit 'demand' (epsilon or rdp); "
                    "a mechanism takes an epsilon range instead"
                )
        ranged = self.demand_by_block and any(
            isinstance(d, ElasticDemand) for d in self.demand_by_block.values()
        )
        if ranged:
            raise ValueError("an epsilon range is one 'demand' for all blocks")
        if self.flexible and self.demand is None:
            raise ValueError("a claim choosing among its blocks states one 'demand' for all")
        if (self.min_data or self.expected_data) and self.blocks is None:
            raise ValueError("min_data and expected_data need 'blocks' (a selector) to choose from")
        if self.min_data and self.expected_data is not None and self.expected_data < self.min_data:
            raise ValueError("expected_data must be >= min_data")
        return self


class ClaimState(StrEnum):
    PENDING = "pending"
    ALLOCATED = "allocated"
    CONSUMED = "consumed"
    RELEASED = "released"
    EXPIRED = "expired"
    REJECTED = "rejected"


@dataclass(slots=True)
class Claim:
    """The ledger's record of a claim; arrays are (blocks x dimensions), rows follow `block_ids`.

    `demand` is the resolved cost, `allocated` what is held and not yet consumed,
    `consumed` what was used for good, `reserved` budget set aside for it while it is
    pending (round robin), given back if it expires. Slotted: an instance may hold
    hundreds of thousands of claims.
    """

    id: str
    weight: float
    arrival: float
    timeout: float | None
    block_ids: tuple[str, ...]
    block_index: np.ndarray
    demand: np.ndarray
    state: ClaimState = ClaimState.PENDING
    allocated: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    consumed: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    reserved: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    reason: str | None = None
    allocated_at: float | None = None
    finished_at: float | None = None
    flex: Flex | None = None
    """Set for a flexible claim: its rows are re-chosen before every round while pending."""
    elastic: ElasticDemand | None = None
    """Set for an epsilon range: its rows are the range's minimum until it is granted."""
    grant: dict[str, float] | None = None
    """What an elastic claim was granted: `epsilon` and the noise to run with (a range
    of explicit vectors: the `fraction` of the way from `min_demand` to `demand`)."""
    ceiling: np.ndarray | None = None
    """With `min_demand`: the full demand row; the claim's rows hold the minimum."""
    submitted: int = 0
    """Rank among every claim the ledger was given, in submission order (file order
    offline, arrival sequence online): every policy's last tie-break. A snapshot keeps
    claims in this order, so a restore renumbers them and the order survives."""

    def __post_init__(self) -> None:
        if self.allocated.shape != self.demand.shape:
            self.allocated = np.zeros_like(self.demand)
        if self.consumed.shape != self.demand.shape:
            self.consumed = np.zeros_like(self.demand)
        if self.reserved.shape != self.demand.shape:
            self.reserved = np.zeros_like(self.demand)

    @property
    def deadline(self) -> float | None:
        return None if self.timeout is None else self.arrival + self.timeout

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "weight": self.weight,
            "arrival": self.arrival,
            "timeout": self.timeout,
            "block_ids": list(self.block_ids),
            "block_index": self.block_index.tolist(),
            "demand": self.demand.tolist(),
            "state": self.state.value,
            "allocated": self.allocated.tolist(),
            "consumed": self.consumed.tolist(),
            "reserved": self.reserved.tolist(),
            "reason": self.reason,
            "allocated_at": self.allocated_at,
            "finished_at": self.finished_at,
            "flex": None if self.flex is None else self.flex.to_dict(),
            "elastic": None if self.elastic is None else self.elastic.model_dump(mode="json"),
            "grant": self.grant,
            "ceiling": None if self.ceiling is None else self.ceiling.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], dims: int) -> Claim:
        def matrix(key: str) -> np.ndarray:
            return np.asarray(data[key], dtype=float).reshape(-1, dims)

        return cls(
            id=data["id"],
            weight=float(data["weight"]),
            arrival=float(data["arrival"]),
            timeout=data["timeout"],
            block_ids=tuple(data["block_ids"]),
            block_index=np.asarray(data["block_index"], dtype=np.int64),
            demand=matrix("demand"),
            state=ClaimState(data["state"]),
            allocated=matrix("allocated"),
            consumed=matrix("consumed"),
            reserved=matrix("reserved") if "reserved" in data else np.zeros((0, 0)),
            reason=data["reason"],
            allocated_at=data["allocated_at"],
            finished_at=data["finished_at"],
            flex=Flex.from_dict(data["flex"]) if data.get("flex") else None,
            elastic=ElasticDemand.model_validate(data["elastic"]) if data.get("elastic") else None,
            grant=data.get("grant"),
            ceiling=None if data.get("ceiling") is None else np.asarray(data["ceiling"], float),
        )


@dataclass(frozen=True, eq=False)
class ClaimBatch:
    """Many claims, validated and resolved against a ledger's blocks, as CSR arrays: what
    `Ledger.submit_batch` takes (claim i owns entries indptr[i]:indptr[i+1])."""

    ids: list[str]
    weight: np.ndarray
    arrival: np.ndarray
    timeout: np.ndarray
    """NaN where the claim waits forever."""
    min_blocks: list[int]
    """Exact (Python ints: a user may write any positive integer)."""
    block_ids: list[tuple[str, ...]]
    indptr: np.ndarray
    block_index: np.ndarray
    """Per entry: the block's index in the ledger."""
    demand: np.ndarray
    """Per entry: the demand row as stated (infinite values allowed)."""
    flex: list[Flex | None] | None = None
    """Per claim, what a flexible claim asked for (None: every claim is fixed)."""
    elastic: list[ElasticDemand | None] | None = None
    """Per claim, an epsilon range (None: no claim has one)."""
    ceiling: list[np.ndarray | None] | None = None
    """Per claim, the full demand row of a claim with `min_demand`."""

    @property
    def n(self) -> int:
        return len(self.ids)

    def new_claims(self, demand: np.ndarray, first: int) -> list[Claim]:
        """The claims of a batch, pending, numbered in submission order from `first`; their
        arrays are views into shared batch arrays."""
        # allocated, consumed, reserved: np.zeros maps untouched zero pages, so claims that
        # never get budget cost no memory here.
        allocated, consumed, reserved = (np.zeros(demand.shape) for _ in range(3))
        timeouts = [None if math.isnan(t) else t for t in self.timeout.tolist()]
        bounds = self.indptr.tolist()
        index = self.block_index
        claims = [
            Claim(
                claim_id,
                weight,
                arrival,
                timeout,
                block_ids,
                index[lo:hi],
                demand[lo:hi],
                ClaimState.PENDING,
                allocated[lo:hi],
                consumed[lo:hi],
                reserved[lo:hi],
            )
            for claim_id, weight, arrival, timeout, block_ids, lo, hi in zip(
                self.ids,
                self.weight.tolist(),
                self.arrival.tolist(),
                timeouts,
                self.block_ids,
                bounds[:-1],
                bounds[1:],
                strict=True,
            )
        ]
        for i, claim in enumerate(claims, first):
            claim.submitted = i
        for i, flex in enumerate(self.flex or []):
            claims[i].flex = flex
        for i, elastic in enumerate(self.elastic or []):
            claims[i].elastic = elastic
        for i, ceiling in enumerate(self.ceiling or []):
            claims[i].ceiling = ceiling
        return claims
