"""Privacy arithmetic: accounting modes, block capacities, mechanism curves, conversions."""

from dpsched.budget.accounting import DEFAULT_DELTA, MAX_BUDGET, Accounting, Mode
from dpsched.budget.conversion import rdp_to_epsilon, rdp_to_epsilon_classic
from dpsched.budget.curves import dp_epsilon, rdp_curve
from dpsched.budget.demand import DemandSpec, EpsilonDemand, RdpDemand
from dpsched.budget.mechanisms import (
    MECHANISM_NAMES,
    Composition,
    DpFtrl,
    Gaussian,
    Laplace,
    MechanismSpec,
    SubsampledGaussian,
    SubsampledLaplace,
)
from dpsched.budget.orders import DEFAULT_ALPHAS, validate_alphas

__all__ = [
    "DEFAULT_ALPHAS",
    "DEFAULT_DELTA",
    "MAX_BUDGET",
    "MECHANISM_NAMES",
    "Accounting",
    "Composition",
    "DemandSpec",
    "DpFtrl",
    "EpsilonDemand",
    "Gaussian",
    "Laplace",
    "MechanismSpec",
    "Mode",
    "RdpDemand",
    "SubsampledGaussian",
    "SubsampledLaplace",
    "dp_epsilon",
    "rdp_curve",
    "rdp_to_epsilon",
    "rdp_to_epsilon_classic",
    "validate_alphas",
]
