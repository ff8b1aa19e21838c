"""The budget ledger: the single source of truth for every block's budget and every claim.

Pure state plus transitions. Time is always passed in, nothing is read from a clock or
a disk, and every change is reported to `listener` as a typed record
(`core.records`), so the simulator, the budget service and the Kubernetes operator can
all drive (and journal) the same object. Every refused operation raises before
changing anything.

The ledger holds the claims and their transitions; each of its parts holds one concern:
the blocks' budget and every move of it (`core.block_budget`), how a claim as written
resolves to blocks and demand (`core.resolution`), the pending claims
(`core.pending.PendingSet`), request ids and finishing order (`core.history`).
Snapshots of the whole state are `core.snapshot`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
from pydantic import ValidationError

from dpsched.budget import Accounting
from dpsched.core import records
from dpsched.core.admission import TOLERANCE
from dpsched.core.block_budget import BlockBudget
from dpsched.core.blocks import BlockSpec
from dpsched.core.claims import Claim, ClaimBatch, ClaimSpec, ClaimState
from dpsched.core.elastic import grown
from dpsched.core.exact import units_up
from dpsched.core.fitting import PendingFit, could_fit_unlocked, fit_now
from dpsched.core.history import History
from dpsched.core.pending import PendingArrays, PendingSet
from dpsched.core.resolution import Resolver, aside_reason
from dpsched.errors import InputError, LedgerError, from_validation_error

Listener = Callable[[records.LedgerOperation], None]
"""Told of every change of state, after it happened; `core.replay` replays it exactly
on a ledger in the same prior state."""


class Forgotten(NamedTuple):
    """A claim `Ledger.forget` dropped, as it was, with the request ids used on it."""

    claim: Claim
    request_ids: tuple[str, ...]


class Ledger:
    """Blocks, claims and their budget, with idempotent allocate / consume / release / expire."""

    def __init__(self, accounting: Accounting, budget: BlockBudget | None = None) -> None:
        self.accounting = accounting
        self.budget = BlockBudget(accounting.dims) if budget is None else budget
        self.resolver = Resolver(self.budget, accounting)
        self._claims: dict[str, Claim] = {}
        self._submissions = 0
        """How many claims the ledger was given: the next one's `Claim.submitted`."""
        self.pending_set = PendingSet(accounting.dims)
        self.history = History()
        self.revision = 0
        """Bumped by every change to claims or to granted budget (not by unlocking), so
        callers can cache answers that only those changes affect."""
        self.listener: Listener | None = None
        """Set by whoever journals the ledger (the engine); None costs nothing."""

    @classmethod
    def restored(
        cls,
        accounting: Accounting,
        budget: BlockBudget,
        claims: list[Claim],
        *,
        pending: Sequence[str],
        aside: Sequence[str],
        requests: Sequence[tuple[str, str, str]],
    ) -> Ledger:
        """A ledger from saved parts (`core.snapshot`): its claims in submission order,
        which of them are pending and aside, and its (request id, op, claim id) records."""
        ledger = cls(accounting, budget)
        for i, claim in enumerate(claims):
            claim.submitted = i
        ledger._submissions = len(claims)
        ledger._claims = {c.id: c for c in claims}
        budget.count_holders([c.block_index for c in claims if c.state is ClaimState.ALLOCATED])
        ledger.pending_set.restore([ledger._claims[c] for c in pending], aside)
        ledger.history = History.restored(requests, claims)
        return ledger

    # ----------------------------------------------------------------- blocks
    @property
    def blocks(self) -> list[BlockSpec]:
        return list(self.budget.specs)

    def block_index(self, block_id: str) -> int:
        return self.budget.index(block_id)

    def add_block(self, spec: BlockSpec) -> int:
        """Register a block, fully locked; an unlocking strategy decides when budget opens."""
        if spec.id in self.budget.index_of:
            raise InputError(f"blocks.{spec.id}.id", f"duplicate block id {spec.id!r}")
        capacity = self.resolver.capacity_of(spec)
        index = self.budget.add(spec, capacity)
        self.revision += 1
        if self.listener is not None:
            self.listener(records.AddBlock(spec.model_dump(mode="json")))
        return index

    def unlock(self, fractions: np.ndarray, indices: np.ndarray | None = None) -> None:
        """Raise blocks' unlocked fraction of capacity to `fractions` (never re-locks)."""
        raised, fraction = self.budget.unlock(fractions, indices)
        if raised.size and self.listener is not None:
            self.listener(records.Unlock(raised.tolist(), fraction.tolist()))

    def data_of(self, claim: Claim) -> int:
        """Records in the claim's blocks (their `size`; a block without one counts 0)."""
        return self.budget.data_of(claim.block_index)

    # ----------------------------------------------------------------- claims
    def claim(self, claim_id: str) -> Claim:
        try:
            return self._claims[claim_id]
        except KeyError:
            raise LedgerError(f"claim {claim_id}", "no such claim") from None

    def has_claim(self, claim_id: str) -> bool:
        return claim_id in self._claims

    def request(self, request_id: str) -> tuple[str, str] | None:
        """(operation, claim id) a request id was used for, if it was."""
        return self.history.lookup(request_id)

    @property
    def claims(self) -> Iterator[Claim]:
        return iter(self._claims.values())

    def pending(self) -> list[Claim]:
        """Pending claims in submission order."""
        return [self._claims[c] for c in self.pending_set.ids]

    def pending_arrays(self) -> PendingArrays:
        """Pending claims in submission order, as CSR arrays (cheap to call every step)."""
        return self.pending_set.index.arrays()

    @property
    def pending_count(self) -> int:
        return len(self.pending_set)

    def pending_fit(self) -> PendingFit:
        """Which pending claims, and which of their blocks, fit the unlocked budget now
        (a claim's own reservation is not counted: only round robin reserves, and it
        grants by its own rule)."""
        return fit_now(self.pending_set.index, self.budget)

    def any_pending_could_fit(self) -> bool:
        """Would some pending claim fit if all remaining budget were unlocked? False means
        no amount of waiting for unlocking can grant anything."""
        return could_fit_unlocked(self.pending_set.index, self.budget)

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
                raise from_validation_error(_task_field(spec), exc, spec) from None
        field = f"tasks.{spec.id}"
        if spec.id in self._claims:
            raise InputError(f"{field}.id", f"duplicate task id {spec.id!r}")
        claim, valid = self.resolver.new_claim(spec, field, self._submissions)
        self._submissions += 1
        if claim.reason is not None:
            self._finish(claim, ClaimState.REJECTED, time)
        self._claims[claim.id] = claim
        if claim.state is ClaimState.PENDING:
            self.pending_set.join(claim, aside=not valid)
        self.revision += 1
        if self.listener is not None:
            self.listener(records.Submit.of(claim, spec.min_blocks, time))
        return claim

    def submit_batch(self, batch: ClaimBatch, time: float | None = None) -> list[Claim]:
        """Submit many resolved claims at once, in batch order: the same outcome as
        `submit` on each, with the per-claim arithmetic done once over all entries.

        `time` stamps rejections; None stamps each claim at its own arrival. Claims'
        arrays are views into shared batch arrays (read-only demand), which keeps a
        300,000-claim instance to a few hundred MB. Refused (nothing changes) if an id
        is already in the ledger or repeats within the batch.
        """
        seen: set[str] = set()
        for claim_id in batch.ids:
            if claim_id in self._claims or claim_id in seen:
                raise InputError(f"tasks.{claim_id}.id", f"duplicate task id {claim_id!r}")
            seen.add(claim_id)
        if batch.block_index.size and int(batch.block_index.max()) >= len(self.budget.specs):
            raise InputError("batch", "refers to blocks this ledger does not have")
        demand = self.resolver.stored_demand(batch.demand, batch.block_index)
        demand.setflags(write=False)
        claims = batch.new_claims(demand, self._submissions)
        self._submissions += len(claims)
        reasons = self.resolver.batch_rejections(batch, demand)
        for i, reason in reasons.items():
            claims[i].reason = reason
            at = claims[i].arrival if time is None else time
            self._finish(claims[i], ClaimState.REJECTED, at)
        self._claims.update((c.id, c) for c in claims)
        pending = [i for i in range(len(claims)) if i not in reasons]
        if pending:
            aside = {
                claims[i].id
                for i in pending
                if claims[i].flex is not None and not self._valid_now(claims[i])
            }
            indexed = np.asarray([i for i in pending if claims[i].id not in aside], np.int64)
            stacked = PendingArrays.of_batch(batch, claims, demand, indexed)
            self.pending_set.join_many([claims[i] for i in pending], stacked, aside)
        self.revision += 1
        if self.listener is not None:
            for claim, least in zip(claims, batch.min_blocks, strict=True):
                self.listener(
                    records.Submit.of(claim, least, claim.arrival if time is None else time)
                )
        return claims

    # ------------------------------------------------------- flexible claims
    def _valid_now(self, claim: Claim) -> bool:
        assert claim.flex is not None
        return self.resolver.materialised(claim.flex)[1]

    def waits_aside(self, claim_id: str) -> bool:
        """A flexible claim with no valid block choice now (policies do not see it)."""
        return self.pending_set.waits_aside(claim_id)

    def materialise(self, time: float) -> list[str]:
        """Re-choose the blocks of every pending flexible claim from the budget as it
        stands (before a round); returns the claims whose blocks changed. Claims holding
        a reservation keep theirs."""
        changed = []
        for claim_id in self.pending_set.flexible:
            claim = self._claims[claim_id]
            if claim.flex is None or claim.reserved.any():
                continue
            index, valid = self.resolver.materialised(claim.flex)
            if index == claim.block_index.tolist() and valid != self.waits_aside(claim_id):
                continue
            block_ids = [self.budget.specs[j].id for j in index]
            self.set_blocks(claim_id, block_ids, time, valid=valid)
            changed.append(claim_id)
        return changed

    def set_blocks(
        self, claim_id: str, block_ids: Sequence[str], time: float, *, valid: bool
    ) -> None:
        """Give a pending flexible claim these blocks (its demand row on each); a claim
        whose choice is not `valid` waits aside."""
        claim = self.claim(claim_id)
        _expect(claim, ClaimState.PENDING, "choose blocks for")
        if claim.flex is None:
            raise LedgerError(f"claim {claim_id}", "its blocks are fixed")
        index = np.array([self.block_index(b) for b in block_ids], dtype=np.int64)
        rows = np.tile(claim.flex.row, (index.size, 1))
        claim.block_ids = tuple(block_ids)
        claim.block_index = index
        claim.demand = self.resolver.stored_demand(rows, index)
        claim.allocated = np.zeros_like(claim.demand)
        claim.consumed = np.zeros_like(claim.demand)
        claim.reserved = np.zeros_like(claim.demand)
        self.pending_set.move(claim, aside=not valid)
        self.revision += 1
        if self.listener is not None:
            self.listener(records.Materialise(claim_id, list(block_ids), time, valid))

    # -------------------------------------------------------- elastic claims
    def expand(self, claim_id: str, *, time: float) -> Claim:
        """Grow a just-allocated elastic claim to the most of its range that its blocks
        hold now (`core.elastic`)."""
        claim = self.claim(claim_id)
        _expect(claim, ClaimState.ALLOCATED, "expand")
        if (
            (claim.elastic is None and claim.ceiling is None)
            or claim.grant is not None
            or claim.consumed.any()
        ):
            raise LedgerError(f"claim {claim_id}", "only a fresh elastic grant can grow")
        demand, grant = grown(claim, self.budget, self.resolver, self.accounting)
        self._set_grant(claim, demand, grant)
        if self.listener is not None:
            self.listener(records.Expand(claim_id, demand.tolist(), grant, time))
        return claim

    def set_grant(self, claim_id: str, demand: np.ndarray, grant: dict[str, float]) -> None:
        """Replay an `expand` exactly (no calibration): the demand and grant it chose."""
        claim = self.claim(claim_id)
        _expect(claim, ClaimState.ALLOCATED, "expand")
        self._set_grant(claim, np.asarray(demand, dtype=float).reshape(claim.demand.shape), grant)

    def _set_grant(self, claim: Claim, demand: np.ndarray, grant: dict[str, float]) -> None:
        self.budget.regrant(claim.block_index, claim.demand, claim.allocated, demand)
        claim.demand = demand
        claim.allocated = demand.copy()
        claim.grant = dict(grant)
        self.revision += 1

    # ------------------------------------------------------------- operations
    def can_run(self, claim_id: str) -> bool:
        """Would `allocate` grant it now? (A claim waiting aside never runs.)"""
        claim = self.claim(claim_id)
        if self.waits_aside(claim_id):
            return False
        rows = claim.block_index
        room = self.budget.unlocked[rows] + claim.reserved
        return bool(self.budget.admits(rows, claim.demand, room, units_up(claim.demand)).all())

    def allocate(self, claim_id: str, *, request_id: str, time: float) -> Claim:
        """Grant the claim's whole demand on all its blocks, or nothing: from its own
        reservation first, the rest from unlocked budget."""
        claim = self.claim(claim_id)
        if self.history.replayed(request_id, "allocate", claim_id):
            return claim
        _expect(claim, ClaimState.PENDING, "allocate")
        if self.waits_aside(claim_id):
            raise LedgerError(f"claim {claim_id}", aside_reason(claim))
        rows = claim.block_index
        room = self.budget.unlocked[rows] + claim.reserved
        ok = self.budget.admits(rows, claim.demand, room, units_up(claim.demand))
        if not ok.all():
            short = [b for b, fit in zip(claim.block_ids, ok, strict=True) if not fit]
            raise LedgerError(
                f"claim {claim_id}", f"not enough unlocked budget on blocks {short} at any order"
            )
        self.budget.grant(rows, claim.demand, claim.reserved)
        claim.reserved = np.zeros_like(claim.reserved)
        self._granted(claim, request_id, time)
        return claim

    def allocate_many(self, claim_ids: Sequence[str], *, time: float) -> list[str]:
        """Allocate the claims in this order, each one the ledger admits at its turn
        (request id `allocate:<id>`); a claim refused waits. The same as `can_run` then
        `allocate` for each in turn, which it falls back to when a claim is refused,
        set aside, holds a reservation or was allocated before.

        A scheduling step grants hundreds of claims at once: done one by one, the
        ledger's bookkeeping cost more than the policy. Here each block's budget
        arithmetic runs once over its grants in order (`BlockBudget.grant_in_order`)."""
        claims = [self.claim(claim_id) for claim_id in claim_ids]
        if claims and self._allocate_in_one_pass(claims, time):
            return [claim.id for claim in claims]
        granted = []
        for claim_id in claim_ids:
            if self.can_run(claim_id):
                self.allocate(claim_id, request_id=f"allocate:{claim_id}", time=time)
                granted.append(claim_id)
        return granted

    def _allocate_in_one_pass(self, claims: list[Claim], time: float) -> bool:
        """Allocate all the claims, in order, if each is admitted at its turn; else
        change nothing and return False."""
        pending = ClaimState.PENDING
        if len({c.id for c in claims}) != len(claims) or any(
            c.state is not pending
            or self.waits_aside(c.id)
            or self.history.used(f"allocate:{c.id}")
            or c.reserved.any()
            for c in claims
        ):
            return False
        rows = np.concatenate([c.block_index for c in claims])
        if not self.budget.grant_in_order(rows, np.vstack([c.demand for c in claims])):
            return False
        for claim in claims:
            self._granted(claim, f"allocate:{claim.id}", time)
        return True

    def _granted(self, claim: Claim, request_id: str, time: float) -> None:
        """A pending claim whose budget was just granted becomes allocated."""
        claim.allocated = claim.demand.copy()
        claim.state = ClaimState.ALLOCATED
        claim.allocated_at = time
        self.pending_set.leave(claim.id)
        self.history.remember(request_id, "allocate", claim.id)
        self.revision += 1
        if self.listener is not None:
            self.listener(records.Allocate(claim.id, request_id, time))

    def reserve(self, claim_id: str, amount: np.ndarray, *, request_id: str, time: float) -> Claim:
        """Set unlocked budget aside for a pending claim (one row per block of the claim).

        Never more than the claim still needs, never more than is unlocked: so a
        reservation can always be granted or given back, and budget never goes over.
        """
        claim = self.claim(claim_id)
        if self.history.replayed(request_id, "reserve", claim_id):
            return claim
        _expect(claim, ClaimState.PENDING, "reserve")
        amount = _amount(claim, amount)
        rows = claim.block_index
        if (claim.reserved + amount > claim.demand + TOLERANCE).any():
            raise LedgerError(f"claim {claim_id}", "reserving more than the claim demands")
        if (amount > np.maximum(self.budget.unlocked[rows], 0.0) + TOLERANCE).any():
            raise LedgerError(f"claim {claim_id}", "reserving more than is unlocked")
        self.budget.reserve(rows, amount)
        claim.reserved = claim.reserved + amount
        self.history.remember(request_id, "reserve", claim_id)
        self.revision += 1
        if self.listener is not None:
            self.listener(records.Reserve(claim_id, request_id, time, amount.tolist()))
        return claim

    def consume(
        self, claim_id: str, *, request_id: str, time: float, fraction: float = 1.0
    ) -> Claim:
        """Use `fraction` of the claim's granted demand for good (cumulative, never beyond it)."""
        return self._use(claim_id, None, request_id, time, fraction)

    def consume_amount(
        self, claim_id: str, amount: np.ndarray, *, request_id: str, time: float
    ) -> Claim:
        """Use an explicit amount of the grant for good (one row per block of the claim,
        zero rows for blocks not used): never more than what is left of the grant."""
        return self._use(claim_id, amount, request_id, time, None)

    def _use(
        self,
        claim_id: str,
        amount: np.ndarray | None,
        request_id: str,
        time: float,
        fraction: float | None,
    ) -> Claim:
        """Consume an explicit `amount`, or `fraction` of the demand."""
        claim = self.claim(claim_id)
        if self.history.replayed(request_id, "consume", claim_id):
            return claim
        _expect(claim, ClaimState.ALLOCATED, "consume")
        if amount is None:
            assert fraction is not None
            if not 0.0 < fraction <= 1.0:
                raise InputError("fraction", f"must be in (0, 1], got {fraction}")
            used = claim.demand * fraction
            if (used > claim.allocated + TOLERANCE).any():
                raise LedgerError(
                    f"claim {claim_id}", "consuming more than the remaining allocation"
                )
        else:
            used = _amount(claim, amount)
            over = np.flatnonzero(np.any(used > claim.allocated + TOLERANCE, axis=1))
            if over.size:
                blocks = [claim.block_ids[k] for k in over.tolist()]
                raise LedgerError(
                    f"claim {claim_id}",
                    f"consuming more than is left of the grant on blocks {blocks}",
                )
        self._consume(claim, np.minimum(used, claim.allocated), time)
        self.history.remember(request_id, "consume", claim_id)
        self.revision += 1
        if self.listener is not None:
            given = None if amount is None else used.tolist()
            self.listener(
                records.Consume(claim_id, request_id, time, fraction=fraction, amount=given)
            )
        return claim

    def _consume(self, claim: Claim, amount: np.ndarray, time: float) -> None:
        rows = claim.block_index
        self.budget.consume(rows, amount)
        claim.allocated = claim.allocated - amount
        claim.consumed = claim.consumed + amount
        if not (claim.allocated > TOLERANCE).any():
            self.budget.consume(rows, claim.allocated)  # the leftover, used up with it
            claim.consumed = claim.consumed + claim.allocated
            claim.allocated = np.zeros_like(claim.allocated)
            self._finish(claim, ClaimState.CONSUMED, time)

    def release(self, claim_id: str, *, request_id: str, time: float) -> Claim:
        """Return the unconsumed part of an allocation to unlocked budget."""
        claim = self.claim(claim_id)
        if self.history.replayed(request_id, "release", claim_id):
            return claim
        _expect(claim, ClaimState.ALLOCATED, "release")
        self.budget.release(claim.block_index, claim.demand, claim.consumed, claim.allocated)
        self.pending_set.index.forget_hints()  # spent budget went down
        claim.allocated = np.zeros_like(claim.allocated)
        self._finish(claim, ClaimState.RELEASED, time)
        self.history.remember(request_id, "release", claim_id)
        self.revision += 1
        if self.listener is not None:
            self.listener(records.Release(claim_id, request_id, time))
        return claim

    def expire(self, claim_id: str, *, request_id: str, time: float) -> Claim:
        """Give up on a pending claim (timeout, or its owner withdrew it)."""
        claim = self.claim(claim_id)
        if self.history.replayed(request_id, "expire", claim_id):
            return claim
        _expect(claim, ClaimState.PENDING, "expire")
        if claim.reserved.any():
            self.budget.unreserve(claim.block_index, claim.reserved)
            claim.reserved = np.zeros_like(claim.reserved)
            self.pending_set.index.forget_hints()  # committed budget went down
        self._finish(claim, ClaimState.EXPIRED, time)
        self.pending_set.leave(claim_id)
        self.history.remember(request_id, "expire", claim_id)
        self.revision += 1
        if self.listener is not None:
            self.listener(records.Expire(claim_id, request_id, time))
        return claim

    def expire_due(self, time: float) -> list[str]:
        """Expire every pending claim whose timeout has passed at `time`."""
        view = self.pending_set.index.view()
        late = view.alive & (view.arrays.deadline <= time + TOLERANCE)
        due = [str(view.arrays.ids[i]) for i in np.flatnonzero(late)]
        for claim_id in self.pending_set.aside:  # not in the view
            deadline = self._claims[claim_id].deadline
            if deadline is not None and deadline <= time:
                due.append(claim_id)
        for claim_id in due:
            self.expire(claim_id, request_id=f"expire:{claim_id}", time=time)
        return due

    # -------------------------------------------------------------- retention
    def finished_before(self, time: float, limit: int | None = None) -> list[str]:
        """Finished claims (consumed, released, expired, rejected) that finished at or
        before `time`, in the order they finished (the first `limit` of them)."""
        return self.history.finished_before(self._claims, time, limit)

    def forget(self, claim_ids: Sequence[str]) -> list[Forgotten]:
        """Drop finished claims, and the request ids used on them, from the ledger.

        A finished claim no longer touches any budget (what it consumed stays in the
        blocks' totals), so a long-running service forgets it after a retention period
        and keeps its state, snapshots and restarts proportional to live work. The
        front end keeps what it wants of them (the journal keeps everything). All or
        nothing: a claim that is missing or not finished refuses the whole call.
        """
        for claim_id in claim_ids:
            if self.claim(claim_id).finished_at is None:
                state = self._claims[claim_id].state.value
                raise LedgerError(f"claim {claim_id}", f"cannot forget: claim is {state}")
        if len(set(claim_ids)) != len(claim_ids):
            raise InputError("claims", "a claim is named twice")
        forgotten = [
            Forgotten(self._claims.pop(claim_id), self.history.drop(claim_id))
            for claim_id in claim_ids
        ]
        if claim_ids:
            self.revision += 1
            if self.listener is not None:
                self.listener(records.Forget(list(claim_ids)))
        return forgotten

    def _finish(self, claim: Claim, state: ClaimState, time: float) -> None:
        if claim.state is ClaimState.ALLOCATED:
            self.budget.let_go(claim.block_index)
        claim.state = state
        claim.finished_at = time
        self.history.finished(claim.id)

    # ------------------------------------------------------------ reporting
    def spent_epsilon(self, block_id: str) -> float:
        index = self.block_index(block_id)
        spec = self.budget.specs[index]
        return self.accounting.spent_epsilon(self.budget.spent()[index], spec.delta)

    def invariant_violations(self) -> list[str]:
        """Every broken ledger invariant, described; empty when the state is sound."""
        return self.budget.invariant_violations()


def _expect(claim: Claim, state: ClaimState, op: str) -> None:
    if claim.state is not state:
        raise LedgerError(
            f"claim {claim.id}", f"cannot {op}: claim is {claim.state.value}, not {state.value}"
        )


def _amount(claim: Claim, amount: np.ndarray) -> np.ndarray:
    """An amount per block of the claim (reserve, consume): its shape, finite, >= 0."""
    checked = np.asarray(amount, dtype=float)
    if checked.shape != claim.demand.shape:
        raise InputError("amount", f"must have shape {claim.demand.shape}, got {checked.shape}")
    if not np.isfinite(checked).all() or (checked < 0).any():
        raise InputError("amount", "must be finite and non-negative")
    return checked


def _task_field(data: object) -> str:
    """`tasks.<id>` for a task given as a dict with a usable id, else `task`."""
    name = data.get("id") if isinstance(data, dict) else None
    return f"tasks.{name}" if isinstance(name, str) and name else "task"
