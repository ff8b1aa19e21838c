"""The service's own journaled operations: what it keeps beside the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from dpsched.core.records import Operation


@dataclass(frozen=True)
class TenantAdded(Operation):
    """A tenant and the SHA-256 of its token (the token itself is never stored)."""

    op: ClassVar[str] = "tenant_add"
    name: str
    token_sha256: str


@dataclass(frozen=True)
class ClaimBody(Operation):
    """The body a tenant submitted a claim with, as sent (the ledger keeps it resolved)."""

    op: ClassVar[str] = "claim_body"
    tenant: str
    id: str
    body: dict[str, Any]
