"""`dpsched serve --config FILE`: the same `accounting`, `alphas` and `scheduler` keys as a
simulation config, with `period` in seconds; nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dpsched.budget import Accounting, validate_alphas
from dpsched.engine.config import PolicyConfig
from dpsched.errors import from_validation_error
from dpsched.readers import read_mapping

DEFAULT_PERIOD_S = 5.0


class ServiceScheduler(PolicyConfig):
    period: float = Field(DEFAULT_PERIOD_S, gt=0, allow_inf_nan=False, description="seconds")


class ServiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounting: Literal["basic", "rdp"] = "rdp"
    alphas: tuple[float, ...] | None = None
    delta: float = Field(1e-7, gt=0, lt=1, description="basic-mode conversions and reports")
    scheduler: ServiceScheduler = Field(default_factory=ServiceScheduler)

    def make_accounting(self) -> Accounting:
        if self.alphas is not None:
            return Accounting(self.accounting, validate_alphas(self.alphas), self.delta)
        return Accounting(self.accounting, delta=self.delta)


def load_service_config(path: str | Path | None) -> ServiceConfig:
    """The config file's settings, or the defaults (rdp, dpack, T = 5 s, all unlocked)."""
    data = {} if path is None else read_mapping(path, "--config")
    try:
        config = ServiceConfig.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error("config", exc, data) from None
    config.make_accounting()
    return config
