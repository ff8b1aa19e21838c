"""What a policy returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Status = Literal["optimal", "time_limit", "heuristic"]


@dataclass
class PolicyResult:
    """Claims to grant (indices into the problem), in allocation order."""

    allocated: list[int]
    status: Status = "heuristic"
    mip_gap: float | None = None
    runtime_s: float = 0.0
    details: dict[str, float] = field(default_factory=dict)
    reservations: dict[int, np.ndarray] = field(default_factory=dict)
    """Budget to set aside per claim index (one row per entry of the claim), applied
    before the grants: how round robin hands out shares that do not cover a demand yet."""
