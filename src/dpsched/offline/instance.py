"""Offline instances (YAML or JSON): accounting, blocks and tasks, validated up front.

Everything is checked before anything runs: an invalid file produces one
InputError naming the field (e.g. `tasks[2].demand.rdp`) and the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dpsched.budget import DEFAULT_DELTA, Accounting
from dpsched.core import AllUnlocked, BlockSpec, ClaimSpec, Ledger
from dpsched.errors import InputError, from_validation_error


class InstanceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounting: Literal["basic", "rdp"] = "rdp"
    alphas: tuple[float, ...] | None = None
    delta: float = Field(DEFAULT_DELTA, gt=0.0, lt=1.0)
    blocks: list[BlockSpec] = Field(min_length=1)
    tasks: list[ClaimSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Instance:
    accounting: Accounting
    blocks: tuple[BlockSpec, ...]
    tasks: tuple[ClaimSpec, ...]

    def ledger(self) -> Ledger:
        """A fresh ledger holding every block (fully unlocked) and every task (submitted).

        Building it validates the instance end to end (unknown blocks, vector lengths),
        so each policy starts from an identical, already-checked state.
        """
        ledger = Ledger(self.accounting)
        unlocking = AllUnlocked()
        for block in self.blocks:
            unlocking.on_block_added(ledger, ledger.add_block(block), block.arrival)
        seen: set[str] = set()
        for i, task in enumerate(self.tasks):
            if task.id in seen:
                raise InputError(f"tasks[{i}].id", f"duplicate task id {task.id!r}")
            seen.add(task.id)
            ledger.submit(task, time=task.arrival)
        return ledger


def parse_instance(data: Any) -> Instance:
    if not isinstance(data, dict):
        raise InputError("instance", "must be a mapping with 'blocks' and 'tasks'")
    try:
        model = InstanceModel.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error("", exc) from None
    if model.accounting == "basic" and model.alphas is not None:
        raise InputError("alphas", "only meaningful with accounting: rdp")
    accounting = Accounting(model.accounting, model.alphas or Accounting().alphas, model.delta)
    instance = Instance(accounting, tuple(model.blocks), tuple(model.tasks))
    instance.ledger()
    return instance


def load_instance(path: str | Path) -> Instance:
    """Read and fully validate an instance file (.yaml, .yml or .json)."""
    source = Path(path)
    try:
        text = source.read_text()
    except OSError as exc:
        raise InputError(str(source), exc.strerror or "cannot read file") from None
    try:
        data = json.loads(text) if source.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InputError(
            str(source), f"not valid {source.suffix.lstrip('.') or 'YAML'}: {exc}"
        ) from None
    return parse_instance(data)
