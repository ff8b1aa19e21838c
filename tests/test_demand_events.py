"""Demands from the ecosystem: dp_accounting DpEvents written as JSON, and zCDP. Priced by
dp_accounting's accountants; tested against textbook curves and against the same
mechanism written the dpsched way."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from dpsched.budget import Accounting
from dpsched.budget.demand import DemandSpec
from dpsched.core import BatchBuilder, BlockSpec, Ledger
from dpsched.errors import InputError

ALPHAS = (2.0, 4.0, 8.0, 16.0)
RDP = Accounting("rdp", ALPHAS)
DEMAND: TypeAdapter[Any] = TypeAdapter(DemandSpec)


def cost(demand: dict[str, Any], accounting: Accounting = RDP) -> np.ndarray:
    return accounting.demand_vector(DEMAND.validate_python(demand), "demand")


def gaussian(sigma: float) -> dict[str, Any]:
    return {"GaussianDpEvent": {"noise_multiplier": sigma}}


def test_a_gaussian_event_costs_alpha_over_two_sigma_squared() -> None:
    assert np.allclose(cost({"dp_event": gaussian(2.0)}), np.asarray(ALPHAS) / 8.0)


def test_dp_sgd_as_an_event_equals_the_subsampled_gaussian_mechanism() -> None:
    event = {
        "SelfComposedDpEvent": {
            "count": 300,
            "event": {
                "PoissonSampledDpEvent": {"sampling_probability": 0.02, "event": gaussian(1.1)}
            },
        }
    }
    mechanism = {
        "mechanism": "subsampled_gaussian",
        "sigma": 1.1,
        "sampling_rate": 0.02,
        "steps": 300,
    }
    assert np.array_equal(cost({"dp_event": event}), cost(mechanism))
    assert np.isclose(
        cost({"dp_event": event}, Accounting("basic")), cost(mechanism, Accounting("basic"))
    ).all()


def test_composed_events_add_up() -> None:
    laplace = {"LaplaceDpEvent": {"noise_multiplier": 3.0}}
    both = {"ComposedDpEvent": {"events": [gaussian(2.0), laplace]}}
    expected = cost({"dp_event": gaussian(2.0)}) + cost({"dp_event": laplace})
    assert np.allclose(cost({"dp_event": both}), expected)


def test_zcdp_is_rho_times_alpha_and_approx_zcdp_needs_delta_zero() -> None:
    assert np.allclose(cost({"zcdp": 0.05}), 0.05 * np.asarray(ALPHAS))
    assert np.array_equal(cost({"approx_zcdp": {"rho": 0.05, "delta": 0}}), cost({"zcdp": 0.05}))
    with pytest.raises(InputError, match="cannot be charged soundly") as refused:
        cost({"approx_zcdp": {"rho": 0.05, "delta": 1e-6}})
    assert refused.value.field == "demand.approx_zcdp.delta"


@settings(max_examples=40, deadline=None)
@given(st.floats(1e-4, 5.0), st.sampled_from([1e-9, 1e-7, 1e-5]))
def test_zcdp_in_basic_mode_is_within_the_known_conversion(rho: float, delta: float) -> None:
    """Bun and Steinke: rho-zCDP implies (rho + 2 sqrt(rho ln(1/delta)), delta)-DP."""
    epsilon = float(cost({"zcdp": rho}, Accounting("basic", delta=delta))[0])
    assert rho <= epsilon <= rho + 2 * math.sqrt(rho * math.log(1 / delta)) + 1e-9


@pytest.mark.parametrize(
    ("event", "field", "reason"),
    [
        ({"GaussDpEvent": {}}, "demand.dp_event", "unknown DpEvent 'GaussDpEvent'"),
        ({"Ledger": {}}, "demand.dp_event", "unknown DpEvent 'Ledger'"),
        ([1, 2], "demand.dp_event", "Input should be a valid dictionary"),
        (
            {"GaussianDpEvent": {"sigma": 1.0}},
            "demand.dp_event.GaussianDpEvent.sigma",
            "not a field of GaussianDpEvent (noise_multiplier)",
        ),
        (
            {"GaussianDpEvent": {"noise_multiplier": "loud"}},
            "demand.dp_event",
            "dp_accounting cannot price it",
        ),
        (
            {"NonPrivateDpEvent": {}},
            "demand.dp_event.NonPrivateDpEvent",
            "has no privacy guarantee to charge",
        ),
        (
            {"SelfComposedDpEvent": {"count": 3, "event": {"Nope": 1}}},
            "demand.dp_event.SelfComposedDpEvent.event",
            "unknown DpEvent 'Nope'",
        ),
        (
            {
                "ComposedDpEvent": {
                    "events": [
                        gaussian(1.0),
                        {
                            "SampledWithReplacementDpEvent": {
                                "source_dataset_size": 100,
                                "sample_size": 10,
                                "event": gaussian(1.0),
                            }
                        },
                    ]
                }
            },
            "demand.dp_event",
            "RDP accountant cannot price SampledWithReplacementDpEvent",
        ),
    ],
)
def test_bad_events_are_refused_naming_the_part(event: Any, field: str, reason: str) -> None:
    with pytest.raises((InputError, ValueError)) as refused:
        cost({"dp_event": event})
    text = str(refused.value)
    assert reason in text
    if isinstance(refused.value, InputError):
        assert refused.value.field == field


def test_claims_with_events_go_through_the_ledger_and_bulk_submission() -> None:
    ledger = Ledger(RDP)
    ledger.add_block(BlockSpec(id="b", epsilon=10, delta=1e-7))
    one = ledger.submit({"id": "one", "blocks": ["b"], "demand": {"zcdp": 0.01}}, 0.0)
    builder = BatchBuilder(ledger)
    builder.add_raw({"id": "two", "blocks": ["b"], "demand": {"dp_event": gaussian(7.0)}})
    (two,) = ledger.submit_batch(builder.build())
    assert np.allclose(one.demand[0], 0.01 * np.asarray(ALPHAS))
    assert np.allclose(two.demand[0], np.asarray(ALPHAS) / 98.0)
    with pytest.raises(InputError) as refused:
        ledger.submit({"id": "bad", "blocks": ["b"], "demand": {"dp_event": {"X": 1}}}, 0.0)
    assert refused.value.field.startswith("tasks.bad.demand")
