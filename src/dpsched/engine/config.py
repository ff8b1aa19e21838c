"""How an engine accounts and schedules, as configured: the `accounting` keys and the
`scheduler` section a simulation config and the budget service's config share (same
keys, same validation)."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from dpsched.budget import Accounting, validate_alphas
from dpsched.core import AllUnlocked, Lifetime, PerArrival, PerStep, Unlocking
from dpsched.policies import POLICIES, get_policy


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountingConfig(_Strict):
    """The `accounting`, `alphas` and `delta` keys every config shares."""

    accounting: Literal["basic", "rdp"] = "rdp"
    alphas: tuple[float, ...] | None = None
    delta: float = Field(1e-7, gt=0, lt=1, description="basic-mode conversions and reports")

    def make_accounting(self) -> Accounting:
        if self.alphas is not None:
            return Accounting(self.accounting, validate_alphas(self.alphas), self.delta)
        return Accounting(self.accounting, delta=self.delta)


class UnlockingConfig(_Strict):
    kind: Literal["none", "per_arrival", "per_step", "lifetime"] = "none"
    n: int | None = Field(None, ge=1)
    lifetime: float | None = Field(None, gt=0, allow_inf_nan=False)
    steps: int | None = Field(
        None,
        ge=1,
        description="lifetime: unlock in this many equal steps instead of linearly (the "
        "DPack artifact: 1000)",
    )

    @field_validator("steps")
    @classmethod
    def _steps_for_lifetime(cls, steps: int | None, info: ValidationInfo) -> int | None:
        # A field validator, not the model's, so the error names `steps` itself.
        kind = info.data.get("kind")
        if steps is not None and kind != "lifetime":
            raise ValueError(f"steps is only for lifetime unlocking, not {kind}")
        return steps

    @model_validator(mode="after")
    def _parameters(self) -> Self:
        if self.kind in ("per_arrival", "per_step") and self.n is None:
            raise ValueError(f"{self.kind} unlocking needs n")
        if self.kind == "lifetime" and self.lifetime is None:
            raise ValueError("lifetime unlocking needs lifetime")
        if self.kind != "lifetime" and self.lifetime is not None:
            raise ValueError(f"lifetime is only for lifetime unlocking, not {self.kind}")
        if self.kind in ("none", "lifetime") and self.n is not None:
            raise ValueError(f"n is only for per_arrival or per_step unlocking, not {self.kind}")
        return self


class PolicyConfig(_Strict):
    """The policy, its options, the round period T and the unlocking strategy."""

    policy: str = "dpack"
    period: float = Field(1.0, gt=0, allow_inf_nan=False, description="T, between rounds")
    unlocking: UnlockingConfig = Field(default_factory=UnlockingConfig)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_policy(self) -> Self:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; choose from {', '.join(POLICIES)}")
        get_policy(self.policy).options(self.options)
        return self

    def make_unlocking(self) -> Unlocking:
        spec = self.unlocking
        if spec.kind == "per_arrival":
            assert spec.n is not None
            return PerArrival(spec.n)
        if spec.kind == "per_step":
            assert spec.n is not None
            return PerStep(spec.n, self.period)
        if spec.kind == "lifetime":
            assert spec.lifetime is not None
            return Lifetime(spec.lifetime, spec.steps)
        return AllUnlocked()
