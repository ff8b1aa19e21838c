"""What the service keeps beside the ledger: tenants (with hashed tokens) and the body
each claim was submitted with. Journaled and snapshotted with the engine.

Claim ids are per tenant; in the ledger a claim is `tenant/id` (tenant names have no
`/`), so one global budget filter serves every tenant, as soundness requires
(per-tenant budgets are unsound under cross-tenant adaptivity; quotas under one global
filter are not).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from dpsched.engine.durable import FrontEndState
from dpsched.engine.journal import Entry
from dpsched.errors import InputError

TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def token_hash(token: str) -> str:
    """Tokens are 256 random bits: one SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def ledger_id(tenant: str, claim_id: str) -> str:
    return f"{tenant}/{claim_id}"


@dataclass
class ClaimMeta:
    tenant: str
    id: str
    body: dict[str, Any]


@dataclass
class ServiceState(FrontEndState):
    tenants: dict[str, str] = field(default_factory=dict)
    """name -> token hash"""
    claims: dict[str, ClaimMeta] = field(default_factory=dict)
    """ledger id -> who submitted it, and the body they sent"""
    by_tenant: dict[str, list[str]] = field(default_factory=dict)
    """tenant -> its ledger ids in submission order (listing, cursors)"""
    _by_token: dict[str, str] = field(default_factory=dict)

    def reset(self) -> None:
        self.tenants, self.claims, self.by_tenant, self._by_token = {}, {}, {}, {}

    # ----------------------------------------------------------------- reading
    def tenant_of(self, token: str) -> str | None:
        return self._by_token.get(token_hash(token))

    # --------------------------------------------------------------- changing
    def add_tenant(self, name: str, hashed: str) -> None:
        if not TENANT_NAME.match(name):
            raise InputError(
                "name", "1-63 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        self.tenants[name] = hashed
        self._by_token[hashed] = name
        self.by_tenant.setdefault(name, [])

    def add_claim(self, tenant: str, claim_id: str, body: dict[str, Any]) -> None:
        key = ledger_id(tenant, claim_id)
        self.claims[key] = ClaimMeta(tenant, claim_id, body)
        self.by_tenant.setdefault(tenant, []).append(key)

    # ------------------------------------------------------- durable engine API
    def snapshot(self) -> dict[str, Any]:
        return {
            "tenants": self.tenants,
            "claims": [[k, m.tenant, m.id, m.body] for k, m in self.claims.items()],
        }

    def load(self, data: dict[str, Any]) -> None:
        self.reset()
        for name, hashed in data.get("tenants", {}).items():
            self.add_tenant(name, hashed)
        for _key, tenant, claim_id, body in data.get("claims", []):
            self.add_claim(tenant, claim_id, body)

    def restore(self, entry: Entry) -> None:
        if entry.op == "tenant_add":
            self.add_tenant(entry.args["name"], entry.args["token_sha256"])
        elif entry.op == "claim_body":
            self.add_claim(entry.args["tenant"], entry.args["id"], entry.args["body"])
        else:
            super().restore(entry)
