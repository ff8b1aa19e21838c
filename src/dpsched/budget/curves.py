"""Mechanism -> privacy cost, always through Google's `dp-accounting`.

Two outputs: an RDP curve over the ledger's orders (rdp accounting) and an
(epsilon, delta) epsilon (basic accounting). `dp-accounting`'s RDP accountant has
no Poisson-subsampled Laplace, but its privacy-loss-distribution (PLD) module
does; for that mechanism the Rényi divergence is read off the pessimistic PLD
(log E[exp((alpha-1) L)] / (alpha-1), max over the add and remove directions).
Pessimistic discretisation rounds losses up, so the curve is an upper bound; on
plain Laplace it matches the accountant's exact formula to ~1e-9 (tested).

`dp_accounting` (and the scipy modules it pulls in) takes about a second to import,
so it is imported inside the functions that compute curves: commands that never
compute one (help, basic-mode instances with explicit demands) start fast.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from dpsched.budget.conversion import rdp_to_epsilon
from dpsched.budget.demand import DpEventDemand, ElasticDemand, PricedSpec, ZcdpDemand
from dpsched.budget.events import event_from_json, unsupported_part
from dpsched.budget.mechanisms import (
    Composition,
    DpFtrl,
    Gaussian,
    Laplace,
    SubsampledGaussian,
    SubsampledLaplace,
)
from dpsched.errors import InputError

if TYPE_CHECKING:
    import dp_accounting

PLD_DISCRETIZATION = 1e-4
RELATIVE_DISCRETIZATION = 1e-5
"""PLD losses are discretised (rounded up: bounds stay sound) in steps of at least
PLD_DISCRETIZATION and at least this fraction of the mechanism's epsilon scale. A fixed
1e-4 step gave a weak mechanism (epsilon in the hundreds, e.g. Gaussian with sigma 0.05)
millions of points: gigabytes and minutes for one demand."""
CONVERSION_ORDERS: tuple[float, ...] = tuple(
    float(a) for a in np.concatenate([np.linspace(1.1, 10.9, 99), np.arange(11, 257)])
)
"""Dense orders for an RDP -> (epsilon, delta) conversion where PLD is unavailable."""
CALIBRATION_ORDERS: tuple[float, ...] = tuple(
    float(a)
    for a in np.concatenate(
        [np.linspace(1.25, 10.0, 36), np.arange(11, 65), 2.0 ** np.arange(7, 13)]
    )
)
"""Orders of the RDP accountant that converts an elastic claim's noise to (epsilon, delta).
Up to 4096: the conversion can never go below ln(1/delta) / (largest order - 1), so
targets as small as 0.005 at delta 1e-9 stay reachable."""
PLD_ROUNDING_MASS = 1e-12
"""Infinity mass below this is float residue of normalisation (seen: 5.6e-17), not a real
infinite privacy loss; above it the RDP bound is reported as infinite."""


def rdp_curve(spec: PricedSpec, alphas: tuple[float, ...]) -> np.ndarray:
    """RDP epsilon of `spec` at each order; `inf` where the bound does not converge.

    Cached per (spec, orders): workloads reuse a handful of mechanisms thousands of times.
    """
    return _rdp_curve_cached(spec, alphas).copy()


@contextmanager
def _quiet() -> Iterator[None]:
    """dp-accounting warns (Python warnings and absl log lines) when a series converges
    slowly at an order; the order then gets inf, which is the answer we want."""
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        absl_logger.setLevel(level)


@lru_cache(maxsize=4096)
def _rdp_curve_cached(spec: PricedSpec, alphas: tuple[float, ...]) -> np.ndarray:
    with _quiet():
        curve = spec.count * _single_rdp(spec, alphas)
    curve = np.where(np.isnan(curve), np.inf, curve)
    curve.setflags(write=False)
    return curve


def _single_rdp(spec: PricedSpec, alphas: tuple[float, ...]) -> np.ndarray:
    if isinstance(spec, Composition):
        return np.asarray(np.sum([_rdp_curve_cached(p, alphas) for p in spec.parts], axis=0))
    if isinstance(spec, SubsampledLaplace):
        return spec.steps * _pld_subsampled_laplace_rdp(
            spec.noise_scale, spec.sampling_rate, alphas
        )
    accountant = rdp_accountant(_event(spec), alphas)
    if accountant is None:
        raise InputError("dp_event", "dp_accounting's RDP accountant cannot price this event")
    accountant.compose(_event(spec))
    return np.asarray(accountant.rdp, dtype=float)


def check_event(spec: DpEventDemand, alphas: tuple[float, ...], basic: bool, field: str) -> None:
    """Build the event (errors name the bad part) and make sure dp_accounting can price
    it: its RDP accountant, or in basic mode its PLD accountant."""
    from dp_accounting import pld, rdp

    event = event_from_json(spec.dp_event, field)
    if basic and pld.PLDAccountant().supports(event):
        return
    if rdp_accountant(event, alphas) is None:
        part = unsupported_part(event, rdp.RdpAccountant(orders=list(alphas)).supports)
        raise InputError(field, f"dp_accounting's RDP accountant cannot price {part}")


def rdp_accountant(
    event: dp_accounting.DpEvent, alphas: tuple[float, ...]
) -> dp_accounting.rdp.RdpAccountant | None:
    """An RDP accountant over `alphas` that supports `event` (None if none does): add or
    remove one record, or replace-special for tree aggregation (DP-FTRL), which the
    former does not price."""
    import dp_accounting
    from dp_accounting import rdp

    for relation in (
        dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
        dp_accounting.NeighboringRelation.REPLACE_SPECIAL,
    ):
        accountant = rdp.RdpAccountant(orders=list(alphas), neighboring_relation=relation)
        if accountant.supports(event):
            return accountant
    return None


def _pld_subsampled_laplace_rdp(
    scale: float, sampling_rate: float, alphas: tuple[float, ...]
) -> np.ndarray:
    from dp_accounting import pld
    from scipy.special import logsumexp

    orders = np.asarray(alphas, dtype=float)
    try:
        distribution = pld.privacy_loss_distribution.from_laplace_mechanism(
            scale,
            sampling_prob=sampling_rate,
            # The loss of one Laplace release is at most 1 / scale.
            value_discretization_interval=max(PLD_DISCRETIZATION, RELATIVE_DISCRETIZATION / scale),
        )
    except OverflowError:  # exp(1 / scale) overflows: no privacy worth the name
        return np.full_like(orders, np.inf)
    worst = np.zeros_like(orders)
    for pmf in (distribution._pmf_remove, distribution._pmf_add):
        dense = pmf.to_dense_pmf()
        if dense._infinity_mass > PLD_ROUNDING_MASS:
            return np.full_like(orders, np.inf)
        losses = (np.arange(dense._probs.size) + dense._lower_loss) * dense._discretization
        with np.errstate(divide="ignore"):
            log_probs = np.log(dense._probs)
        exponents = log_probs[None, :] + (orders[:, None] - 1.0) * losses[None, :]
        worst = np.maximum(worst, logsumexp(exponents, axis=1) / (orders - 1.0))
    return np.asarray(np.maximum(worst, 0.0))


def _event(spec: PricedSpec) -> dp_accounting.DpEvent:
    """The `dp_accounting` event for one run (count = 1) of `spec`."""
    import dp_accounting

    if isinstance(spec, Laplace):
        return dp_accounting.LaplaceDpEvent(noise_multiplier=spec.noise_scale)
    if isinstance(spec, Gaussian):
        return dp_accounting.GaussianDpEvent(noise_multiplier=spec.sigma)
    if isinstance(spec, SubsampledGaussian):
        step = dp_accounting.PoissonSampledDpEvent(
            spec.sampling_rate, dp_accounting.GaussianDpEvent(spec.sigma)
        )
        return dp_accounting.SelfComposedDpEvent(step, spec.steps)
    if isinstance(spec, DpFtrl):
        return dp_accounting.SingleEpochTreeAggregationDpEvent(spec.sigma, spec.steps)
    if isinstance(spec, SubsampledLaplace):
        step = dp_accounting.PoissonSampledDpEvent(
            spec.sampling_rate, dp_accounting.LaplaceDpEvent(spec.noise_scale)
        )
        return dp_accounting.SelfComposedDpEvent(step, spec.steps)
    if isinstance(spec, DpEventDemand):
        return event_from_json(spec.dp_event, "dp_event")
    if isinstance(spec, ZcdpDemand):
        return dp_accounting.ZCDpEvent(rho=spec.zcdp)
    return dp_accounting.ComposedDpEvent(
        [dp_accounting.SelfComposedDpEvent(_event(p), p.count) for p in spec.parts]
    )


@lru_cache(maxsize=4096)
def dp_epsilon(spec: PricedSpec, delta: float) -> float:
    """(epsilon, delta)-DP epsilon of `spec` by PLD accounting: the basic-mode demand.

    PLD is the tightest accountant `dp-accounting` has for an (epsilon, delta) target.
    """
    import dp_accounting
    from dp_accounting import pld

    if not 0.0 < delta < 1.0:
        raise InputError(
            "delta", f"must be in (0, 1) to convert a mechanism to epsilon, got {delta}"
        )
    with _quiet():
        interval = max(PLD_DISCRETIZATION, RELATIVE_DISCRETIZATION * _epsilon_bound(spec, delta))
        accountant = pld.PLDAccountant(value_discretization_interval=interval)
        event = dp_accounting.SelfComposedDpEvent(_event(spec), spec.count)
        if not accountant.supports(event):
            # DP-FTRL's tree aggregation has no PLD; its RDP curve converts instead.
            return rdp_to_epsilon(CONVERSION_ORDERS, rdp_curve(spec, CONVERSION_ORDERS), delta)
        try:
            accountant.compose(event)
        except OverflowError:  # exp(loss) overflows inside dp-accounting: no privacy
            return math.inf
        epsilon = float(accountant.get_epsilon(delta))
    return epsilon


def _epsilon_bound(spec: PricedSpec, delta: float) -> float:
    """A cheap upper bound on the (epsilon, delta) epsilon of `spec`, to size the PLD
    discretization: the RDP conversion, with a subsampled Laplace counted without its
    subsampling (which can only lower its privacy loss)."""
    return rdp_to_epsilon(CONVERSION_ORDERS, _rdp_bound(spec), delta)


def _rdp_bound(spec: PricedSpec) -> np.ndarray:
    if isinstance(spec, SubsampledLaplace):
        plain = Laplace(mechanism="laplace", scale=spec.noise_scale, count=spec.count * spec.steps)
        return rdp_curve(plain, CONVERSION_ORDERS)
    if isinstance(spec, Composition):
        parts: np.ndarray = np.sum([_rdp_bound(p) for p in spec.parts], axis=0)
        return spec.count * parts
    return rdp_curve(spec, CONVERSION_ORDERS)


@lru_cache(maxsize=1024)
def noise_for(spec: ElasticDemand, epsilon: float) -> float:
    """The least noise with which `spec` is (epsilon, delta)-DP: Laplace by its own
    calibration (k runs of scale b are k/b-DP), Gaussians by dp-accounting's
    `calibrate_dp_mechanism` over its RDP accountant, checked (and nudged up) so that
    the epsilon it reports never exceeds the target."""
    if spec.mechanism == "laplace":
        noise = spec.steps / epsilon
        while elastic_epsilon(spec, noise) > epsilon:  # the division may round down
            noise = float(np.nextafter(noise, math.inf))
        return noise
    from dp_accounting import mechanism_calibration

    refusals = (
        mechanism_calibration.NoBracketIntervalFoundError,
        ValueError,
        ArithmeticError,
        RecursionError,  # its fallback bisection on an epsilon it cannot reach
    )
    try:
        noise = _calibrated(spec, epsilon)
    except refusals as exc:
        raise InputError(
            "epsilon", f"dp-accounting finds no noise for epsilon {epsilon:g}: {exc}"
        ) from None
    while elastic_epsilon(spec, noise) > epsilon:
        noise *= 1.0 + 1e-9
    return noise


def _calibrated(spec: ElasticDemand, epsilon: float) -> float:
    from dp_accounting import mechanism_calibration, rdp

    assert spec.delta is not None
    with _quiet():
        return float(
            mechanism_calibration.calibrate_dp_mechanism(
                lambda: rdp.RdpAccountant(orders=list(CALIBRATION_ORDERS)),
                lambda value: _event_at(spec, value),
                epsilon,
                spec.delta,
                # Noise must stay positive: search upwards from a tiny one.
                bracket_interval=mechanism_calibration.LowerEndpointAndGuess(1e-4, 1.0),
                tol=1e-9 * max(1.0, epsilon),
            )
        )


def elastic_epsilon(spec: ElasticDemand, noise: float) -> float:
    """The (epsilon, delta)-DP of `spec` run with `noise` (what a grant reports)."""
    if spec.mechanism == "laplace":
        return spec.steps / noise
    from dp_accounting import rdp

    assert spec.delta is not None
    with _quiet():
        accountant = rdp.RdpAccountant(orders=list(CALIBRATION_ORDERS))
        accountant.compose(_event_at(spec, noise))
        return float(accountant.get_epsilon(spec.delta))


def _event_at(spec: ElasticDemand, noise: float) -> dp_accounting.DpEvent:
    import dp_accounting

    mechanism = spec.at(noise)
    return dp_accounting.SelfComposedDpEvent(_event(mechanism), mechanism.count)
