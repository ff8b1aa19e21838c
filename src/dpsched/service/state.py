"""What the service keeps beside the ledger: tenants (with hashed tokens) and the body
each claim was submitted with. Journaled and snapshotted with the engine.

Claim ids are per tenant; in the ledger a claim is `tenant/id` (tenant names have no
`/`), so one global budget filter serves every tenant, as soundness requires
(per-tenant budgets are unsound under cross-tenant adaptivity; quotas under one global
filter are not).
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import orjson

from dpsched.core import Ledger
from dpsched.core.records import Operation
from dpsched.engine.durable import FrontEndState
from dpsched.errors import InputError
from dpsched.service.records import ClaimBody, TenantAdded

TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def token_hash(token: str) -> str:
    """Tokens are 256 random bits: one SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def ledger_id(tenant: str, claim_id: str) -> str:
    return f"{tenant}/{claim_id}"


class ClaimMeta(NamedTuple):
    """Who submitted a claim and what they sent. A tuple of strings and an int: the
    garbage collector stops tracking it, and it costs a few hundred bytes."""

    tenant: str
    id: str
    body: str
    """The submitted body as canonical JSON (a re-post is compared with it)."""
    n: int
    """Submission number, service-wide: the order of listings and their cursors."""


def canonical(body: dict[str, Any]) -> str:
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()


class Listing:
    """One tenant's live claims in submission order: append, remove, and resume after a
    cursor (a submission number) by bisection, so pages cost what they return."""

    def __init__(self) -> None:
        self._numbers: list[int] = []
        self._keys: list[str | None] = []
        self._dead = 0

    def add(self, n: int, key: str) -> None:
        self._numbers.append(n)
        self._keys.append(key)

    def remove(self, n: int) -> None:
        i = bisect.bisect_left(self._numbers, n)
        if i < len(self._numbers) and self._numbers[i] == n and self._keys[i] is not None:
            self._keys[i] = None
            self._dead += 1
            if self._dead > len(self._keys) // 2:
                kept = [(m, k) for m, k in zip(self._numbers, self._keys, strict=True) if k]
                self._numbers = [m for m, _ in kept]
                self._keys = [k for _, k in kept]
                self._dead = 0

    def after(self, n: int) -> Iterator[tuple[int, str]]:
        """(number, key) of the live claims submitted after number `n`, in order."""
        for i in range(bisect.bisect_right(self._numbers, n), len(self._numbers)):
            key = self._keys[i]
            if key is not None:
                yield self._numbers[i], key


class KeyDigests:
    """64-bit digests of the claim keys moved to the archive, sorted in a numpy array (8
    bytes a claim) with a small set of recent ones: a new claim id is checked here, not
    in the database. A hit (a re-posted archived id, or a 2^-64 coincidence) is
    confirmed in the archive."""

    MERGE_AT = 50_000

    def __init__(self, digests: np.ndarray | None = None) -> None:
        self._sorted = np.unique(digests) if digests is not None else np.zeros(0, np.uint64)
        self._recent: set[int] = set()

    @staticmethod
    def digest(key: str) -> int:
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")

    def add(self, key: str) -> None:
        self._recent.add(self.digest(key))
        if len(self._recent) >= self.MERGE_AT:
            self.array()

    def might_hold(self, key: str) -> bool:
        digest = self.digest(key)
        if digest in self._recent:
            return True
        i = int(np.searchsorted(self._sorted, np.uint64(digest)))
        return i < self._sorted.size and int(self._sorted[i]) == digest

    def array(self) -> np.ndarray:
        if self._recent:
            recent = np.fromiter(self._recent, np.uint64, len(self._recent))
            self._sorted = np.union1d(self._sorted, recent)
            self._recent = set()
        return self._sorted


@dataclass
class ServiceState(FrontEndState):
    tenants: dict[str, str] = field(default_factory=dict)
    """name -> token hash"""
    claims: dict[str, ClaimMeta] = field(default_factory=dict)
    """ledger id -> who submitted it and the body they sent (live claims only: the
    ones the ledger forgot are in the journal's archive)"""
    listings: dict[str, Listing] = field(default_factory=dict)
    archived: KeyDigests = field(default_factory=KeyDigests)
    """which ledger ids may be in the archive (no false negatives)"""
    next_n: int = 1
    _by_token: dict[str, str] = field(default_factory=dict)

    def reset(self) -> None:
        self.tenants, self.claims, self.listings, self._by_token = {}, {}, {}, {}
        self.archived = KeyDigests()
        self.next_n = 1

    # ----------------------------------------------------------------- reading
    def tenant_by_hash(self, token_sha256: str) -> str | None:
        """The tenant whose token hashes to this, if any."""
        return self._by_token.get(token_sha256)

    def listing(self, tenant: str) -> Listing:
        return self.listings.get(tenant) or Listing()

    # --------------------------------------------------------------- changing
    def add_tenant(self, name: str, hashed: str) -> None:
        if not TENANT_NAME.match(name):
            raise InputError(
                "name", "1-63 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        self.tenants[name] = hashed
        self._by_token[hashed] = name
        self.listings.setdefault(name, Listing())

    def add_claim(self, tenant: str, claim_id: str, body: str, n: int | None = None) -> ClaimMeta:
        n = self.next_n if n is None else n
        self.next_n = max(self.next_n, n + 1)
        key = ledger_id(tenant, claim_id)
        meta = ClaimMeta(tenant, claim_id, body, n)
        self.claims[key] = meta
        self.listings.setdefault(tenant, Listing()).add(n, key)
        return meta

    def drop_claims(self, keys: list[str]) -> None:
        """Forget these claims (their final records went to the archive)."""
        for key in keys:
            meta = self.claims.pop(key)
            self.listings[meta.tenant].remove(meta.n)
            self.archived.add(key)

    # ------------------------------------------------------- durable engine API
    def snapshot(self) -> dict[str, Any]:
        return {
            "tenants": self.tenants,
            "next_n": self.next_n,
            "claims": [[m.tenant, m.id, m.body, m.n] for m in self.claims.values()],
        }

    def snapshot_arrays(self) -> dict[str, np.ndarray]:
        return {"archived": self.archived.array()}

    def load(self, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.reset()
        self.archived = KeyDigests(arrays.get("archived"))
        for name, hashed in data.get("tenants", {}).items():
            self.add_tenant(name, hashed)
        for tenant, claim_id, body, n in data.get("claims", []):
            self.add_claim(tenant, claim_id, body, n)
        self.next_n = max(self.next_n, int(data.get("next_n", 1)))

    def restore(self, operation: Operation) -> None:
        match operation:
            case TenantAdded():
                self.add_tenant(operation.name, operation.token_sha256)
            case ClaimBody():
                self.add_claim(operation.tenant, operation.id, canonical(operation.body))
            case _:
                super().restore(operation)

    def recovered(self, ledger: Ledger) -> None:
        """Claims replayed from the journal that the ledger has since forgotten."""
        self.drop_claims([key for key in self.claims if not ledger.has_claim(key)])
