"""What every workload generator returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dpsched.budget import Accounting
from dpsched.core import BlockSpec, ClaimSpec


@dataclass(frozen=True)
class Workload:
    accounting: Accounting
    blocks: tuple[BlockSpec, ...]
    tasks: tuple[ClaimSpec, ...]

    def to_instance_dict(self) -> dict[str, Any]:
        """The offline instance format (see README), e.g. to ship as a YAML example."""
        data: dict[str, Any] = {"accounting": self.accounting.mode}
        if self.accounting.mode == "rdp":
            data["alphas"] = list(self.accounting.alphas)
        data["delta"] = self.accounting.delta
        data["blocks"] = [b.model_dump(exclude_defaults=True) for b in self.blocks]
        data["tasks"] = [t.model_dump(mode="json", exclude_defaults=True) for t in self.tasks]
        return data
