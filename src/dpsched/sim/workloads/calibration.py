"""Noise calibrated to a target (epsilon, delta), so workloads can be stated as papers do."""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Literal

import dp_accounting
from dp_accounting import rdp

from dpsched.budget import Gaussian, Laplace, MechanismSpec, SubsampledGaussian

MechanismFamily = Literal["laplace", "gaussian", "subsampled_gaussian"]
SGD_SAMPLING_RATE = 0.01
SGD_STEPS = 1000


@lru_cache(maxsize=256)
def calibrated_mechanism(family: MechanismFamily, epsilon: float, delta: float) -> MechanismSpec:
    """The mechanism of `family` whose noise gives (epsilon, delta)-DP under RDP accounting.

    Laplace is epsilon-DP with scale 1/epsilon; Gaussian and DP-SGD
    (q = 0.01, 1000 steps) noise is found by `dp_accounting.calibrate_dp_mechanism`.
    """
    if family == "laplace":
        return Laplace(mechanism="laplace", epsilon=epsilon)

    def accountant() -> rdp.RdpAccountant:
        return rdp.RdpAccountant()

    if family == "gaussian":

        def event(sigma: float) -> dp_accounting.DpEvent:
            return dp_accounting.GaussianDpEvent(sigma)
    else:

        def event(sigma: float) -> dp_accounting.DpEvent:
            step = dp_accounting.PoissonSampledDpEvent(
                SGD_SAMPLING_RATE, dp_accounting.GaussianDpEvent(sigma)
            )
            return dp_accounting.SelfComposedDpEvent(step, SGD_STEPS)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sigma = float(
            dp_accounting.calibrate_dp_mechanism(
                accountant, event, epsilon, delta, dp_accounting.LowerEndpointAndGuess(1e-2, 1.0)
            )
        )
    if family == "gaussian":
        return Gaussian(mechanism="gaussian", sigma=sigma)
    return SubsampledGaussian(
        mechanism="subsampled_gaussian",
        sigma=sigma,
        sampling_rate=SGD_SAMPLING_RATE,
        steps=SGD_STEPS,
    )
