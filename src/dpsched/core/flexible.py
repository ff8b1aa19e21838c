"""Flexible block choice: a claim that asks for some of its matching blocks gets them
chosen when it is granted, not when it is submitted (PrivateKube grants any `maxN` of
the matching blocks that have budget; the pod-annotation design asks for a minimum and
an expected amount of data).

A claim is flexible when it has a selector and states any of `min_blocks`,
`max_blocks`, `min_data` or `expected_data`. Policies keep working on fixed rows: before
each round the ledger *materialises* every pending flexible claim into the block set
this rule picks from the budget as it stands, and the grant is checked by the admission
rule as usual.

The rule. Let F be the matching blocks on which the claim fits now (its demand fits
the unlocked budget at some usable order), most recent first. Among the subsets S of F
that are valid (min_blocks <= |S| <= max_blocks, data(S) >= min_data, and, when
expected_data is given, not redundant: S without its oldest block does not already
meet both expected_data and min_blocks), the chosen set is the one whose blocks,
listed most recent first, are lexicographically greatest (a longer list beats its own
prefix). So: the most recent blocks, as many as `max_blocks` allows or until
`expected_data` records are covered, skipping a recent block only when taking it would
make the minimum impossible. No valid subset: the claim waits aside, out of the
arrays policies read (it is shown with the blocks it waits for, so that its reason
names them). `data` is the sum of the blocks' `size` (a block without one counts 0
records).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from dpsched.core.selectors import BlockSelector

FLEXIBLE_KEYS = frozenset({"min_blocks", "max_blocks", "min_data", "expected_data"})
_SELECTOR: TypeAdapter[BlockSelector] = TypeAdapter(BlockSelector)


@dataclass(frozen=True, eq=False)
class Flex:
    """What a flexible claim asked for: re-read at every round."""

    selector: BlockSelector
    row: np.ndarray
    """The demand on each block it gets (one row: flexible claims state one demand)."""
    min_blocks: int = 1
    max_blocks: int | None = None
    min_data: int = 0
    expected_data: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "selector": self.selector.model_dump(mode="json"),
            "row": self.row.tolist(),
            "min_blocks": self.min_blocks,
            "max_blocks": self.max_blocks,
            "min_data": self.min_data,
            "expected_data": self.expected_data,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Flex:
        selector = _SELECTOR.validate_python(data["selector"])
        return cls(
            selector=selector,
            row=np.asarray(data["row"], dtype=float),
            min_blocks=int(data["min_blocks"]),
            max_blocks=data["max_blocks"],
            min_data=int(data["min_data"]),
            expected_data=data["expected_data"],
        )


def choose(flex: Flex, recent_first: list[int], fits: list[bool], sizes: list[int]) -> list[int]:
    """The chosen blocks (most recent first) among `recent_first` (block indices, most
    recent first, with whether the claim fits on each now and its size); [] if none
    is valid. Greedy with look-ahead, equal to the rule in the module docstring."""
    candidates = [(j, s) for j, ok, s in zip(recent_first, fits, sizes, strict=True) if ok]
    cap = len(candidates) if flex.max_blocks is None else min(flex.max_blocks, len(candidates))
    chosen: list[int] = []
    data = 0
    for k, (j, size) in enumerate(candidates):
        if len(chosen) == cap or _enough(flex, len(chosen), data):
            break
        if not _completable(flex, len(chosen) + 1, data + size, candidates[k + 1 :], cap):
            continue  # taking it would leave the minimum out of reach
        chosen.append(j)
        data += size
    valid = len(chosen) >= flex.min_blocks and data >= flex.min_data
    return chosen if valid else []


def _enough(flex: Flex, count: int, data: int) -> bool:
    """Has the expected amount been reached (so that one more block is redundant)?"""
    return (
        flex.expected_data is not None
        and data >= flex.expected_data
        and (count >= flex.min_blocks and data >= flex.min_data)
    )


def _completable(flex: Flex, count: int, data: int, older: list[tuple[int, int]], cap: int) -> bool:
    """Can a set holding `count` blocks and `data` records still reach the minimum with
    blocks from `older` without going over `cap`?"""
    room = cap - count
    if room < 0:
        return False
    if count + min(room, len(older)) < flex.min_blocks:
        return False
    best = sorted((s for _, s in older), reverse=True)[:room]
    return data + sum(best) >= flex.min_data
