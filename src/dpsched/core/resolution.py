"""How a claim as written becomes what the ledger holds: the blocks it reads and its
demand row on each, resolved once, at submission (and for a dry run).

Selectors are matched against the blocks known now; demands are priced into the
accounting's vectors; a flexible claim's blocks are chosen by the rule of
`core.flexible` from the budget as it stands; a claim that can never run is given the
reason why. Nothing here changes the ledger.
"""

from __future__ import annotations

import numpy as np

from dpsched.budget import MAX_BUDGET, Accounting
from dpsched.budget.demand import ElasticDemand
from dpsched.core.admission import entries_fit, rows_fit
from dpsched.core.block_budget import BlockBudget
from dpsched.core.blocks import BlockSpec
from dpsched.core.claims import Claim, ClaimBatch, ClaimSpec
from dpsched.core.flexible import Flex, choose
from dpsched.core.selectors import ExplicitSelector, RecentSelector
from dpsched.errors import InputError


class Resolver:
    """Resolves claims against the ledger's blocks and their budget."""

    def __init__(self, budget: BlockBudget, accounting: Accounting) -> None:
        self.budget = budget
        self.accounting = accounting

    def resolve(
        self, spec: ClaimSpec, field: str
    ) -> tuple[list[str], np.ndarray, Flex | None, bool]:
        """What a claim reads now: its block ids, its demand rows as stated, what makes it
        flexible (None for a fixed claim), and whether a flexible claim's choice is
        valid now."""
        flex = self.flex_of(spec, field)
        if flex is None:
            block_ids = self.select_blocks(spec, field)
            return block_ids, self.demand_rows(spec, block_ids, field), None, True
        chosen, valid = self.materialised(flex)
        rows = np.tile(flex.row, (len(chosen), 1)).reshape(len(chosen), self.accounting.dims)
        return [self.budget.specs[j].id for j in chosen], rows, flex, valid

    def new_claim(self, spec: ClaimSpec, field: str, submitted: int) -> tuple[Claim, bool]:
        """The ledger's record of a claim submitted now (rejected, with its `reason`, if
        it can never run), and whether a flexible claim's block choice is valid now."""
        block_ids, rows, flex, valid = self.resolve(spec, field)
        index = np.array([self.budget.index_of[b] for b in block_ids], dtype=np.int64)
        demand = self.stored_demand(rows.reshape(len(block_ids), self.accounting.dims), index)
        claim = Claim(
            id=spec.id,
            weight=spec.weight,
            arrival=spec.arrival,
            timeout=spec.timeout,
            block_ids=tuple(block_ids),
            block_index=index,
            demand=demand,
            flex=flex,
            elastic=spec.demand if isinstance(spec.demand, ElasticDemand) else None,
            ceiling=self.ceiling_row(spec, field),
            submitted=submitted,
        )
        if flex is not None:
            claim.reason = self.flex_rejection(flex)
        else:
            ok = rows_fit(demand, self.budget.capacity[index], self.budget.usable[index])
            claim.reason = rejection(claim.block_ids, ok, spec.min_blocks)
        return claim, valid

    def capacity_of(self, spec: BlockSpec) -> np.ndarray:
        """A new block's capacity vector: explicit, or from its (epsilon, delta)."""
        if spec.capacity is not None:
            field = f"blocks.{spec.id}.capacity"
            return self.accounting.check_vector(spec.capacity, field, allow_inf=False)
        assert spec.epsilon is not None
        return self.accounting.capacity(spec.epsilon, spec.delta, f"blocks.{spec.id}")

    # ------------------------------------------------------------------ blocks
    def select_blocks(self, spec: ClaimSpec, field: str) -> list[str]:
        """The ids a claim reads: its selector over the current blocks (or the blocks of
        its `demand_by_block`), at most `max_blocks` of them (the most recent)."""
        if spec.blocks is None:
            assert spec.demand_by_block is not None
            selected = list(spec.demand_by_block)
        else:
            selected = spec.blocks.select(self.budget.specs)
        return self.known_blocks(selected, spec.max_blocks, field)

    def known_blocks(self, selected: list[str], max_blocks: int | None, field: str) -> list[str]:
        """`selected` checked against the ledger's blocks and cut to the `max_blocks` most
        recent (otherwise in the order given)."""
        index_of = self.budget.index_of
        for block_id in selected:
            if block_id not in index_of:
                raise InputError(f"{field}.blocks", f"unknown block {block_id!r}")
        if max_blocks is not None and len(selected) > max_blocks:
            by_arrival = sorted(selected, key=index_of.__getitem__)
            selected = by_arrival[-max_blocks:]
        return selected

    # ------------------------------------------------------------------ demand
    def demand_rows(self, spec: ClaimSpec, block_ids: list[str], field: str) -> np.ndarray:
        """The claim's demand, one row per selected block, as the user stated it."""
        if spec.demand is not None:
            row = self.held_row(spec, field)
            demand = np.empty((len(block_ids), row.size))
            demand[:] = row
            return demand
        assert spec.demand_by_block is not None
        extra = set(spec.demand_by_block) - set(block_ids)
        if extra:
            raise InputError(f"{field}.demand_by_block", f"blocks {sorted(extra)} are not selected")
        missing = [b for b in block_ids if b not in spec.demand_by_block]
        if missing:
            raise InputError(f"{field}.demand_by_block", f"no demand for blocks {missing}")
        rows = [
            self.accounting.demand_vector(spec.demand_by_block[b], f"{field}.demand_by_block.{b}")
            for b in block_ids
        ]
        return np.vstack(rows) if rows else np.zeros((0, self.accounting.dims))

    def held_row(self, spec: ClaimSpec, field: str) -> np.ndarray:
        """The demand row a claim holds until granted: its `min_demand` if it gives one."""
        assert spec.demand is not None
        if spec.min_demand is not None:
            return self.accounting.demand_vector(spec.min_demand, f"{field}.min_demand")
        return self.accounting.demand_vector(spec.demand, f"{field}.demand")

    def ceiling_row(self, spec: ClaimSpec, field: str) -> np.ndarray | None:
        """The full demand of a claim with `min_demand` (None without one)."""
        if spec.min_demand is None:
            return None
        assert spec.demand is not None
        full = self.accounting.demand_vector(spec.demand, f"{field}.demand")
        least = self.accounting.demand_vector(spec.min_demand, f"{field}.min_demand")
        if (least > full).any():
            raise InputError(f"{field}.min_demand", "must not exceed 'demand' at any order")
        return full

    def stored_demand(self, demand: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Demand as the ledger keeps it: a value no block could ever hold (infinite, or
        above MAX_BUDGET) becomes capacity + 1 at that order. It is never admissible
        there, and it exhausts the order once the claim runs elsewhere, keeping every
        sum finite."""
        huge = demand > MAX_BUDGET
        if not huge.any():
            return demand
        stored: np.ndarray = np.where(huge, self.budget.capacity[index] + 1.0, demand)
        return stored

    def batch_rejections(self, batch: ClaimBatch, demand: np.ndarray) -> dict[int, str]:
        """Why each claim of a batch that can never run is rejected, by position."""
        budget = self.budget
        entry_ok = entries_fit(batch.block_index, demand, budget.capacity, budget.usable)
        bad_before = np.concatenate([[0], np.cumsum(~entry_ok)])
        bad = bad_before[batch.indptr[1:]] - bad_before[batch.indptr[:-1]]
        counts = np.diff(batch.indptr)
        # min_blocks may be any positive integer; above the largest count it is all the same.
        cap = int(counts.max()) + 1 if counts.size else 1
        fewest = np.array([min(m, cap) for m in batch.min_blocks], dtype=np.int64)
        rejected = (bad > 0) | (counts < fewest)
        flexes = batch.flex if batch.flex is not None else [None] * batch.n
        flex_reasons = {
            i: self.flex_rejection(flex) for i, flex in enumerate(flexes) if flex is not None
        }
        for i, flex_reason in flex_reasons.items():
            rejected[i] = flex_reason is not None
        reasons: dict[int, str] = {}
        bounds = batch.indptr.tolist()
        for i in np.flatnonzero(rejected).tolist():
            if i in flex_reasons:
                reason = flex_reasons[i]
            else:
                ok = entry_ok[bounds[i] : bounds[i + 1]]
                reason = rejection(batch.block_ids[i], ok, batch.min_blocks[i])
            assert reason is not None
            reasons[i] = reason
        return reasons

    # ------------------------------------------------------- flexible claims
    def flex_of(self, spec: ClaimSpec, field: str) -> Flex | None:
        """What a flexible claim asks for (None for a fixed one); see `core.flexible`."""
        if not spec.flexible:
            return None
        assert spec.blocks is not None and spec.demand is not None
        self.known_blocks(spec.blocks.select(self.budget.specs), None, field)  # unknown ids
        return Flex(
            selector=spec.blocks,
            row=self.held_row(spec, field),
            min_blocks=spec.min_blocks,
            max_blocks=spec.max_blocks,
            min_data=spec.min_data or 0,
            expected_data=spec.expected_data,
        )

    def candidates(self, flex: Flex) -> tuple[list[int], list[int]]:
        """The matching blocks, most recent first, and their sizes."""
        budget = self.budget
        matching = sorted(budget.index_of[b] for b in flex.selector.select(budget.specs))
        recent = matching[::-1]
        return recent, [budget.specs[j].size or 0 for j in recent]

    def materialised(self, flex: Flex) -> tuple[list[int], bool]:
        """The block set a flexible claim reads now, and whether it is a valid choice:
        the rule's choice on the unlocked budget; if nothing is valid now, its choice on
        all the budget that may still unlock (or, failing that, its most recent matching
        blocks), so that its reason names the blocks it waits for (not valid: the claim
        waits aside, where no policy can grant it)."""
        recent, sizes = self.candidates(flex)
        if not recent:
            return [], False
        rows = np.asarray(recent, dtype=np.int64)
        demand = np.broadcast_to(flex.row, (rows.size, flex.row.size))
        budget = self.budget
        usable = budget.usable[rows]
        for valid, available in (
            (True, budget.unlocked[rows]),
            (False, budget.unlocked[rows] + budget.locked[rows]),
        ):
            fit = rows_fit(demand, available, usable).tolist()
            chosen = choose(flex, recent, fit, sizes)
            if chosen:
                return sorted(chosen), valid
        cap = len(recent) if flex.max_blocks is None else flex.max_blocks
        return sorted(recent[:cap]), False

    def flex_rejection(self, flex: Flex) -> str | None:
        """A flexible claim that no budget could ever satisfy is rejected: over fixed
        blocks (a list of ids), or asking for more blocks than `most_recent` can ever
        match. One over another selector waits, as new blocks may match it."""
        if isinstance(flex.selector, RecentSelector) and flex.selector.most_recent < (
            flex.min_blocks
        ):
            selected = tuple(flex.selector.select(self.budget.specs))
            return rejection(selected, np.ones(len(selected), dtype=bool), flex.min_blocks)
        if not isinstance(flex.selector, ExplicitSelector):
            return None
        recent, sizes = self.candidates(flex)
        rows = np.asarray(recent, dtype=np.int64)
        demand = np.broadcast_to(flex.row, (rows.size, flex.row.size))
        fit = rows_fit(demand, self.budget.capacity[rows], self.budget.usable[rows]).tolist()
        if choose(flex, recent, fit, sizes):
            return None
        fitting = sum(fit)
        data = sum(size for size, ok in zip(sizes, fit, strict=True) if ok)
        if fitting < flex.min_blocks:
            return (
                f"its demand fits the whole capacity of {fitting} of its {len(recent)} "
                f"blocks, needs at least {flex.min_blocks}"
            )
        return (
            f"the blocks whose capacity can hold its demand have {data} records, "
            f"needs at least {flex.min_data}"
        )


def rejection(block_ids: tuple[str, ...], ok: np.ndarray, min_blocks: int) -> str | None:
    """Why a claim can never run (None if it might): too few blocks, or a block whose
    whole capacity is smaller than the demand at every order."""
    if len(block_ids) < min_blocks:
        if not block_ids:
            return f"its selector matches no block (needs at least {min_blocks})"
        plural = "s" if len(block_ids) > 1 else ""
        return f"selected {len(block_ids)} block{plural}, needs at least {min_blocks}"
    if ok.all():
        return None
    too_big = [b for b, fit in zip(block_ids, ok.tolist(), strict=True) if not fit]
    return f"demand exceeds the whole capacity of blocks {too_big} at every order"


def aside_reason(claim: Claim) -> str:
    """Why a flexible claim waits aside: no valid choice of its blocks has room now."""
    assert claim.flex is not None
    flex = claim.flex
    need = f"at least {flex.min_blocks} matching blocks with room for it"
    if flex.min_data:
        need += f" and {flex.min_data} records"
    shown = ", ".join(claim.block_ids[:3]) or "none match yet"
    return f"waits for {need} (its current best: {shown})"
