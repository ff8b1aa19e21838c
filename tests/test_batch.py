"""Bulk submission (`BatchBuilder` + `Ledger.submit_batch`) against one-by-one `submit`.

The contract: for any list of raw task dicts, both paths either raise an `InputError`
with the same message (the bulk path before the ledger changes), or leave ledgers with
equal `to_dict()`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dpsched.budget import Accounting
from dpsched.core import (
    AllUnlocked,
    BatchBuilder,
    BlockSpec,
    ClaimSpec,
    ClaimState,
    Ledger,
    snapshot,
)
from dpsched.errors import InputError

ALPHAS = (2.0, 4.0, 8.0)


# ------------------------------------------------------------------ helpers
def make_ledger(mode: str, blocks: list[dict[str, Any]], unlock: list[float]) -> Ledger:
    ledger = Ledger(Accounting("rdp", ALPHAS) if mode == "rdp" else Accounting("basic"))
    for spec, fraction in zip(blocks, unlock, strict=True):
        index = ledger.add_block(BlockSpec.model_validate(spec))
        if fraction >= 1.0:
            AllUnlocked().on_block_added(ledger, index, 0.0)
        else:
            ledger.unlock(np.array([fraction]), np.array([index]))
    return ledger


def stamped_time(task: Any) -> float:
    """The time one-by-one submission stamps a claim with: its arrival as the ledger reads
    it (the bulk path stamps `claim.arrival`, a float). Passing the raw value instead would
    make `finished_at` differ for e.g. `"1.5"` or `2**53 + 1` (the ledger keeps `time` as
    given), a difference of the harness, not of the two paths."""
    try:
        return ClaimSpec.model_validate(task).arrival
    except ValidationError:
        return 0.0


def one_by_one(ledger: Ledger, tasks: list[Any]) -> tuple[int, str] | None:
    """Submit each task; (index, message) of the first InputError, None if none."""
    for i, task in enumerate(tasks):
        try:
            ledger.submit(task, time=stamped_time(task))
        except InputError as exc:
            return i, str(exc)
    return None


def in_bulk(ledger: Ledger, tasks: list[Any]) -> str | None:
    """`add_raw` each task, `build`, `submit_batch`: the InputError message, None if none.
    Only the builder may refuse; `submit_batch` of a built batch must succeed."""
    try:
        builder = BatchBuilder(ledger, strict_selectors=False)
        for task in tasks:
            builder.add_raw(task)
        batch = builder.build()
    except InputError as exc:
        return str(exc)
    ledger.submit_batch(batch)
    return None


def has_usable_id(task: Any) -> bool:
    return isinstance(task, dict) and isinstance(task.get("id"), str) and bool(task["id"])


# --------------------------------------------------------------- strategies
# Each field of a task is valid by default (including odd values both paths accept: bools,
# numeric strings, ints, inf and 1e300 demands, selectors matching nothing) and invalid
# at a per-scenario rate, so that examples range from clean batches of 8 claims to
# batches that fail at their first task.
valid_numbers = st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 3.0, 0, 1, 2, -0.0, True, "0.5"])
huge_numbers = st.sampled_from([1e12, 1e13, 1e300, math.inf, 2**53 + 1])
bad_numbers = st.sampled_from([-1.0, -math.inf, math.nan, 10**400, "x", None, [1.0]])

conditions = st.sampled_from(
    [
        *["time >= 1", "time < 2", "time == 0", "region == 'eu'", "region != eu"],
        "time >= 100",
        # Valid, but no block has them: the claim is rejected (strict_selectors=False).
        *["size > 3", "region > 1", "time >= 'a'"],
    ]
)
bad_conditions = st.sampled_from(["time >>= 1", "nonsense", "== 1", 7, None])
block_ids = st.sampled_from(["b0", "b1", "b2", "b3"])
bad_block_ids = st.sampled_from(["zz", "", 1, None, True, 1.5, ["b0"], {"id": "b0"}])
"""Unknown, non-string and unhashable ids."""


def known_ids(n_blocks: int) -> st.SearchStrategy[str]:
    return st.sampled_from([f"b{j}" for j in range(n_blocks)])


class Picker:
    """Draws a valid value, or (at `rate` percent) an invalid one."""

    def __init__(self, draw: st.DrawFn, rate: int) -> None:
        self.draw = draw
        self.rate = rate

    def bad(self) -> bool:
        return self.draw(st.integers(0, 99)) < self.rate

    def __call__(self, valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> Any:
        return self.draw(invalid) if self.bad() else self.draw(valid)


def rdp_vector(pick: Picker, dims: int) -> list[Any]:
    entries = st.one_of(st.floats(0.0, 4.0), valid_numbers, huge_numbers)
    values = pick.draw(st.lists(entries, min_size=dims, max_size=dims))
    if pick.bad():
        values[pick.draw(st.integers(0, dims - 1))] = pick.draw(bad_numbers)
    if pick.bad():
        values = pick.draw(st.sampled_from([values[:-1], [*values, 1.0], []]))
    return values


def demand_value(pick: Picker, mode: str, dims: int) -> Any:
    kind = pick.draw(st.integers(0, 5))
    if kind <= 2:
        if mode == "rdp" and not pick.bad():
            return {"rdp": rdp_vector(pick, dims)}
        if mode == "basic" and not pick.bad():
            return {"epsilon": pick(st.one_of(st.floats(0.0, 4.0), valid_numbers), bad_numbers)}
        # The other mode's demand: refused with the accounting mode named.
        return {"epsilon": 0.5} if mode == "rdp" else {"rdp": [0.5]}
    return pick(
        st.sampled_from(
            [
                {"mechanism": "laplace", "epsilon": 0.5},
                {"mechanism": "laplace", "scale": 4.0},
                {"mechanism": "gaussian", "sigma": 2.0},
                {"mechanism": "gaussian", "sigma": 2},
                # Kept cheap: in basic mode PLD accounting of e.g. sigma=0.01 needs > 8 GB.
                {"mechanism": "gaussian", "sigma": 1.0, "count": 3},
            ]
        ),
        st.sampled_from(
            [
                {"mechanism": "gaussian", "sigma": -1.0},
                {"mechanism": "laplace"},
                {"mechanism": "nope", "sigma": 1.0},
                {"mechanism": "gaussian", "sigma": 2.0, "rdp": [1.0] * dims},
                {"rdp": [0.5] * dims, "epsilon": 0.5},
                {},
                "0.5",
                [0.5] * dims,
            ]
        ),
    )


def selector(pick: Picker, n_blocks: int) -> Any:
    draw = pick.draw
    kind = draw(st.integers(0, 7))
    if kind <= 3:  # a list of ids, or the dict form
        ids: list[Any] = draw(st.lists(known_ids(n_blocks), min_size=1, unique=True))
        if pick.bad():
            ids.insert(draw(st.integers(0, len(ids))), draw(bad_block_ids | block_ids))
        if pick.bad():
            ids = draw(st.sampled_from([[], [*ids, ids[0]]]))
        if kind == 3:
            # The dict form, with the odd nested (unhashable) value for the selector cache.
            return {"ids": ids if not pick.bad() else [ids]}
        return ids
    if kind == 4:
        value: dict[str, Any] = {"most_recent": pick(st.sampled_from([1, 2, 5, 1.0]), bad_numbers)}
        if draw(st.booleans()):
            value["dataset"] = draw(st.sampled_from(["web", "app", "nosuch"]))
        return value
    if kind <= 6:
        value = {"dataset": draw(st.sampled_from(["web", "app", "default", "nosuch"]))}
        if draw(st.booleans()):
            value["where"] = draw(st.one_of(st.lists(conditions, max_size=2), conditions))
            if pick.bad():
                value["where"] = draw(
                    st.one_of(st.lists(bad_conditions, min_size=1), bad_conditions)
                )
        if pick.bad():
            value[draw(st.sampled_from(["extra", "ids"]))] = 1
        return value
    return pick(st.just({"most_recent": 1}), st.sampled_from(["b0", 5, {}, None]))


optional_fields: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "weight": (
        st.sampled_from([1.0, 2, 0.5, 1e12, True, "2"]),
        st.sampled_from([0, -1.0, math.nan, math.inf, 1e13, 10**400, "x", None]),
    ),
    "arrival": (
        st.sampled_from([0.0, 1.5, 3, -2.0, 2**53 + 1, True, "1.5"]),
        st.sampled_from([math.nan, math.inf, 10**400, None, "x"]),
    ),
    "timeout": (
        st.sampled_from([None, 1.0, 5, math.inf, True]),
        st.sampled_from([0, -1.0, math.nan, 10**400, "x"]),
    ),
    "min_blocks": (
        st.sampled_from([1, 2, 3, 5, True, 2.0, "2", 2**53, 2**53 + 1, 10**20]),
        st.sampled_from([0, -1, 1.5, "x", None, 10**400 * -1]),
    ),
    "max_blocks": (
        st.sampled_from([None, 1, 2, 3, 10**400]),
        st.sampled_from([0, -3, 1.5, "x"]),
    ),
}


@st.composite
def task(draw: st.DrawFn, index: int, mode: str, n_blocks: int, rate: int) -> Any:
    pick = Picker(draw, rate)
    if pick.bad() and pick.bad():
        return draw(st.sampled_from([None, "t0", ["t0"], 3]))
    item: dict[str, Any] = {}
    claim_id = pick(st.just(f"t{index}"), st.sampled_from(["t0", "t1", "", 3, None, "MISSING"]))
    if claim_id != "MISSING":
        item["id"] = claim_id
    dims = len(ALPHAS) if mode == "rdp" else 1
    if draw(st.integers(0, 5)) == 0:
        # Demand per block, naming the blocks itself or alongside a selector.
        chosen: list[Any] = draw(st.lists(known_ids(n_blocks), min_size=1, unique=True))
        if pick.bad():
            chosen.append(draw(bad_block_ids.filter(lambda b: isinstance(b, str))))
        item["demand_by_block"] = {b: demand_value(pick, mode, dims) for b in chosen}
        if draw(st.booleans()):
            item["blocks"] = list(chosen) if draw(st.booleans()) else selector(pick, n_blocks)
        if pick.bad():
            item["demand"] = demand_value(pick, mode, dims)
    else:
        item["blocks"] = selector(pick, n_blocks)
        item["demand"] = demand_value(pick, mode, dims)
        if pick.bad():
            del item[draw(st.sampled_from(["blocks", "demand"]))]
    for key, (valid, invalid) in optional_fields.items():
        if draw(st.integers(0, 3)) == 0:
            item[key] = pick(valid, invalid)
    if pick.bad():
        item[draw(st.sampled_from(["foo", "Demand", "block"]))] = 1
    return item


@st.composite
def scenario(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]], list[float], list[Any]]:
    mode = draw(st.sampled_from(["basic", "rdp"]))
    dims = len(ALPHAS) if mode == "rdp" else 1
    n_blocks = draw(st.integers(1, 4))
    blocks = []
    for j in range(n_blocks):
        spec: dict[str, Any] = {"id": f"b{j}", "arrival": float(j)}
        if draw(st.booleans()):
            spec["dataset"] = draw(st.sampled_from(["web", "app"]))
            spec["dimensions"] = {"time": j}
            if draw(st.booleans()):
                spec["dimensions"]["region"] = draw(st.sampled_from(["eu", "us"]))
        if draw(st.booleans()):
            values = st.sampled_from([0.0, 0.5, 1.0, 2.0, 10.0, 1e6])
            spec["capacity"] = draw(st.lists(values, min_size=dims, max_size=dims))
        else:
            spec["epsilon"] = draw(st.sampled_from([0.5, 1.0, 5.0, 20.0]))
            spec["delta"] = 1e-6
        blocks.append(spec)
    unlock = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=n_blocks, max_size=n_blocks))
    rate = draw(st.sampled_from([0, 0, 1, 3, 10]))
    n_tasks = draw(st.integers(0, 8))
    tasks = [draw(task(i, mode, n_blocks, rate)) for i in range(n_tasks)]
    return mode, blocks, unlock, tasks


# ----------------------------------------------------------------- property
@settings(max_examples=300, deadline=None)
@given(scenario())
def test_bulk_submission_matches_one_by_one(
    case: tuple[str, list[dict[str, Any]], list[float], list[Any]],
) -> None:
    mode, blocks, unlock, tasks = case
    single = make_ledger(mode, blocks, unlock)
    bulk = make_ledger(mode, blocks, unlock)
    empty = snapshot.to_dict(bulk)

    single_error = one_by_one(single, tasks)
    bulk_error = in_bulk(bulk, tasks)

    if single_error is None:
        assert bulk_error is None
        assert snapshot.to_dict(bulk) == snapshot.to_dict(single)
        # The pending index is built differently too (one `add_many` of batch arrays).
        ours, theirs = bulk.pending_arrays(), single.pending_arrays()
        assert ours.ids.tolist() == theirs.ids.tolist()
        for name in ("indptr", "entry_block", "entry_demand", "weights", "arrival", "deadline"):
            assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name
        assert np.array_equal(bulk.pending_fit().fit, single.pending_fit().fit)
        return
    index, message = single_error
    if not has_usable_id(tasks[index]):
        # A task without a usable id: `submit` names it `task`, the builder by its position
        # in the file (`tasks[i]`); the rest of the message is the same.
        assert message == "task" + message.removeprefix("task")
        message = f"tasks[{index}]" + message.removeprefix("task")
    assert bulk_error == message
    assert snapshot.to_dict(bulk) == empty


# ------------------------------------------------------ deterministic tests
def web_ledger(mode: str = "basic") -> Ledger:
    """Four unlocked blocks b0..b3 of dataset `web`, dimensions time=j and region=eu."""
    blocks = [
        {
            "id": f"b{j}",
            "dataset": "web",
            "dimensions": {"time": j, "region": "eu"},
            "arrival": float(j),
            "epsilon": 10.0,
            "delta": 1e-6,
        }
        for j in range(4)
    ]
    return make_ledger(mode, blocks, [1.0] * 4)


def raw_error(ledger: Ledger, tasks: list[Any], *, strict: bool = False) -> str:
    builder = BatchBuilder(ledger, strict_selectors=strict)
    with pytest.raises(InputError) as info:
        for item in tasks:
            builder.add_raw(item)
        builder.build()
    return str(info.value)


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (
            {"dataset": "nosuch"},
            "tasks.t1.blocks.dataset: unknown dataset 'nosuch' (the blocks have: web)",
        ),
        (
            {"most_recent": 2, "dataset": "nosuch"},
            "tasks.t1.blocks.dataset: unknown dataset 'nosuch' (the blocks have: web)",
        ),
        (
            {"dataset": "web", "where": ["time >= 1", "size > 3"]},
            "tasks.t1.blocks.where[1]: no block of dataset 'web' has dimension 'size' "
            "(they have: region, time)",
        ),
        (
            {"dataset": "web", "where": ["time >= 'a'"]},
            "tasks.t1.blocks.where[0]: dimension 'time' is a number on every block; "
            "time >= a can never hold",
        ),
        (
            {"dataset": "web", "where": "region < 3"},
            "tasks.t1.blocks.where[0]: dimension 'region' is text on every block; "
            "region < 3.0 can never hold",
        ),
    ],
)
@pytest.mark.parametrize("shape", ["fast", "validated"])
def test_strict_selectors_refuse_unmatchable_selectors(
    blocks: dict[str, Any], message: str, shape: str
) -> None:
    task: dict[str, Any] = {"id": "t1", "blocks": blocks, "demand": {"epsilon": 0.5}}
    if shape == "validated":  # a shape the fast path does not take: through ClaimSpec
        task = {"id": "t1", "blocks": blocks, "demand_by_block": {}}
    ok = {"id": "t0", "blocks": ["b0"], "demand": {"epsilon": 0.5}}

    ledger = web_ledger()
    before = snapshot.to_dict(ledger)
    assert raw_error(ledger, [ok, task], strict=True) == message
    assert snapshot.to_dict(ledger) == before

    # Without the strict check the same claim is merely rejected.
    relaxed = BatchBuilder(ledger)
    relaxed.add_raw(task)
    (claim,) = ledger.submit_batch(relaxed.build())
    assert claim.state is ClaimState.REJECTED
    assert claim.reason == "its selector matches no block (needs at least 1)"


def test_strict_selector_that_matches_nothing_by_value_is_rejected_not_refused() -> None:
    ledger = web_ledger()
    builder = BatchBuilder(ledger, strict_selectors=True)
    for claim_id in ("t1", "t2"):  # the second one hits the selector cache
        builder.add_raw(
            {
                "id": claim_id,
                "blocks": {"dataset": "web", "where": ["time >= 100"]},
                "demand": {"epsilon": 0.5},
                "arrival": 2.5,
            }
        )
    builder.add_raw({"id": "t3", "blocks": {"most_recent": 2}, "demand": {"epsilon": 0.5}})
    first, second, third = ledger.submit_batch(builder.build())
    for claim in (first, second):
        assert claim.state is ClaimState.REJECTED
        assert claim.reason == "its selector matches no block (needs at least 1)"
        assert claim.block_ids == ()
        assert claim.finished_at == 2.5
    assert third.state is ClaimState.PENDING
    assert third.block_ids == ("b2", "b3")
    assert ledger.pending() == [third]


@pytest.mark.parametrize(
    "second",
    [
        {"id": "t2", "blocks": ["b0"], "demand": {"rdp": [1.0, 1.0, 1.0]}, "foo": 1},
        {"id": "t2", "blocks": ["nosuch"], "demand": {"rdp": [1.0, 1.0, 1.0]}},
        {"id": "t1", "blocks": ["b0"], "demand": {"rdp": [1.0, 1.0, 1.0]}},
        {"id": "t2", "blocks": ["b0"], "demand": {"rdp": [1.0, 1.0]}},
        None,
    ],
)
def test_errors_are_reported_in_file_order(second: Any) -> None:
    """The NaN vector is only checked in bulk, later; its error still comes first."""
    nan_task = {"id": "t1", "blocks": ["b0", "b1"], "demand": {"rdp": [0.5, math.nan, 1.0]}}
    expected = "tasks.t1.demand.rdp: entry 1 must be a non-negative number (inf allowed), got nan"
    single = web_ledger("rdp")
    with pytest.raises(InputError) as info:
        single.submit(nan_task, time=0.0)
    assert str(info.value) == expected

    ledger = web_ledger("rdp")
    before = snapshot.to_dict(ledger)
    ok = {"id": "t0", "blocks": ["b0"], "demand": {"rdp": [0.5, 0.5, 0.5]}}
    tasks = [ok, nan_task] if second is None else [ok, nan_task, second]
    assert raw_error(ledger, tasks) == expected  # at build() when nothing follows
    assert snapshot.to_dict(ledger) == before


def test_submit_batch_refuses_an_id_already_in_the_ledger() -> None:
    ledger = web_ledger()
    builder = BatchBuilder(ledger)
    builder.add_raw({"id": "t1", "blocks": ["b0"], "demand": {"epsilon": 0.5}})
    builder.add_raw({"id": "t2", "blocks": ["b1"], "demand": {"epsilon": 0.5}})
    batch = builder.build()
    ledger.submit({"id": "t2", "blocks": ["b2"], "demand": {"epsilon": 1.0}}, time=0.0)
    before = snapshot.to_dict(ledger)
    with pytest.raises(InputError) as info:
        ledger.submit_batch(batch)
    assert str(info.value) == "tasks.t2.id: duplicate task id 't2'"
    assert snapshot.to_dict(ledger) == before


def test_submit_batch_twice_is_refused_and_changes_nothing() -> None:
    ledger = web_ledger()
    builder = BatchBuilder(ledger)
    builder.add_raw({"id": "t1", "blocks": ["b0"], "demand": {"epsilon": 0.5}})
    batch = builder.build()
    ledger.submit_batch(batch)
    before = snapshot.to_dict(ledger)
    with pytest.raises(InputError, match=r"^tasks\.t1\.id: duplicate task id 't1'$"):
        ledger.submit_batch(batch)
    assert snapshot.to_dict(ledger) == before


def test_batch_claims_have_read_only_demand_and_their_own_budget_views() -> None:
    ledger = web_ledger("rdp")
    builder = BatchBuilder(ledger)
    builder.add_raw({"id": "t1", "blocks": ["b0", "b1"], "demand": {"rdp": [0.5, 0.5, 0.5]}})
    builder.add_raw({"id": "t2", "blocks": ["b1", "b2"], "demand": {"rdp": [0.25, 0.5, 1.0]}})
    builder.add_raw(  # a per-block demand, through the validated path
        {"id": "t3", "demand_by_block": {"b1": {"rdp": [0.5, 0.5, 0.5]}, "b3": {"rdp": [1, 1, 1]}}}
    )
    first, second, third = ledger.submit_batch(builder.build())
    for claim in (first, second, third):
        assert claim.state is ClaimState.PENDING
        with pytest.raises(ValueError, match="read-only"):
            claim.demand[0, 0] = 9.0
    assert third.block_ids == ("b1", "b3")
    assert third.demand.tolist() == [[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]

    ledger.allocate("t2", request_id="r1", time=1.0)
    assert second.allocated.tolist() == [[0.25, 0.5, 1.0]] * 2
    assert first.allocated.tolist() == [[0.0] * 3] * 2
    assert third.allocated.tolist() == [[0.0] * 3] * 2
    ledger.consume("t2", request_id="r2", time=2.0, fraction=0.5)
    assert second.consumed.tolist() == [[0.125, 0.25, 0.5]] * 2
    assert first.consumed.tolist() == [[0.0] * 3] * 2
    assert third.consumed.tolist() == [[0.0] * 3] * 2
    assert first.reserved.tolist() == [[0.0] * 3] * 2
    assert first.demand.tolist() == [[0.5, 0.5, 0.5]] * 2
    assert ledger.invariant_violations() == []


# ------------------------------------- regressions (bugs the property test found)
def test_unhashable_block_id_in_a_list_is_an_input_error() -> None:
    """`submit` refuses a nested list as a block id with an InputError; the bulk path
    once raised TypeError from `set(blocks)` before checking the ids' type."""
    task = {"id": "t1", "blocks": [["b0"]], "demand": {"epsilon": 0.5}}
    single = web_ledger()
    with pytest.raises(InputError) as expected:
        single.submit(task, time=0.0)
    assert str(expected.value) == "tasks.t1.blocks[0]: Input should be a valid string"
    assert raw_error(web_ledger(), [task]) == str(expected.value)


