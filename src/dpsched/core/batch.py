"""Many claims at once: validated and resolved into one `ClaimBatch` for `Ledger.submit_batch`.

Validating every task of a 300,000-task instance as pydantic models took tens of
seconds and gigabytes. `BatchBuilder.add_raw` takes the common shapes of the
instance format straight from the parsed data: an id, numbers, a list of block ids
and an `rdp` vector or `epsilon`; selectors and mechanisms are validated once per
distinct value (they repeat), and vectors are checked for NaN and sign in one numpy
pass. Anything else, and anything that fails a check, goes through `ClaimSpec`
exactly as a single `Ledger.submit` would, so the error a user sees is the same
message naming the same field; a property test holds the two paths to the same
outcome.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from dpsched.budget import MAX_BUDGET, DemandSpec
from dpsched.budget.demand import ElasticDemand
from dpsched.core.claims import ClaimBatch, ClaimSpec
from dpsched.core.flexible import Flex
from dpsched.core.selectors import BlockSelector
from dpsched.errors import InputError, from_validation_error

if TYPE_CHECKING:
    from dpsched.core.ledger import Ledger

_FAST_KEYS = frozenset({"id", "weight", "arrival", "timeout", "blocks", "demand"})
"""Claims with a block count or an amount of data choose their blocks (`core.flexible`):
they take the validated path."""
_SELECTORS: TypeAdapter[Any] = TypeAdapter(BlockSelector)
_DEMANDS: TypeAdapter[Any] = TypeAdapter(DemandSpec)


def _key(mapping: dict[str, Any]) -> Hashable | None:
    """A cache key for a selector or mechanism mapping: its items and their exact types
    (so that `1`, `1.0` and `True` never share a validation result)."""
    key = (tuple(mapping.items()), tuple(map(type, mapping.values())))
    try:
        hash(key)
    except TypeError:  # nested lists or mappings
        return _frozen(mapping)
    return key


def _frozen(value: Any) -> Hashable | None:
    """A hashable, type-exact key for plain data (None when it holds something else)."""
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return (kind.__name__, value)
    if kind is list:
        items = [_frozen(v) for v in value]
        return None if any(i is None for i in items) else ("list", tuple(items))
    if kind is dict:
        pairs = [(k, _frozen(v)) for k, v in value.items() if type(k) is str]
        if len(pairs) != len(value) or any(p[1] is None for p in pairs):
            return None
        return ("dict", tuple(sorted(pairs)))
    return None


_EXACT_INT = 2**53


def _plain_number(value: Any) -> bool:
    """A finite float, or an int that converts to one exactly (pydantic's float rules)."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    return kind is int and -_EXACT_INT <= value <= _EXACT_INT


class BatchBuilder:
    """Collects claims for one `submit_batch` on `ledger`, whose blocks must not change
    until the batch is submitted (selectors are resolved against them here).

    `strict_selectors`: a selector that can never match any block (unknown dataset or
    dimension) is an input error, not a silent rejection. Right where every block is
    known up front, as in an offline instance.
    """

    def __init__(self, ledger: Ledger, *, strict_selectors: bool = False) -> None:
        self._ledger = ledger
        self._strict = strict_selectors
        self._names = [b.id for b in ledger.blocks]
        self._where = {name: j for j, name in enumerate(self._names)}
        self._canonical = {name: name for name in self._names}
        """One string object per block id, however many claims name it."""
        self._dims = ledger.accounting.dims
        self._demand_key = "rdp" if ledger.accounting.mode == "rdp" else "epsilon"
        self._ids: list[str] = []
        self._seen: set[str] = set()
        self._weight: list[float] = []
        self._arrival: list[float] = []
        self._timeout: list[float] = []
        self._min_blocks: list[int] = []
        self._flex: list[Flex | None] = []
        self._elastic: list[ElasticDemand | None] = []
        self._ceiling: list[np.ndarray | None] = []
        self._block_ids: list[tuple[str, ...]] = []
        self._counts: list[int] = []
        self._flat_index: list[int] = []
        self._rows: list[Any] = []
        """Demand rows: one per claim with one demand for all its blocks, one per block
        for a per-block demand."""
        self._row_start: list[int] = []
        self._per_block: list[bool] = []
        self._unchecked: list[int] = []
        """Claims whose (single) row is a raw list still to be checked for NaN and sign."""
        self._raw: list[Any] = []
        self._selections: dict[Hashable, tuple[tuple[str, ...], Sequence[int]]] = {}
        self._demands: dict[Hashable, np.ndarray] = {}

    @property
    def count(self) -> int:
        return len(self._ids)

    # ------------------------------------------------------------------ adding
    def add(self, spec: ClaimSpec, raw: Any = None) -> None:
        """A validated claim, resolved exactly as `Ledger.submit` resolves it."""
        field = f"tasks.{spec.id}"
        self._claim_id(spec.id, field)
        if self._strict and spec.blocks is not None:
            self._check_selector(spec.blocks, f"{field}.blocks")
        block_ids, rows, flex, _valid = self._ledger.resolver.resolve(spec, field)
        index = [self._where[b] for b in block_ids]
        timeout = math.nan if spec.timeout is None else spec.timeout
        self._append(
            claim_id=spec.id,
            weight=spec.weight,
            arrival=spec.arrival,
            timeout=timeout,
            min_blocks=spec.min_blocks,
            index=index,
            raw=raw,
        )
        self._flex.append(flex)
        self._elastic.append(spec.demand if isinstance(spec.demand, ElasticDemand) else None)
        self._ceiling.append(self._ledger.resolver.ceiling_row(spec, field))
        self._row_start.append(len(self._rows))
        self._per_block.append(True)
        self._rows.extend(rows)

    def add_raw(self, item: Any) -> None:
        """One task as parsed from an instance file (a dict in the instance format)."""
        try:
            if not self._add_fast(item):
                self.add(self._validated(item), item)
        except InputError:
            # Report errors in file order, as one-by-one submission would: an earlier
            # claim's unchecked vector first, then this task's own schema errors.
            self._check_rows()
            self._validated(item)
            raise

    def _validated(self, item: Any) -> ClaimSpec:
        try:
            return ClaimSpec.model_validate(item)
        except ValidationError as exc:
            name = item.get("id") if isinstance(item, dict) else None
            prefix = f"tasks.{name}" if isinstance(name, str) and name else f"tasks[{self.count}]"
            raise from_validation_error(prefix, exc, item) from None

    def _add_fast(self, item: Any) -> bool:
        """Take `item` if it has one of the common shapes and plainly valid values."""
        if type(item) is not dict or not item.keys() <= _FAST_KEYS:
            return False
        claim_id = item.get("id")
        if type(claim_id) is not str or claim_id in self._seen or self._ledger.has_claim(claim_id):
            return False  # the slow path names the problem
        weight = item.get("weight", 1.0)
        arrival = item.get("arrival", 0.0)
        timeout = item.get("timeout")
        if not (
            claim_id
            and _plain_number(weight)
            and 0 < weight <= MAX_BUDGET
            and _plain_number(arrival)
            and (timeout is None or (type(timeout) is float or _plain_number(timeout)))
            and (timeout is None or timeout > 0)
        ):
            return False
        selection = self._fast_selection(item.get("blocks"), claim_id)
        if selection is None:
            return False
        row = self._fast_demand(item.get("demand"), claim_id)
        if row is None:
            return False
        block_ids, index = selection
        self._seen.add(claim_id)
        self._ids.append(claim_id)
        self._weight.append(weight)
        self._arrival.append(arrival)
        self._timeout.append(math.nan if timeout is None else timeout)
        self._min_blocks.append(1)
        self._flex.append(None)
        self._elastic.append(None)
        self._ceiling.append(None)
        self._counts.append(len(index))
        self._flat_index.extend(index)
        self._block_ids.append(block_ids)
        self._raw.append(item)
        self._row_start.append(len(self._rows))
        self._per_block.append(False)
        if type(row) is list:
            self._unchecked.append(len(self._ids) - 1)
        self._rows.append(row)
        return True

    def _fast_selection(
        self, blocks: Any, claim_id: str
    ) -> tuple[tuple[str, ...], Sequence[int]] | None:
        """(block ids, block indices) of a list of ids or a (cached) selector, or None."""
        if type(blocks) is list:
            if not blocks or set(map(type, blocks)) != {str}:
                return None
            distinct = set(blocks)
            if len(distinct) != len(blocks):
                return None
            if not distinct <= self._where.keys():
                blocks = self._ledger.resolver.known_blocks(blocks, None, f"tasks.{claim_id}")
            return tuple(map(self._canonical.__getitem__, blocks)), list(
                map(self._where.__getitem__, blocks)
            )
        if type(blocks) is not dict:
            return None
        key = _key(blocks)
        if key is None:
            return None
        cached = self._selections.get(key)
        if cached is not None:
            return cached
        try:
            selector = _SELECTORS.validate_python(blocks)
        except ValidationError:
            return None
        field = f"tasks.{claim_id}"
        if self._strict:
            self._check_selector(selector, f"{field}.blocks")
        selected = self._ledger.resolver.known_blocks(
            selector.select(self._ledger.blocks), None, field
        )
        cached = (
            tuple(map(self._canonical.__getitem__, selected)),
            tuple(map(self._where.__getitem__, selected)),
        )
        self._selections[key] = cached
        return cached

    def _fast_demand(self, demand: Any, claim_id: str) -> Any:
        """The demand row (a raw list to check later, or a resolved vector), or None."""
        if type(demand) is not dict or (len(demand) != 1 and "mechanism" not in demand):
            return None
        value = demand.get(self._demand_key)
        if self._demand_key == "rdp" and type(value) is list and len(demand) == 1:
            kinds = set(map(type, value))
            if len(value) != self._dims or not kinds <= {int, float}:
                return None
            if int in kinds and not all(map(_plain_number, value)):
                return None
            return value
        if self._demand_key == "epsilon" and len(demand) == 1 and _plain_number(value):
            return [value] if value is not None and value >= 0 else None
        if "mechanism" not in demand:
            return None
        key = _key(demand)
        if key is None:
            return None
        cached = self._demands.get(key)
        if cached is None:
            try:
                spec = _DEMANDS.validate_python(demand)
            except ValidationError:
                return None
            if isinstance(spec, ElasticDemand):
                return None  # a range: the claim carries it (validated path)
            cached = self._ledger.accounting.demand_vector(spec, f"tasks.{claim_id}.demand")
            self._demands[key] = cached
        return cached

    def _append(
        self,
        *,
        claim_id: str,
        weight: float,
        arrival: float,
        timeout: float,
        min_blocks: int,
        index: Sequence[int],
        raw: Any,
    ) -> None:
        self._ids.append(claim_id)
        self._weight.append(weight)
        self._arrival.append(arrival)
        self._timeout.append(timeout)
        self._min_blocks.append(min_blocks)
        self._counts.append(len(index))
        self._flat_index.extend(index)
        self._block_ids.append(tuple(self._names[j] for j in index))
        self._raw.append(raw)

    def _claim_id(self, claim_id: str, field: str) -> None:
        if claim_id in self._seen or self._ledger.has_claim(claim_id):
            raise InputError(f"{field}.id", f"duplicate task id {claim_id!r}")
        self._seen.add(claim_id)

    def _check_selector(self, selector: Any, field: str) -> None:
        problem = selector.unmatchable(self._ledger.blocks)
        if problem is not None:
            raise InputError(f"{field}.{problem[0]}", problem[1])

    # ---------------------------------------------------------------- building
    def _check_rows(self) -> None:
        """Raise for the first claim whose raw vector has a NaN or a negative value."""
        if not self._unchecked:
            return
        claims = np.asarray(self._unchecked, dtype=np.int64)
        starts = np.asarray(self._row_start, dtype=np.int64)[claims]
        values = np.asarray([self._rows[r] for r in starts.tolist()], dtype=float)
        bad = np.isnan(values).any(axis=1) | (values < 0).any(axis=1)
        if bad.any():
            culprit = int(claims[np.argmax(bad)])
            self._validated(self._raw[culprit])
            raise AssertionError("a vector with NaN or a negative value passed validation")
        self._unchecked = []

    def build(self) -> ClaimBatch:
        """The batch; refuses (naming the claim's field) a vector with NaN or a negative."""
        self._check_rows()
        counts = np.asarray(self._counts, dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        rows = np.asarray(self._rows, dtype=float).reshape(-1, self._dims)
        starts = np.asarray(self._row_start, dtype=np.int64)
        per_block = np.asarray(self._per_block, dtype=bool)
        within = np.arange(int(indptr[-1])) - np.repeat(indptr[:-1], counts)
        entry_row = np.repeat(starts, counts) + within * np.repeat(per_block, counts)
        return ClaimBatch(
            ids=self._ids,
            weight=np.asarray(self._weight, dtype=float),
            arrival=np.asarray(self._arrival, dtype=float),
            timeout=np.asarray(self._timeout, dtype=float),
            min_blocks=self._min_blocks,
            block_ids=self._block_ids,
            indptr=indptr,
            block_index=np.asarray(self._flat_index, dtype=np.int64),
            demand=rows[entry_row] if rows.size else np.zeros((0, self._dims)),
            flex=self._flex if any(f is not None for f in self._flex) else None,
            elastic=self._elastic if any(e is not None for e in self._elastic) else None,
            ceiling=self._ceiling if any(c is not None for c in self._ceiling) else None,
        )
