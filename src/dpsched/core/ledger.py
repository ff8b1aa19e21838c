"""The budget ledger: the single source of truth for every block's budget and every claim.

Pure state plus transitions. Time is always passed in, nothing is read from a
clock or a disk, and the full state round-trips through plain JSON-able dicts, so
the simulator, the budget service and the Kubernetes operator can all drive (and
persist) the same object. Every refused operation raises before mutating anything.

Per block and order: capacity = locked + unlocked + reserved + allocated + consumed.
`reserved` is unlocked budget set aside for particular pending claims (round robin
accumulates shares there until a claim's demand is covered).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from dpsched.budget import Accounting
from dpsched.core.admission import TOLERANCE, fits, rows_fit
from dpsched.core.blocks import BlockSpec
from dpsched.core.claims import Claim, ClaimSpec, ClaimState
from dpsched.core.fitting import BudgetState, PendingFit, any_fits, pending_fit
from dpsched.core.pending import PendingArrays, PendingIndex, PendingView
from dpsched.errors import InputError, LedgerError, from_validation_error

_BUDGET_PARTS = ("capacity", "locked", "unlocked", "reserved", "allocated", "consumed")


@dataclass(frozen=True)
class _Request:
    op: str
    claim_id: str


class Ledger:
    """Blocks, claims and their budget, with idempotent allocate / consume / release / expire."""

    def __init__(self, accounting: Accounting) -> None:
        self.accounting = accounting
        dims = accounting.dims
        self._blocks: list[BlockSpec] = []
        self._block_index: dict[str, int] = {}
        self.capacity = np.zeros((0, dims))
        self.locked = np.zeros((0, dims))
        self.unlocked = np.zeros((0, dims))
        self.reserved = np.zeros((0, dims))
        self.allocated = np.zeros((0, dims))
        self.consumed = np.zeros((0, dims))
        self.unlocked_fraction = np.zeros(0)
        self.block_arrival = np.zeros(0)
        self._claims: dict[str, Claim] = {}
        self._pending: dict[str, None] = {}
        self._pending_index = PendingIndex(dims)
        self.revision = 0
        """Bumped by every change to claims or to granted budget (not by unlocking), so
        callers can cache answers that only those changes affect."""
        self._requests: dict[str, _Request] = {}

    # ----------------------------------------------------------------- blocks
    @property
    def blocks(self) -> list[BlockSpec]:
        return list(self._blocks)

    @property
    def usable(self) -> np.ndarray:
        """Orders with positive capacity; the others can never admit anything."""
        return self.capacity > 0

    def block_index(self, block_id: str) -> int:
        try:
            return self._block_index[block_id]
        except KeyError:
            raise LedgerError(f"block {block_id}", "no such block") from None

    def add_block(self, spec: BlockSpec) -> int:
        """Register a block, fully locked; an unlocking strategy decides when budget opens."""
        if spec.id in self._block_index:
            raise InputError(f"blocks.{spec.id}", "duplicate block id")
        if spec.capacity is not None:
            capacity = self.accounting.check_vector(
                spec.capacity, f"blocks.{spec.id}.capacity", allow_inf=False
            )
        else:
            assert spec.epsilon is not None
            capacity = self.accounting.capacity(spec.epsilon, spec.delta, f"blocks.{spec.id}")
        index = len(self._blocks)
        self._blocks.append(spec)
        self._block_index[spec.id] = index
        zeros = np.zeros((1, self.accounting.dims))
        self.capacity = np.vstack([self.capacity, capacity[None, :]])
        self.locked = np.vstack([self.locked, capacity[None, :]])
        self.unlocked = np.vstack([self.unlocked, zeros])
        self.reserved = np.vstack([self.reserved, zeros])
        self.allocated = np.vstack([self.allocated, zeros])
        self.consumed = np.vstack([self.consumed, zeros])
        self.unlocked_fraction = np.append(self.unlocked_fraction, 0.0)
        self.block_arrival = np.append(self.block_arrival, spec.arrival)
        self.revision += 1
        return index

    def unlock(self, fractions: np.ndarray, indices: np.ndarray | None = None) -> None:
        """Raise blocks' unlocked fraction of capacity to `fractions` (never re-locks).

        All unlocking strategies reduce to this one monotone move of budget from
        locked to unlocked, so the capacity identity holds by construction.
        """
        target_index = np.arange(len(self._blocks)) if indices is None else np.asarray(indices)
        target = np.clip(np.asarray(fractions, dtype=float), 0.0, 1.0)
        new_fraction = np.maximum(self.unlocked_fraction[target_index], target)
        new_locked = self.capacity[target_index] * (1.0 - new_fraction)[:, None]
        moved = self.locked[target_index] - new_locked
        self.unlocked[target_index] += moved
        self.locked[target_index] = new_locked
        self.unlocked_fraction[target_index] = new_fraction

    # ----------------------------------------------------------------- claims
    def claim(self, claim_id: str) -> Claim:
        try:
            return self._claims[claim_id]
        except KeyError:
            raise LedgerError(f"claim {claim_id}", "no such claim") from None

    @property
    def claims(self) -> Iterator[Claim]:
        return iter(self._claims.values())

    def pending(self) -> list[Claim]:
        """Pending claims in submission order."""
        return [self._claims[c] for c in self._pending]

    def pending_arrays(self) -> PendingArrays:
        """Pending claims in submission order, as CSR arrays (cheap to call every step)."""
        return self._pending_index.arrays()

    def pending_view(self) -> PendingView:
        """Like `pending_arrays`, but departed claims may remain, flagged not alive: the
        cheap read for callers that run every step."""
        return self._pending_index.view()

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def pending_fit(self) -> PendingFit:
        """Which pending claims, and which of their blocks, fit the unlocked budget now.

        A claim's own reservation is not counted: only round robin reserves, and it
        grants by its own rule."""
        budget = BudgetState(
            self.unlocked_fraction, self.unlocked, self._committed(), self.capacity
        )
        return pending_fit(self._pending_index.view(), self._pending_index.hints, budget)

    def any_pending_could_fit(self) -> bool:
        """Would some pending claim fit if all remaining budget were unlocked? False means
        no amount of waiting for unlocking can grant anything."""
        whole = self.unlocked + self.locked
        budget = BudgetState(np.ones(len(self._blocks)), whole, self._committed(), self.capacity)
        return any_fits(self._pending_index.view(), self._pending_index.hints, budget)

    def submit(self, spec: ClaimSpec | dict[str, Any], time: float) -> Claim:
        """Resolve a claim's selector and demand now; it becomes pending or rejected.

        Rejected (with a reason) when it selects fewer than `min_blocks` blocks or its
        demand exceeds a selected block's whole capacity at every usable order: such a
        claim could never run, and waiting for it would only hide that.
        """
        if not isinstance(spec, ClaimSpec):
            try:
                spec = ClaimSpec.model_validate(spec)
            except ValidationError as exc:
                raise from_validation_error("claim", exc) from None
        if spec.id in self._claims:
            raise InputError(f"claims.{spec.id}", "duplicate claim id")
        block_ids = self._select(spec)
        index = np.array([self.block_index(b) for b in block_ids], dtype=np.int64)
        demand = self._resolve_demand(spec, block_ids, index)
        claim = Claim(
            id=spec.id,
            weight=spec.weight,
            arrival=spec.arrival,
            timeout=spec.timeout,
            block_ids=tuple(block_ids),
            block_index=index,
            demand=demand,
        )
        reason = self._never_fits(spec, claim)
        if reason is not None:
            claim.state = ClaimState.REJECTED
            claim.reason = reason
            claim.finished_at = time
        self._claims[claim.id] = claim
        if claim.state is ClaimState.PENDING:
            self._pending[claim.id] = None
            self._pending_index.add(claim)
        self.revision += 1
        return claim

    def _select(self, spec: ClaimSpec) -> list[str]:
        if spec.blocks is None:
            assert spec.demand_by_block is not None
            selected = list(spec.demand_by_block)
        else:
            selected = spec.blocks.select(self._blocks)
        for block_id in selected:
            if block_id not in self._block_index:
                raise InputError(f"claims.{spec.id}.blocks", f"unknown block {block_id!r}")
        if spec.max_blocks is not None and len(selected) > spec.max_blocks:
            by_arrival = sorted(selected, key=lambda b: self._block_index[b])
            selected = by_arrival[-spec.max_blocks :]
        return selected

    def _resolve_demand(
        self, spec: ClaimSpec, block_ids: list[str], index: np.ndarray
    ) -> np.ndarray:
        field = f"claims.{spec.id}"
        if spec.demand is not None:
            row = self.accounting.demand_vector(spec.demand, f"{field}.demand")
            demand = np.empty((len(block_ids), row.size))
            demand[:] = row
        else:
            assert spec.demand_by_block is not None
            extra = set(spec.demand_by_block) - set(block_ids)
            if extra:
                raise InputError(
                    f"{field}.demand_by_block", f"blocks {sorted(extra)} are not selected"
                )
            missing = [b for b in block_ids if b not in spec.demand_by_block]
            if missing:
                raise InputError(f"{field}.demand_by_block", f"no demand for blocks {missing}")
            rows = [
                self.accounting.demand_vector(
                    spec.demand_by_block[b], f"{field}.demand_by_block.{b}"
                )
                for b in block_ids
            ]
            demand = np.vstack(rows) if rows else np.zeros((0, self.accounting.dims))
        # An infinite demand is stored as capacity + 1: never admissible at that order,
        # and it exhausts the order once the claim runs elsewhere, keeping sums finite.
        infinite = np.isinf(demand)
        if not infinite.any():
            return demand
        return np.where(infinite, self.capacity[index] + 1.0, demand)

    def _never_fits(self, spec: ClaimSpec, claim: Claim) -> str | None:
        if len(claim.block_ids) < spec.min_blocks:
            return f"selected {len(claim.block_ids)} blocks, needs at least {spec.min_blocks}"
        ok = rows_fit(
            claim.demand, self.capacity[claim.block_index], self.usable[claim.block_index]
        )
        if not ok.all():
            too_big = [b for b, fit in zip(claim.block_ids, ok, strict=True) if not fit]
            return f"demand exceeds the whole capacity of blocks {too_big} at every order"
        return None

    # ------------------------------------------------------------- operations
    def _replayed(self, request_id: str, op: str, claim_id: str) -> bool:
        """True if this exact request already ran; refuses a reused id for something else."""
        if not request_id:
            raise InputError("request_id", "must be a non-empty string")
        previous = self._requests.get(request_id)
        if previous is None:
            return False
        if previous != _Request(op, claim_id):
            raise LedgerError(
                f"request {request_id}",
                f"already used for {previous.op} of claim {previous.claim_id}",
            )
        return True

    def can_run(self, claim_id: str) -> bool:
        claim = self.claim(claim_id)
        rows = claim.block_index
        return fits(claim.demand, self.unlocked[rows] + claim.reserved, self.usable[rows])

    def allocate(self, claim_id: str, *, request_id: str, time: float) -> Claim:
        """Grant the claim's whole demand on all its blocks, or nothing: from its own
        reservation first, the rest from unlocked budget."""
        claim = self.claim(claim_id)
        if self._replayed(request_id, "allocate", claim_id):
            return claim
        self._expect(claim, ClaimState.PENDING, "allocate")
        rows = claim.block_index
        ok = rows_fit(claim.demand, self.unlocked[rows] + claim.reserved, self.usable[rows])
        if not ok.all():
            short = [b for b, fit in zip(claim.block_ids, ok, strict=True) if not fit]
            raise LedgerError(
                f"claim {claim_id}", f"not enough unlocked budget on blocks {short} at any order"
            )
        self.unlocked[rows] += claim.reserved - claim.demand
        self.reserved[rows] -= claim.reserved
        claim.reserved = np.zeros_like(claim.reserved)
        self.allocated[rows] += claim.demand
        claim.allocated = claim.demand.copy()
        claim.state = ClaimState.ALLOCATED
        claim.allocated_at = time
        del self._pending[claim_id]
        self._pending_index.remove(claim_id)
        self._requests[request_id] = _Request("allocate", claim_id)
        self.revision += 1
        return claim

    def reserve(self, claim_id: str, amount: np.ndarray, *, request_id: str, time: float) -> Claim:
        """Set unlocked budget aside for a pending claim (one row per block of the claim).

        Never more than the claim still needs, never more than is unlocked: so a
        reservation can always be granted or given back, and budget never goes over.
        """
        claim = self.claim(claim_id)
        if self._replayed(request_id, "reserve", claim_id):
            return claim
        self._expect(claim, ClaimState.PENDING, "reserve")
        amount = np.asarray(amount, dtype=float)
        if amount.shape != claim.demand.shape:
            raise InputError("amount", f"must have shape {claim.demand.shape}, got {amount.shape}")
        if not np.isfinite(amount).all() or (amount < 0).any():
            raise InputError("amount", "must be finite and non-negative")
        rows = claim.block_index
        if (claim.reserved + amount > claim.demand + TOLERANCE).any():
            raise LedgerError(f"claim {claim_id}", "reserving more than the claim demands")
        if (amount > np.maximum(self.unlocked[rows], 0.0) + TOLERANCE).any():
            raise LedgerError(f"claim {claim_id}", "reserving more than is unlocked")
        self.unlocked[rows] -= amount
        self.reserved[rows] += amount
        claim.reserved = claim.reserved + amount
        self._requests[request_id] = _Request("reserve", claim_id)
        self.revision += 1
        return claim

    def consume(
        self, claim_id: str, *, request_id: str, time: float, fraction: float = 1.0
    ) -> Claim:
        """Use `fraction` of the claim's granted demand for good (cumulative, never beyond it)."""
        claim = self.claim(claim_id)
        if self._replayed(request_id, "consume", claim_id):
            return claim
        self._expect(claim, ClaimState.ALLOCATED, "consume")
        if not 0.0 < fraction <= 1.0:
            raise InputError("fraction", f"must be in (0, 1], got {fraction}")
        amount = claim.demand * fraction
        if (amount > claim.allocated + TOLERANCE).any():
            raise LedgerError(f"claim {claim_id}", "consuming more than the remaining allocation")
        amount = np.minimum(amount, claim.allocated)
        rows = claim.block_index
        self.allocated[rows] -= amount
        self.consumed[rows] += amount
        claim.allocated = claim.allocated - amount
        claim.consumed = claim.consumed + amount
        if not (claim.allocated > TOLERANCE).any():
            self._move_leftover_to_consumed(claim)
            claim.state = ClaimState.CONSUMED
            claim.finished_at = time
        self._requests[request_id] = _Request("consume", claim_id)
        self.revision += 1
        return claim

    def _move_leftover_to_consumed(self, claim: Claim) -> None:
        rows = claim.block_index
        self.allocated[rows] -= claim.allocated
        self.consumed[rows] += claim.allocated
        claim.consumed = claim.consumed + claim.allocated
        claim.allocated = np.zeros_like(claim.allocated)

    def release(self, claim_id: str, *, request_id: str, time: float) -> Claim:
        """Return the unconsumed part of an allocation to unlocked budget."""
        claim = self.claim(claim_id)
        if self._replayed(request_id, "release", claim_id):
            return claim
        self._expect(claim, ClaimState.ALLOCATED, "release")
        rows = claim.block_index
        self.allocated[rows] -= claim.allocated
        self.unlocked[rows] += claim.allocated
        self._pending_index.forget_hints()
        claim.allocated = np.zeros_like(claim.allocated)
        claim.state = ClaimState.RELEASED
        claim.finished_at = time
        self._requests[request_id] = _Request("release", claim_id)
        self.revision += 1
        return claim

    def expire(self, claim_id: str, *, request_id: str, time: float) -> Claim:
        """Give up on a pending claim (timeout, or its owner withdrew it)."""
        claim = self.claim(claim_id)
        if self._replayed(request_id, "expire", claim_id):
            return claim
        self._expect(claim, ClaimState.PENDING, "expire")
        if claim.reserved.any():
            rows = claim.block_index
            self.unlocked[rows] += claim.reserved
            self.reserved[rows] -= claim.reserved
            claim.reserved = np.zeros_like(claim.reserved)
            self._pending_index.forget_hints()  # committed budget went down
        claim.state = ClaimState.EXPIRED
        claim.finished_at = time
        del self._pending[claim_id]
        self._pending_index.remove(claim_id)
        self._requests[request_id] = _Request("expire", claim_id)
        self.revision += 1
        return claim

    def expire_due(self, time: float) -> list[str]:
        """Expire every pending claim whose timeout has passed at `time`."""
        view = self.pending_view()
        late = view.alive & (view.arrays.deadline <= time + TOLERANCE)
        due = [str(view.arrays.ids[i]) for i in np.flatnonzero(late)]
        for claim_id in due:
            self.expire(claim_id, request_id=f"expire:{claim_id}", time=time)
        return due

    @staticmethod
    def _expect(claim: Claim, state: ClaimState, op: str) -> None:
        if claim.state is not state:
            raise LedgerError(
                f"claim {claim.id}", f"cannot {op}: claim is {claim.state.value}, not {state.value}"
            )

    # ------------------------------------------------------------ reporting
    def _committed(self) -> np.ndarray:
        """Granted or reserved: what unlocked budget is measured against when fitting."""
        committed: np.ndarray = self.allocated + self.consumed + self.reserved
        return committed

    def spent(self) -> np.ndarray:
        """Budget granted so far (allocated + consumed), per block and order."""
        return self.allocated + self.consumed

    def remaining(self) -> np.ndarray:
        """What could still be granted once everything is unlocked: capacity - spent."""
        remaining: np.ndarray = self.capacity - self.spent()
        return remaining

    def spent_epsilon(self, block_id: str) -> float:
        index = self.block_index(block_id)
        block = self._blocks[index]
        return self.accounting.spent_epsilon(self.spent()[index], block.delta)

    def invariant_violations(self) -> list[str]:
        """Every broken ledger invariant, described; empty when the state is sound."""
        problems: list[str] = []
        total = self.locked + self.unlocked + self.reserved + self.allocated + self.consumed
        scale = np.maximum(1.0, np.abs(self.capacity))
        for j in np.nonzero((np.abs(total - self.capacity) > 1e-7 * scale).any(axis=1))[0]:
            problems.append(
                f"block {self._blocks[j].id}: "
                "locked+unlocked+reserved+allocated+consumed != capacity"
            )
        for j in np.nonzero((self.reserved < -TOLERANCE).any(axis=1))[0]:
            problems.append(f"block {self._blocks[j].id}: negative reserved budget")
        for j in np.nonzero((self.locked < -TOLERANCE).any(axis=1))[0]:
            problems.append(f"block {self._blocks[j].id}: negative locked budget")
        within = (self.spent() <= self.capacity + TOLERANCE) & self.usable
        granted = (self.spent() > 0).any(axis=1)
        for j in np.nonzero(granted & ~within.any(axis=1))[0]:
            problems.append(f"block {self._blocks[j].id}: over capacity at every usable order")
        return problems

    # -------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """The full state as plain JSON-able data (floats round-trip exactly)."""
        accounting = self.accounting
        return {
            "accounting": {
                "mode": accounting.mode,
                "alphas": list(accounting.alphas),
                "delta": accounting.delta,
            },
            "blocks": [
                {
                    "spec": spec.model_dump(mode="json"),
                    **{part: getattr(self, part)[j].tolist() for part in _BUDGET_PARTS},
                    "unlocked_fraction": float(self.unlocked_fraction[j]),
                }
                for j, spec in enumerate(self._blocks)
            ],
            "claims": [claim.to_dict() for claim in self._claims.values()],
            "pending": list(self._pending),
            "requests": {rid: [r.op, r.claim_id] for rid, r in self._requests.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ledger:
        acc = data["accounting"]
        ledger = cls(Accounting(acc["mode"], tuple(acc["alphas"]), acc["delta"]))
        dims = ledger.accounting.dims
        blocks = data["blocks"]
        ledger._blocks = [BlockSpec.model_validate(b["spec"]) for b in blocks]
        ledger._block_index = {b.id: j for j, b in enumerate(ledger._blocks)}
        for part in _BUDGET_PARTS:
            values = [b.get(part, [0.0] * dims) for b in blocks]
            setattr(ledger, part, np.asarray(values, dtype=float).reshape(len(blocks), dims))
        ledger.unlocked_fraction = np.asarray([b["unlocked_fraction"] for b in blocks], dtype=float)
        ledger.block_arrival = np.asarray([b.arrival for b in ledger._blocks], dtype=float)
        ledger._claims = {c["id"]: Claim.from_dict(c, dims) for c in data["claims"]}
        ledger._pending = dict.fromkeys(data["pending"])
        for claim_id in ledger._pending:
            ledger._pending_index.add(ledger._claims[claim_id])
        ledger._requests = {rid: _Request(op, cid) for rid, (op, cid) in data["requests"].items()}
        return ledger
