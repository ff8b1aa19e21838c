"""Workloads by name, with their typed parameters: what a config's `workload:` resolves to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dpsched.errors import InputError, from_validation_error
from dpsched.sim.workloads.alibaba import (
    AlibabaSyntheticParams,
    alibaba_synthetic,
    read_alibaba_csv,
)
from dpsched.sim.workloads.base import Task
from dpsched.sim.workloads.microbenchmark import MicrobenchmarkParams, microbenchmark
from dpsched.sim.workloads.mixed import MixedParams, mixed_tasks
from dpsched.sim.workloads.privatekube import (
    AmazonParams,
    PrivateKubeParams,
    amazon,
    privatekube,
)


@dataclass(frozen=True)
class Generator:
    name: str
    summary: str
    params_model: type[BaseModel]
    generate: Callable[[int, int, Any, int], list[Task]]

    def params(self, values: dict[str, Any]) -> BaseModel:
        try:
            return self.params_model.model_validate(values)
        except ValidationError as exc:
            raise from_validation_error("workload.params", exc) from None


GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator(
            "mixed",
            "Laplace/Gaussian/DP-SGD at eps 0.5 or 1, 1 or 10 random blocks",
            MixedParams,
            mixed_tasks,
        ),
        Generator(
            "microbenchmark", "DPack §6.2 heterogeneity knobs", MicrobenchmarkParams, microbenchmark
        ),
        Generator(
            "privatekube", "PrivateKube §6.1 mice and elephants", PrivateKubeParams, privatekube
        ),
        Generator(
            "amazon",
            "PrivateKube §6.2 Amazon Reviews macrobenchmark",
            AmazonParams,
            amazon,
        ),
        Generator(
            "alibaba-synthetic",
            "SYNTHETIC Alibaba-DP-shaped tasks (no trace)",
            AlibabaSyntheticParams,
            alibaba_synthetic,
        ),
    )
}
WORKLOAD_NAMES = (*GENERATORS, "alibaba")


def generate_tasks(
    name: str,
    *,
    n_tasks: int | None,
    seed: int,
    params: dict[str, Any],
    n_blocks: int,
    path: str | Path | None = None,
) -> list[Task]:
    """The task list of a config's workload section."""
    if name == "alibaba":
        if path is None:
            raise InputError(
                "workload.path", "the alibaba workload reads a task CSV; give its path"
            )
        if params:
            raise InputError("workload.params", "the alibaba CSV workload takes no params")
        return read_alibaba_csv(path, n_tasks)
    generator = GENERATORS.get(name)
    if generator is None:
        raise InputError(
            "workload.name", f"unknown workload {name!r}; choose from {', '.join(WORKLOAD_NAMES)}"
        )
    if path is not None:
        raise InputError("workload.path", f"only the alibaba workload reads a file, not {name}")
    if n_tasks is None:
        raise InputError("workload.n_tasks", f"the {name} generator needs n_tasks")
    return generator.generate(n_tasks, seed, generator.params(params), n_blocks)
