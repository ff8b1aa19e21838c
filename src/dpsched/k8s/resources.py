"""The custom resources of `dpsched.io/v1`: PrivateBlock and PrivacyClaim.

Modelled on PersistentVolume / PersistentVolumeClaim, as PrivateKube mapped node ->
block and pod -> claim. A PrivateBlock's spec is a block of the instance format and a
PrivacyClaim's spec a claim of the instance format (the object's name is the id), so
one model validates a block or claim whether it comes from a file, the REST API or the
cluster: the CRD schemas are generated from those same pydantic models (`crds.py`),
and the operator validates every spec with them before the engine sees it.

Only two fields are Kubernetes' own, on the claim, for declarative consumption:
`consumedFraction` (0..1, may only grow; each increase is applied once) and
`release: true`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from dpsched.core import BlockSpec, ClaimSpec

GROUP = "dpsched.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
BLOCKS = "privateblocks"
CLAIMS = "privacyclaims"
"""The plurals the API server serves the two kinds under (their URL paths)."""

_CAMEL = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)
"""Kubernetes spells fields in camelCase; Python attributes stay snake_case."""

NOT_IN_SPEC = frozenset({"id", "arrival"})
"""Instance-format fields a resource does not carry: its name is the id, and it arrives
when it is created."""


class ClaimControls(BaseModel):
    """The Kubernetes-only part of a PrivacyClaim's spec: how its owner consumes or gives
    back a grant by editing the object instead of calling the API."""

    model_config = _CAMEL

    consumed_fraction: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="fraction of the grant used for good; may only grow, each increase "
        "is applied once",
    )
    release: bool = Field(
        False, description="give back the unconsumed part of the grant (cannot be undone)"
    )


class ClaimPhase(StrEnum):
    PENDING = "Pending"
    ALLOCATED = "Allocated"
    CONSUMED = "Consumed"
    RELEASED = "Released"
    EXPIRED = "Expired"
    REJECTED = "Rejected"


class Condition(BaseModel):
    """A standard Kubernetes status condition (metav1.Condition)."""

    model_config = _CAMEL

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(description="CamelCase reason, e.g. NotEnoughBudget")
    message: str = ""
    last_transition_time: str = Field(description="RFC 3339 time of the last status change")
    observed_generation: int | None = None


class BlockBudget(BaseModel):
    """A block's budget parts, one value per RDP order (one value in basic accounting)."""

    model_config = _CAMEL

    capacity: list[float]
    locked: list[float]
    unlocked: list[float]
    allocated: list[float]
    consumed: list[float]


class PrivateBlockStatus(BaseModel):
    model_config = _CAMEL

    orders: list[str] = Field(default_factory=list, description="label of each budget entry")
    budget: BlockBudget | None = None
    spent_epsilon: float | None = Field(
        None, description="epsilon spent at delta_G (RDP converted at the best order)"
    )
    unlocked_percent: float | None = Field(None, description="share of the budget unlocked, %")
    claims: int = Field(0, ge=0, description="claims holding budget on the block")
    exhausted: bool = Field(False, description="no claim can be granted here any more")
    reason: str | None = Field(None, description="why the block was refused, if it was")
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


class PrivacyClaimStatus(BaseModel):
    model_config = _CAMEL

    phase: ClaimPhase = ClaimPhase.PENDING
    blocks: list[str] = Field(default_factory=list, description="the blocks granted")
    block_count: int = Field(0, ge=0)
    epsilon: float | None = Field(None, description="granted epsilon (at the blocks' delta)")
    grant: dict[str, float] | None = Field(
        None,
        description="elastic claims: the granted epsilon and the noise parameter to run with "
        "(noise_multiplier or scale), or the granted fraction of the way to 'demand'",
    )
    consumed_fraction: float = Field(0.0, description="consumption applied so far")
    actual_data: int | None = Field(None, description="records in the granted blocks")
    reason: str | None = Field(None, description="why the claim waits, or was refused")
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


def block_spec(name: str, spec: dict[str, Any]) -> BlockSpec:
    """The instance-format block a PrivateBlock's spec states (named by the object)."""
    return BlockSpec.model_validate({**_without(spec, NOT_IN_SPEC), "id": name})


def claim_spec(claim_id: str, spec: dict[str, Any]) -> tuple[ClaimSpec, ClaimControls]:
    """The instance-format claim a PrivacyClaim's spec states, and its consumption controls."""
    own = {field.alias or name for name, field in ClaimControls.model_fields.items()}
    claim = ClaimSpec.model_validate({**_without(spec, NOT_IN_SPEC | own), "id": claim_id})
    controls = ClaimControls.model_validate({k: v for k, v in spec.items() if k in own})
    return claim, controls


def _without(spec: dict[str, Any], keys: frozenset[str] | set[str]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in keys}
