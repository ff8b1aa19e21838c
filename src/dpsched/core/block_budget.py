"""Every block's budget, per RDP order (or the one epsilon dimension), and the only code
that moves it.

Per block and order: capacity = locked + unlocked + reserved + allocated + consumed.
`reserved` is unlocked budget set aside for particular pending claims (round robin
accumulates shares there until a claim's demand is covered). Each move below keeps
that identity by construction, so the ledger's claim transitions never do budget
arithmetic of their own.

Beside the floats, `spent_units` holds what the grants on each block hold as whole
units of 1e-12 (`core.exact`): admission keeps it within `capacity_units` exactly at an
order that admits, so no float rounding can take a block over its capacity.
"""

from __future__ import annotations

import numpy as np

from dpsched.core.admission import TOLERANCE
from dpsched.core.blocks import BlockSpec
from dpsched.core.exact import units_down, units_up
from dpsched.errors import LedgerError

PARTS = ("capacity", "locked", "unlocked", "reserved", "allocated", "consumed")
"""The float parts of every block's budget, in the order snapshots store them."""


class BlockBudget:
    """The blocks (in arrival order) and their budget arrays, one row per block."""

    def __init__(self, dims: int) -> None:
        self.dims = dims
        self.specs: list[BlockSpec] = []
        self.index_of: dict[str, int] = {}
        self.capacity = np.zeros((0, dims))
        self.locked = np.zeros((0, dims))
        self.unlocked = np.zeros((0, dims))
        self.reserved = np.zeros((0, dims))
        self.allocated = np.zeros((0, dims))
        self.consumed = np.zeros((0, dims))
        self.capacity_units = np.zeros((0, dims), dtype=np.int64)
        self.spent_units = np.zeros((0, dims), dtype=np.int64)
        """What the grants on each block hold, per order, in exact integer units: a
        claim's demand rounded up while it is allocated or consumed, what it consumed
        once released."""
        self.unlocked_fraction = np.zeros(0)
        self.holders = np.zeros(0, dtype=np.int64)
        """Allocated claims per block: the ones still holding a grant there."""
        self.arrival = np.zeros(0)

    # ----------------------------------------------------------------- blocks
    def index(self, block_id: str) -> int:
        try:
            return self.index_of[block_id]
        except KeyError:
            raise LedgerError(f"block {block_id}", "no such block") from None

    @property
    def usable(self) -> np.ndarray:
        """Orders with positive capacity; the others can never admit anything."""
        return self.capacity > 0

    def add(self, spec: BlockSpec, capacity: np.ndarray) -> int:
        """A new block, fully locked (its id is new: the ledger checked)."""
        index = len(self.specs)
        self.specs.append(spec)
        self.index_of[spec.id] = index
        zeros = np.zeros((1, self.dims))
        self.capacity = np.vstack([self.capacity, capacity[None, :]])
        self.locked = np.vstack([self.locked, capacity[None, :]])
        self.unlocked = np.vstack([self.unlocked, zeros])
        self.reserved = np.vstack([self.reserved, zeros])
        self.allocated = np.vstack([self.allocated, zeros])
        self.consumed = np.vstack([self.consumed, zeros])
        self.capacity_units = np.vstack([self.capacity_units, units_down(self.capacity[-1:])])
        self.spent_units = np.vstack([self.spent_units, zeros.astype(np.int64)])
        self.unlocked_fraction = np.append(self.unlocked_fraction, 0.0)
        self.holders = np.append(self.holders, np.int64(0))
        self.arrival = np.append(self.arrival, spec.arrival)
        return index

    def unlock(
        self, fractions: np.ndarray, indices: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raise blocks' unlocked fraction of capacity to `fractions` (never re-locks);
        returns the blocks whose fraction rose and their new fractions.

        All unlocking strategies reduce to this one monotone move of budget from
        locked to unlocked.
        """
        target_index = np.arange(len(self.specs)) if indices is None else np.asarray(indices)
        target = np.clip(np.asarray(fractions, dtype=float), 0.0, 1.0)
        new_fraction = np.maximum(self.unlocked_fraction[target_index], target)
        new_locked = self.capacity[target_index] * (1.0 - new_fraction)[:, None]
        raised = new_fraction > self.unlocked_fraction[target_index]
        self.unlocked[target_index] += self.locked[target_index] - new_locked
        self.locked[target_index] = new_locked
        self.unlocked_fraction[target_index] = new_fraction
        return target_index[raised], new_fraction[raised]

    def data_of(self, rows: np.ndarray) -> int:
        """Records in these blocks (their `size`; a block without one counts 0)."""
        return sum(self.specs[j].size or 0 for j in rows.tolist())

    # -------------------------------------------------------------- admission
    def admits(
        self, rows: np.ndarray, demand: np.ndarray, room: np.ndarray, extra: np.ndarray
    ) -> np.ndarray:
        """Per row: is there a usable order where `demand` fits `room` (the unlocked
        budget it may use, as policies plan it, with their slack) and where the spent
        units plus `extra` (the units the grant adds) stay within capacity exactly?"""
        within = self.spent_units[rows] + extra <= self.capacity_units[rows]
        ok: np.ndarray = ((demand <= room + TOLERANCE) & within & self.usable[rows]).any(axis=1)
        return ok

    def within_capacity(self, rows: np.ndarray, demand: np.ndarray) -> np.ndarray:
        """Per row: would granting `demand` keep the block within capacity, exactly (in
        integer units), at some usable order? (The policies plan with a 1e-9 slack; this
        is the ledger's last word, for reports on claims that plan to fit but wait.)"""
        within = self.spent_units[rows] + units_up(demand) <= self.capacity_units[rows]
        ok: np.ndarray = (within & self.usable[rows]).any(axis=1)
        return ok

    # ------------------------------------------------------------------ moves
    def grant(self, rows: np.ndarray, demand: np.ndarray, reserved: np.ndarray) -> None:
        """A claim's whole demand, from its reservation first, the rest from unlocked."""
        self.spent_units[rows] += units_up(demand)
        self.holders[rows] += 1
        self.unlocked[rows] += reserved - demand
        self.reserved[rows] -= reserved
        self.allocated[rows] += demand

    def grant_in_order(self, rows: np.ndarray, demand: np.ndarray) -> bool:
        """Grant these entries (several claims' rows, in grant order, none holding a
        reservation) if each is admitted at its turn; else change nothing, return False.

        Each block's arithmetic runs once over its grants in order (`ufunc.accumulate`),
        so every float is the one the sequential subtractions give, bit for bit."""
        units = units_up(demand)
        by_block = np.argsort(rows, kind="stable")  # each block's grants, in grant order
        rows, demand, units = rows[by_block], demand[by_block], units[by_block]
        cuts = np.flatnonzero(rows[1:] != rows[:-1]) + 1
        starts = np.concatenate([[0], cuts])
        ends = [*cuts.tolist(), rows.size]
        blocks = rows[starts]
        room = np.empty_like(demand)
        unlocked = np.empty((blocks.size, demand.shape[1]))
        allocated = np.empty_like(unlocked)
        for k, (lo, hi) in enumerate(zip(starts.tolist(), ends, strict=True)):
            j = int(blocks[k])
            before = np.subtract.accumulate(np.vstack([self.unlocked[j], demand[lo:hi]]))
            room[lo:hi] = before[:-1]
            unlocked[k] = before[-1]
            allocated[k] = np.add.accumulate(np.vstack([self.allocated[j], demand[lo:hi]]))[-1]
        spent_before = np.cumsum(units, axis=0) - units
        spent_before -= np.repeat(spent_before[starts], np.asarray(ends) - starts, axis=0)
        spent_before += self.spent_units[rows]
        within = spent_before + units <= self.capacity_units[rows]
        if not ((demand <= room + TOLERANCE) & within & self.usable[rows]).any(axis=1).all():
            return False
        np.add.at(self.spent_units, rows, units)
        np.add.at(self.holders, rows, 1)
        self.unlocked[blocks] = unlocked
        self.allocated[blocks] = allocated
        return True

    def regrant(self, rows: np.ndarray, old: np.ndarray, held: np.ndarray, new: np.ndarray) -> None:
        """An allocated claim's demand changes from `old` (holding `held`) to `new`: an
        elastic grant growing into the budget left over."""
        self.spent_units[rows] += units_up(new) - units_up(old)
        extra = new - held
        self.unlocked[rows] -= extra
        self.allocated[rows] += extra

    def reserve(self, rows: np.ndarray, amount: np.ndarray) -> None:
        self.unlocked[rows] -= amount
        self.reserved[rows] += amount

    def unreserve(self, rows: np.ndarray, amount: np.ndarray) -> None:
        self.unlocked[rows] += amount
        self.reserved[rows] -= amount

    def consume(self, rows: np.ndarray, amount: np.ndarray) -> None:
        self.allocated[rows] -= amount
        self.consumed[rows] += amount

    def release(
        self, rows: np.ndarray, demand: np.ndarray, consumed: np.ndarray, held: np.ndarray
    ) -> None:
        """A grant ends: what it still `held` returns to unlocked budget, and the exact
        units keep only what it consumed (rounded up, never more than its demand)."""
        self.spent_units[rows] -= np.maximum(units_up(demand) - units_up(consumed), 0)
        self.allocated[rows] -= held
        self.unlocked[rows] += held

    def count_holders(self, held: list[np.ndarray]) -> None:
        """Recount the holders from the rows of every allocated claim (a restore)."""
        self.holders = np.zeros(len(self.specs), dtype=np.int64)
        for rows in held:
            self.holders[rows] += 1

    def let_go(self, rows: np.ndarray) -> None:
        """A claim stops holding a grant on these blocks (consumed or released)."""
        self.holders[rows] -= 1

    # -------------------------------------------------------------- reporting
    def committed(self) -> np.ndarray:
        """Granted or reserved: what unlocked budget is measured against when fitting."""
        committed: np.ndarray = self.allocated + self.consumed + self.reserved
        return committed

    def spent(self) -> np.ndarray:
        """Budget granted so far (allocated + consumed), per block and order."""
        spent: np.ndarray = self.allocated + self.consumed
        return spent

    def remaining(self) -> np.ndarray:
        """What could still be granted once everything is unlocked: capacity - spent."""
        remaining: np.ndarray = self.capacity - self.spent()
        return remaining

    def invariant_violations(self) -> list[str]:
        """Every broken budget invariant, described; empty when the state is sound."""
        problems: list[str] = []
        total = self.locked + self.unlocked + self.reserved + self.allocated + self.consumed
        scale = np.maximum(1.0, np.abs(self.capacity))
        for j in np.nonzero((np.abs(total - self.capacity) > 1e-7 * scale).any(axis=1))[0]:
            problems.append(
                f"block {self.specs[j].id}: locked+unlocked+reserved+allocated+consumed != capacity"
            )
        for j in np.nonzero((self.reserved < -TOLERANCE).any(axis=1))[0]:
            problems.append(f"block {self.specs[j].id}: negative reserved budget")
        for j in np.nonzero((self.locked < -TOLERANCE).any(axis=1))[0]:
            problems.append(f"block {self.specs[j].id}: negative locked budget")
        within = (self.spent_units <= self.capacity_units) & self.usable  # exact integers
        granted = (self.spent() > 0).any(axis=1)
        for j in np.nonzero(granted & ~within.any(axis=1))[0]:
            problems.append(f"block {self.specs[j].id}: over capacity at every usable order")
        return problems