def test_huge_min_blocks_keeps_its_reason() -> None:
    """A valid min_blocks above 2**53 keeps its exact value in the bulk path's rejection
    reason, as one-by-one: "needs at least 9007199254740993"."""
    task = {"id": "t1", "blocks": ["b0"], "demand": {"epsilon": 0.5}, "min_blocks": 2**53 + 1}
    single = web_ledger().submit(task, time=0.0)
    assert single.reason is not None
    assert single.reason.endswith("needs at least 9007199254740993")
    ledger = web_ledger()
    builder = BatchBuilder(ledger)
    builder.add_raw(task)
    (claim,) = ledger.submit_batch(builder.build())
    assert claim.reason == single.reason


@pytest.mark.parametrize("where", [7, None])
def test_where_that_is_not_a_list_is_an_input_error(where: Any) -> None:
    """A `where` that is not a list (or a string) is an InputError naming
    `tasks.t1.blocks...`, one-by-one and bulk alike; it once escaped pydantic as a
    TypeError from iterating it."""
    task = {"id": "t1", "blocks": {"dataset": "web", "where": where}, "demand": {"epsilon": 0.5}}
    with pytest.raises(InputError, match=r"^tasks\.t1\.blocks"):
        web_ledger().submit(task, time=0.0)
    with pytest.raises(InputError, match=r"^tasks\.t1\.blocks"):
        BatchBuilder(web_ledger()).add_raw(task)
