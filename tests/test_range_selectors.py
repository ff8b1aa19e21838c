"""Dimension ranges: blocks that cover a range of user ids, and conditions
`dimension in [low, high)` over numbers and ranges (User and User-Time DP selectors)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dpsched.budget import Accounting
from dpsched.core import BlockSpec, Condition, Ledger
from dpsched.core.selectors import DatasetSelector


def grid() -> list[BlockSpec]:
    """Users in groups of 1,000, over three days: a User-Time DP grid."""
    return [
        BlockSpec(
            id=f"u{u}-d{day}",
            epsilon=1.0,
            dataset="events",
            dimensions={"user_id": (1000.0 * u, 1000.0 * (u + 1)), "time": day},
        )
        for u in range(3)
        for day in range(3)
    ]


def select(*conditions: str) -> list[str]:
    return DatasetSelector(dataset="events", where=tuple(conditions)).select(grid())


def test_a_user_range_selects_the_groups_inside_it() -> None:
    assert select("user_id in [0, 2000)") == ["u0-d0", "u0-d1", "u0-d2", "u1-d0", "u1-d1", "u1-d2"]
    assert select("user_id in [500, 2000)") == ["u1-d0", "u1-d1", "u1-d2"]  # u0 sticks out
    assert select("user_id in [0, 3000)", "time in [1, 3)") == [
        "u0-d1",
        "u0-d2",
        "u1-d1",
        "u1-d2",
        "u2-d1",
        "u2-d2",
    ]
    assert select("time in [0, 1)", "user_id in [2000, 3000)") == ["u2-d0"]
    assert select("user_id >= 0") == []  # comparisons never hold for a range


def test_conditions_parse_print_and_refuse_bad_ranges() -> None:
    condition = Condition.parse("user_id in [0, 5e3)")
    assert (condition.op, condition.value) == ("in", (0.0, 5000.0))
    assert str(condition) == "user_id in [0, 5000)"
    assert Condition.parse(str(condition)) == condition
    with pytest.raises(ValueError, match="low < high"):
        Condition.parse("user_id in [5, 1)")
    with pytest.raises(ValueError, match="bounds must be numbers"):
        Condition.parse("user_id in [a, b)")
    with pytest.raises(ValidationError, match="only 'in' does"):
        Condition(dimension="time", op=">", value=(1.0, 2.0))
    with pytest.raises(ValidationError, match="unknown operator"):
        Condition(dimension="time", op="~", value=1.0)


def test_blocks_with_ranges_go_through_the_ledger() -> None:
    ledger = Ledger(Accounting("basic"))
    for spec in grid():
        ledger.add_block(spec)
    claim = ledger.submit(
        {
            "id": "c",
            "blocks": {"dataset": "events", "where": ["user_id in [0, 1000)", "time in [0, 2)"]},
            "demand": {"epsilon": 0.1},
        },
        0.0,
    )
    assert claim.block_ids == ("u0-d0", "u0-d1")
    with pytest.raises(ValidationError, match="low < high"):
        BlockSpec.model_validate({"id": "bad", "epsilon": 1, "dimensions": {"user_id": [5, 5]}})
