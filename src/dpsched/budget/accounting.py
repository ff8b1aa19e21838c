"""The accounting mode of a ledger: what one unit of budget is and how demands map to it.

Every budget quantity in dpsched is a float vector with one entry per dimension:
one dimension in basic mode (epsilon), one per RDP order in rdp mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dpsched.budget.conversion import rdp_to_epsilon
from dpsched.budget.curves import check_event, dp_epsilon, noise_for, rdp_curve
from dpsched.budget.demand import (
    ApproxZcdpDemand,
    DemandSpec,
    DpEventDemand,
    ElasticDemand,
    EpsilonDemand,
    PricedSpec,
    RdpDemand,
    ZcdpDemand,
)
from dpsched.budget.orders import DEFAULT_ALPHAS, validate_alphas
from dpsched.errors import InputError

Mode = Literal["basic", "rdp"]
DEFAULT_DELTA = 1e-7
MAX_BUDGET = 1e6
"""Largest block budget (epsilon, or capacity at an order). Nothing above it is a privacy
guarantee, and the bound keeps every sum of budgets finite (no float overflow) and every
budget's exact integer units (`core.exact`, 1e-12 each) within 64 bits. Demands above it
can never be admitted anywhere, so they count as infinite."""

CHECKED_RDP_LIMIT = 4096
_CHECKED_RDP: dict[tuple[tuple[float, ...], int], np.ndarray] = {}
"""Validated rdp demand vectors (read-only) by value and length: a simulation submits
the same few hundred curves 100,000 times, and validating each one again took a tenth
of the run. Only vectors that passed are kept, so a bad one still names its field."""


@dataclass(frozen=True)
class Accounting:
    """Mode, RDP orders, and the delta used where a conversion needs one.

    `delta` converts a mechanism to an epsilon in basic mode and reports the spent
    epsilon of a block whose capacity was given explicitly (without its own delta).
    """

    mode: Mode = "rdp"
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    delta: float = DEFAULT_DELTA

    def __post_init__(self) -> None:
        if self.mode not in ("basic", "rdp"):
            raise InputError("accounting", f"must be 'basic' or 'rdp', got {self.mode!r}")
        object.__setattr__(self, "alphas", validate_alphas(self.alphas))
        if not 0.0 < self.delta < 1.0:
            raise InputError("delta", f"must be in (0, 1), got {self.delta}")

    @property
    def dims(self) -> int:
        return len(self.alphas) if self.mode == "rdp" else 1

    def to_dict(self) -> dict[str, Any]:
        """As JSON: what a journal's first row and every snapshot record, so a ledger is
        never restored under accounting other than the one it was kept in."""
        return {"mode": self.mode, "alphas": list(self.alphas), "delta": self.delta}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Accounting:
        return cls(data["mode"], tuple(data["alphas"]), data["delta"])

    @property
    def labels(self) -> list[str]:
        """Human names of the dimensions, for tables and error messages."""
        if self.mode == "basic":
            return ["epsilon"]
        return [f"alpha={a:g}" for a in self.alphas]

    def capacity(self, epsilon: float, delta: float | None, field: str = "block") -> np.ndarray:
        """Block capacity from a global (eps_G, delta_G) guarantee.

        rdp: c(alpha) = max(eps_G - ln(1/delta_G)/(alpha-1), 0), so that spending within
        c at any one order converts back to (eps_G, delta_G)-DP (DPack Prop. 6).
        """
        if not math.isfinite(epsilon) or not 0 < epsilon <= MAX_BUDGET:
            raise InputError(
                f"{field}.epsilon", f"must be a number > 0 and <= {MAX_BUDGET:g}, got {epsilon:g}"
            )
        if self.mode == "basic":
            if delta is not None and not 0.0 <= delta < 1.0:
                raise InputError(f"{field}.delta", f"must be in [0, 1), got {delta}")
            return np.array([epsilon], dtype=float)
        if delta is None or not 0.0 < delta < 1.0:
            raise InputError(f"{field}.delta", f"rdp accounting needs delta in (0, 1), got {delta}")
        orders = np.asarray(self.alphas, dtype=float)
        return np.maximum(epsilon - math.log(1.0 / delta) / (orders - 1.0), 0.0)

    def check_vector(self, values: object, field: str, allow_inf: bool) -> np.ndarray:
        """Validate a user-given per-dimension vector (capacity or demand).

        Demands (`allow_inf`) may be infinite, and values above MAX_BUDGET become
        infinite; a capacity must be finite and at most MAX_BUDGET."""
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            raise InputError(field, "must be a list of numbers") from None
        if array.ndim != 1 or array.size != self.dims:
            raise InputError(
                field, f"needs {self.dims} values (one per {self._unit()}), got {array.size}"
            )
        if np.isnan(array).any() or (array < 0).any():
            raise InputError(field, "values must be non-negative numbers, not NaN")
        if allow_inf:
            return np.where(array > MAX_BUDGET, np.inf, array)
        if (array > MAX_BUDGET).any():
            raise InputError(field, f"values must be finite and at most {MAX_BUDGET:g}")
        return array

    def _unit(self) -> str:
        return "RDP order" if self.mode == "rdp" else "dimension"

    def demand_vector(self, spec: DemandSpec, field: str = "demand") -> np.ndarray:
        """The per-dimension cost of one demand spec under this accounting."""
        if isinstance(spec, EpsilonDemand):
            if self.mode == "rdp":
                raise InputError(
                    f"{field}.epsilon",
                    "an epsilon demand needs accounting: basic; give 'rdp' or a 'mechanism'",
                )
            return np.array([spec.epsilon if spec.epsilon <= MAX_BUDGET else np.inf])
        if isinstance(spec, RdpDemand):
            if self.mode == "basic":
                raise InputError(
                    f"{field}.rdp", "an rdp demand needs accounting: rdp; give 'epsilon' instead"
                )
            key = (spec.rdp, self.dims)
            vector = _CHECKED_RDP.get(key)
            if vector is None:
                vector = self.check_vector(spec.rdp, f"{field}.rdp", allow_inf=True)
                vector.setflags(write=False)
                if len(_CHECKED_RDP) >= CHECKED_RDP_LIMIT:
                    _CHECKED_RDP.clear()
                _CHECKED_RDP[key] = vector
            return vector
        if isinstance(spec, ApproxZcdpDemand):
            if spec.approx_zcdp.delta > 0:
                raise InputError(
                    f"{field}.approx_zcdp.delta",
                    "approximate zCDP with delta > 0 cannot be charged soundly: budgets are "
                    "per RDP order and nothing would account for the claim's own delta; "
                    "give delta 0 (that is zcdp) or the mechanism itself",
                )
            spec = ZcdpDemand(zcdp=spec.approx_zcdp.rho)
        if isinstance(spec, ElasticDemand):
            if self.mode != "rdp":
                raise InputError(f"{field}.epsilon", "an epsilon range needs accounting: rdp")
            try:
                most = self.elastic_noise(spec)[1]
            except InputError as exc:
                raise InputError(f"{field}.epsilon", exc.reason) from None
            return self.elastic_curve(spec, most)
        if not isinstance(spec, DpEventDemand):
            return self._priced(spec)
        check_event(spec, self.alphas, self.mode == "basic", f"{field}.dp_event")
        try:  # a user's event may hold values its accountant refuses (e.g. a string)
            return self._priced(spec)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise InputError(f"{field}.dp_event", f"dp_accounting cannot price it: {exc}") from None

    def elastic_noise(self, spec: ElasticDemand) -> tuple[float, float]:
        """(least, most) noise of an elastic demand: at the top and bottom of its range."""
        low, high = spec.epsilon
        return noise_for(spec, high), noise_for(spec, low)

    def elastic_curve(self, spec: ElasticDemand, noise: float) -> np.ndarray:
        """What an elastic demand costs when run with `noise` (infinite where the
        accountant overflows: so little noise never fits anywhere)."""
        try:
            return self._priced(spec.at(noise))
        except (ArithmeticError, ValueError):
            return np.full(self.dims, np.inf)

    def _priced(self, spec: PricedSpec) -> np.ndarray:
        if self.mode == "basic":
            epsilon = dp_epsilon(spec, self.delta)
            return np.array([epsilon if epsilon <= MAX_BUDGET else np.inf])
        curve = rdp_curve(spec, self.alphas)
        return np.where(curve > MAX_BUDGET, np.inf, curve)

    def spent_epsilon(self, spent: np.ndarray, delta: float | None) -> float:
        """The (epsilon, delta)-DP guarantee a block has spent, for reports."""
        if self.mode == "basic":
            return float(spent[0])
        return rdp_to_epsilon(self.alphas, spent, delta if delta is not None else self.delta)
