"""Operations as typed, frozen records: what the ledger reports after each change of
state, what a front end journals of its own, and the one encoder and decoder between
them and the journal's (name, JSON arguments) rows.

A record describes an event apart from whatever applies it, as `dp_accounting`'s
DpEvent classes describe mechanisms apart from the accountants that compose them: the
ledger builds the records, `core.replay` applies them, the journal stores their
encoding, and a front end's records (tenants, claim bodies) are its own subclasses.

The ledger's records carry the outcome of every decision: the blocks a submission
resolved to and its demand, the fractions an unlocking reached, each reservation and
allocation a policy made. Replaying them in order on a ledger in the same prior state
reproduces its state exactly, without selectors, mechanism curves, unlocking strategies
or policies (so a time-limited `optimal` replays the same grants it made).

Encoding: a record's fields by name, with a field that is None left out. The journal
hashes that JSON, so the encoding of a record type never changes once written.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

from dpsched.core.claims import Claim
from dpsched.errors import InputError


@dataclass(frozen=True)
class Record:
    """Frozen fields with their JSON form: each field by name, a None field left out."""

    def to_args(self) -> dict[str, Any]:
        """The JSON-able arguments the journal stores."""
        args = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                args[f.name] = value.to_args() if isinstance(value, Record) else value
        return args

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> Self:
        return cls(**args)


@dataclass(frozen=True)
class Operation(Record):
    """A journaled change of state; each concrete kind has a unique name, `op`."""

    op: ClassVar[str]
    kinds: ClassVar[dict[str, type[Operation]]] = {}
    """Every record type by name: what `decode` reads."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        op = cls.__dict__.get("op")
        if op is not None:
            if op in Operation.kinds:
                raise TypeError(f"two operations named {op!r}")
            Operation.kinds[op] = cls


def encode(operation: Operation) -> tuple[str, dict[str, Any]]:
    return operation.op, operation.to_args()


def decode(op: str, args: dict[str, Any]) -> Operation:
    """The record a journal row holds; an unknown name or bad arguments name the row's
    operation (the caller says which row)."""
    kind = Operation.kinds.get(op)
    if kind is None:
        raise InputError("op", f"unknown operation {op!r}")
    try:
        return kind.from_args(args)
    except TypeError as exc:
        raise InputError(f"{op}.args", str(exc)) from None


@dataclass(frozen=True)
class Init(Operation):
    """A journal's first row: the accounting its ledger is kept in (`Accounting.to_dict`)."""

    op: ClassVar[str] = "init"
    accounting: dict[str, Any]


class LedgerOperation(Operation):
    """A change the ledger made and reports (`Ledger.listener`); `core.replay` applies it."""


@dataclass(frozen=True)
class AddBlock(LedgerOperation):
    op: ClassVar[str] = "add_block"
    spec: dict[str, Any]
    """The block as `BlockSpec` JSON."""


@dataclass(frozen=True)
class Unlock(LedgerOperation):
    op: ClassVar[str] = "unlock"
    index: list[int]
    fraction: list[float]
    """The unlocked fraction each block of `index` reached."""


@dataclass(frozen=True)
class ResolvedClaim(Record):
    """A submitted claim as resolved: its blocks chosen and its demand computed, so that
    replaying it needs no selector, no curve and no dp-accounting, only the admission
    rule again. (A part of `Submit`, never journaled alone.)"""

    id: str
    weight: float
    arrival: float
    timeout: float | None
    min_blocks: int
    block_ids: list[str]
    demand: list[list[float]]

    def to_args(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # timeout None is kept


@dataclass(frozen=True)
class Submit(LedgerOperation):
    op: ClassVar[str] = "submit"
    claim: ResolvedClaim
    time: float
    flex: dict[str, Any] | None = None
    """What makes the claim flexible (`Flex.to_dict`)."""
    elastic: dict[str, Any] | None = None
    """Its elastic demand (`ElasticDemand` JSON)."""
    ceiling: list[float] | None = None
    """The full demand of a claim that gave `min_demand`."""

    @classmethod
    def of(cls, claim: Claim, min_blocks: int, time: float) -> Submit:
        """A submission as the ledger resolved it (blocks chosen, demand computed)."""
        return cls(
            claim=ResolvedClaim(
                id=claim.id,
                weight=claim.weight,
                arrival=claim.arrival,
                timeout=claim.timeout,
                min_blocks=min_blocks,
                block_ids=list(claim.block_ids),
                demand=claim.demand.tolist(),
            ),
            time=time,
            flex=None if claim.flex is None else claim.flex.to_dict(),
            elastic=None if claim.elastic is None else claim.elastic.model_dump(mode="json"),
            ceiling=None if claim.ceiling is None else claim.ceiling.tolist(),
        )

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> Self:
        claim = args.get("claim")
        if not isinstance(claim, dict):
            raise TypeError("'claim' must be an object")
        return cls(**{**args, "claim": ResolvedClaim.from_args(claim)})


@dataclass(frozen=True)
class ClaimOperation(LedgerOperation):
    """An operation on one claim, under a request id (which makes it idempotent)."""

    claim: str
    request_id: str
    time: float


@dataclass(frozen=True)
class Reserve(ClaimOperation):
    op: ClassVar[str] = "reserve"
    amount: list[list[float]]


@dataclass(frozen=True)
class Allocate(ClaimOperation):
    op: ClassVar[str] = "allocate"


@dataclass(frozen=True)
class Consume(ClaimOperation):
    """A fraction of the grant, or an explicit amount per block (exactly one is set)."""

    op: ClassVar[str] = "consume"
    fraction: float | None = None
    amount: list[list[float]] | None = None


@dataclass(frozen=True)
class Release(ClaimOperation):
    op: ClassVar[str] = "release"


@dataclass(frozen=True)
class Expire(ClaimOperation):
    op: ClassVar[str] = "expire"


@dataclass(frozen=True)
class Forget(LedgerOperation):
    op: ClassVar[str] = "forget"
    claims: list[str]


@dataclass(frozen=True)
class Materialise(LedgerOperation):
    """A flexible claim's blocks chosen again; not `valid`: it waits aside."""

    op: ClassVar[str] = "materialise"
    claim: str
    block_ids: list[str]
    time: float
    valid: bool


@dataclass(frozen=True)
class Expand(LedgerOperation):
    """An elastic grant grown to `demand`, with what it was granted (noise or fraction)."""

    op: ClassVar[str] = "expand"
    claim: str
    demand: list[list[float]]
    grant: dict[str, float]
    time: float
