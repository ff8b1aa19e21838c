from __future__ import annotations

import math

import numpy as np
import pytest
from dp_accounting import GaussianDpEvent, pld, rdp
from pydantic import TypeAdapter

from dpsched.budget import (
    DEFAULT_ALPHAS,
    Accounting,
    Composition,
    DemandSpec,
    Gaussian,
    Laplace,
    SubsampledGaussian,
    SubsampledLaplace,
    dp_epsilon,
    rdp_curve,
    rdp_to_epsilon,
    rdp_to_epsilon_classic,
)
from dpsched.errors import InputError

ALPHAS = DEFAULT_ALPHAS


def test_rdp_capacity_follows_the_global_guarantee_and_clamps_at_zero() -> None:
    capacity = Accounting("rdp").capacity(10.0, 1e-7)
    for alpha, c in zip(ALPHAS, capacity, strict=True):
        assert c == pytest.approx(max(10.0 - math.log(1e7) / (alpha - 1), 0.0))
    assert capacity[:4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert (np.diff(capacity) >= 0).all()


def test_basic_capacity_is_epsilon() -> None:
    assert Accounting("basic").capacity(3.0, None).tolist() == [3.0]


@pytest.mark.parametrize(
    ("epsilon", "delta", "field"),
    [
        (-1.0, 1e-7, "b.epsilon"),
        (math.nan, 1e-7, "b.epsilon"),
        (1.0, 0.0, "b.delta"),
        (1.0, None, "b.delta"),
    ],
)
def test_bad_block_budget_names_the_field(epsilon: float, delta: float | None, field: str) -> None:
    with pytest.raises(InputError) as info:
        Accounting("rdp").capacity(epsilon, delta, "b")
    assert info.value.field == field


@pytest.mark.parametrize("alphas", [(0.5, 2.0), (1.0, 2.0), (2.0, 2.0), (3.0, 2.0), ()])
def test_invalid_orders_are_refused(alphas: tuple[float, ...]) -> None:
    with pytest.raises(InputError):
        Accounting("rdp", alphas)


def test_gaussian_curve_is_alpha_over_two_sigma_squared() -> None:
    curve = rdp_curve(Gaussian(mechanism="gaussian", sigma=2.0), ALPHAS)
    np.testing.assert_allclose(curve, np.asarray(ALPHAS) / 8.0)


def test_count_and_composition_add_up() -> None:
    lap = Laplace(mechanism="laplace", scale=2.0)
    gau = Gaussian(mechanism="gaussian", sigma=3.0, count=4)
    both = Composition(mechanism="composition", parts=[lap, gau], count=2)
    np.testing.assert_allclose(
        rdp_curve(both, ALPHAS), 2 * (rdp_curve(lap, ALPHAS) + rdp_curve(gau, ALPHAS))
    )
    np.testing.assert_allclose(
        rdp_curve(gau, ALPHAS), 4 * rdp_curve(Gaussian(mechanism="gaussian", sigma=3.0), ALPHAS)
    )


def test_laplace_by_epsilon_equals_laplace_by_scale() -> None:
    a = rdp_curve(Laplace(mechanism="laplace", epsilon=0.5), ALPHAS)
    b = rdp_curve(Laplace(mechanism="laplace", scale=2.0), ALPHAS)
    np.testing.assert_allclose(a, b)
    assert (a < 0.5 + 1e-12).all()


def test_subsampled_laplace_without_subsampling_matches_exact_laplace() -> None:
    """The PLD-derived Rényi divergence reproduces dp-accounting's exact Laplace RDP."""
    pld_based = rdp_curve(
        SubsampledLaplace(mechanism="subsampled_laplace", scale=2.0, sampling_rate=1.0), ALPHAS
    )
    exact = rdp_curve(Laplace(mechanism="laplace", scale=2.0), ALPHAS)
    np.testing.assert_allclose(pld_based, exact, rtol=1e-4)
    assert (pld_based >= exact - 1e-9).all()


def test_subsampling_and_steps_behave() -> None:
    one = rdp_curve(
        SubsampledLaplace(mechanism="subsampled_laplace", epsilon=1, sampling_rate=0.01), ALPHAS
    )
    many = rdp_curve(
        SubsampledLaplace(mechanism="subsampled_laplace", epsilon=1, sampling_rate=0.01, steps=50),
        ALPHAS,
    )
    full = rdp_curve(Laplace(mechanism="laplace", epsilon=1), ALPHAS)
    assert (one < full / 10).all()
    np.testing.assert_allclose(many, 50 * one)


def test_subsampled_gaussian_at_full_rate_is_the_gaussian() -> None:
    sgd = SubsampledGaussian(mechanism="subsampled_gaussian", sigma=1.5, sampling_rate=1.0, steps=3)
    np.testing.assert_allclose(
        rdp_curve(sgd, ALPHAS),
        3 * rdp_curve(Gaussian(mechanism="gaussian", sigma=1.5), ALPHAS),
        rtol=1e-9,
    )


def test_dp_sgd_is_cheaper_at_low_orders_than_the_plain_gaussian() -> None:
    sgd = rdp_curve(
        SubsampledGaussian(
            mechanism="subsampled_gaussian", sigma=1.0, sampling_rate=0.01, steps=100
        ),
        ALPHAS,
    )
    assert sgd[0] < rdp_curve(Gaussian(mechanism="gaussian", sigma=1.0), ALPHAS)[0]


def test_conversions() -> None:
    curve = rdp_curve(Gaussian(mechanism="gaussian", sigma=2.0), ALPHAS)
    improved = rdp_to_epsilon(ALPHAS, curve, 1e-6)
    classic = rdp_to_epsilon_classic(ALPHAS, curve, 1e-6)
    assert classic == pytest.approx(min(a / 8 + math.log(1e6) / (a - 1) for a in ALPHAS))
    assert 0 < improved <= classic
    eps, _ = rdp.compute_epsilon(list(ALPHAS), list(curve), 1e-6)
    assert improved == pytest.approx(eps)
    assert rdp_to_epsilon(ALPHAS, np.zeros(len(ALPHAS)), 1e-6) == 0.0


def test_basic_mode_mechanism_is_its_dp_epsilon() -> None:
    basic = Accounting("basic", delta=1e-7)
    spec = TypeAdapter(DemandSpec).validate_python({"mechanism": "laplace", "epsilon": 0.5})
    assert basic.demand_vector(spec)[0] == pytest.approx(0.5, rel=1e-3)
    gaussian = Gaussian(mechanism="gaussian", sigma=2.0)
    # PLD accounting is at least as tight as RDP conversion.
    rdp_bound = rdp_to_epsilon(ALPHAS, rdp_curve(gaussian, ALPHAS), 1e-7)
    assert 0 < dp_epsilon(gaussian, 1e-7) <= rdp_bound + 1e-6


def test_demand_kinds_are_checked_against_the_mode() -> None:
    adapter = TypeAdapter(DemandSpec)
    with pytest.raises(InputError, match="accounting: basic"):
        Accounting("rdp").demand_vector(adapter.validate_python({"epsilon": 1.0}))
    with pytest.raises(InputError, match="accounting: rdp"):
        Accounting("basic").demand_vector(adapter.validate_python({"rdp": [1.0]}))
    with pytest.raises(InputError, match="12 values"):
        Accounting("rdp").demand_vector(adapter.validate_python({"rdp": [1.0, 2.0]}))


def test_composition_demands_work_in_both_modes() -> None:
    spec = TypeAdapter(DemandSpec).validate_python(
        {
            "mechanism": "composition",
            "parts": [
                {"mechanism": "laplace", "epsilon": 0.5},
                {"mechanism": "gaussian", "sigma": 5.0},
            ],
        }
    )
    basic = Accounting("basic").demand_vector(spec)[0]
    gaussian_alone = dp_epsilon(Gaussian(mechanism="gaussian", sigma=5.0), 1e-7)
    assert gaussian_alone < basic < 0.5 + gaussian_alone + 1e-6
    parts = rdp_curve(Laplace(mechanism="laplace", epsilon=0.5), ALPHAS) + rdp_curve(
        Gaussian(mechanism="gaussian", sigma=5.0), ALPHAS
    )
    np.testing.assert_allclose(Accounting("rdp").demand_vector(spec), parts)


def test_weak_mechanisms_cost_little_and_stay_sound() -> None:
    """PLD steps scale with the mechanism's epsilon: a fixed 1e-4 step gave sigma 0.05
    millions of points (1.3 GB, 7 s). Coarser steps round losses up, so the answer can
    only grow, and at 1e-5 of epsilon it grows by less than that."""
    reference = pld.PLDAccountant(value_discretization_interval=1e-4)
    reference.compose(GaussianDpEvent(0.2))
    fine = reference.get_epsilon(1e-7)
    coarse = dp_epsilon(Gaussian(mechanism="gaussian", sigma=0.2), 1e-7)
    assert fine - 1e-9 <= coarse <= fine * (1 + 1e-4)
    weak = dp_epsilon(Gaussian(mechanism="gaussian", sigma=0.001), 1e-7)
    assert weak > 1e5  # epsilon about 5e5, computed in well under a second
    assert weak <= rdp_to_epsilon(
        tuple(range(2, 200)),
        rdp_curve(Gaussian(mechanism="gaussian", sigma=0.001), tuple(range(2, 200))),
        1e-7,
    )


def test_overflowing_mechanisms_are_infinitely_expensive() -> None:
    """dp-accounting overflows (exp(1 / scale)) on a Laplace scale of 1e-4 with
    subsampling: no privacy worth the name, so the demand is infinite, never a crash."""
    spec = SubsampledLaplace(
        mechanism="subsampled_laplace", scale=1e-4, sampling_rate=0.5, steps=10
    )
    assert dp_epsilon(spec, 1e-7) == math.inf
    assert np.isinf(rdp_curve(spec, (2.0, 8.0))).all()


def test_validated_rdp_demands_are_shared_read_only_and_bad_ones_still_fail() -> None:
    """Vectors kept by value are the validated ones, protected from callers' writes; a
    demand of another length, or with a bad value, is still refused with its field."""
    short = Accounting("rdp", (2.0, 4.0))
    spec = TypeAdapter(DemandSpec).validate_python({"rdp": [0.5, 2e6]})
    first = short.demand_vector(spec, "tasks.a.demand")
    again = short.demand_vector(TypeAdapter(DemandSpec).validate_python({"rdp": [0.5, 2e6]}))
    assert first.tolist() == [0.5, math.inf] and again is first
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 0.0
    longer = Accounting("rdp", (2.0, 4.0, 8.0))
    with pytest.raises(InputError, match=r"tasks\.b\.demand\.rdp: needs 3 values"):
        longer.demand_vector(spec, "tasks.b.demand")
