"""`dpsched serve --config FILE`: the same `accounting`, `alphas` and `scheduler` keys as a
simulation config, with `period` in seconds, and the service's own `retention`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError

from dpsched.engine.config import AccountingConfig, PolicyConfig
from dpsched.errors import from_validation_error
from dpsched.readers import read_mapping

DEFAULT_PERIOD_S = 5.0
DEFAULT_RETENTION_S = 86_400.0


class ServiceScheduler(PolicyConfig):
    period: float = Field(DEFAULT_PERIOD_S, gt=0, allow_inf_nan=False, description="seconds")


class ServiceConfig(AccountingConfig):
    scheduler: ServiceScheduler = Field(default_factory=ServiceScheduler)
    retention: float | None = Field(
        DEFAULT_RETENTION_S,
        ge=0,
        allow_inf_nan=False,
        description="seconds a finished claim stays in memory (null: for ever); after "
        "that it is read from the journal's archive",
    )


def load_service_config(path: str | Path | None) -> ServiceConfig:
    """The config file's settings, or the defaults (rdp, dpack, T = 5 s, all unlocked)."""
    data = {} if path is None else read_mapping(path, "--config")
    try:
        config = ServiceConfig.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error("config", exc, data) from None
    config.make_accounting()
    return config
