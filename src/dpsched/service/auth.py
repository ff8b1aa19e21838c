"""Who is calling: the request's credentials as a typed dependency, and their check on the
writer thread.

Authentication comes in two halves on purpose. The dependency (`AnyToken`, `AdminToken`,
`TenantToken`) only reads the request's headers: it hashes the bearer token and notes
the tenant an admin acts as, and refuses nothing, so that FastAPI's own checks of query
parameters answer first, as they always have. `authenticate` decides: a missing token,
the admin token (compared in constant time), a tenant's token, the tenant an admin acts
as, the route's role. Tokens and tenants are the writer's state (a commit adds a tenant,
a failed commit reloads the table), so `authenticate` runs on the writer thread as the
first step of a request's job: it sees committed state only, and never a table that is
being rebuilt.

Every refusal is as it always was: 401 without a usable token or with an unknown one,
404 for an unknown tenant to act as, 403 for a tenant on an admin route or the admin
(not acting as a tenant) on a claim route.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from fastapi import Depends, Request

from dpsched.engine.durable import Context
from dpsched.service.errors import ApiError
from dpsched.service.state import ServiceState, token_hash

ACT_AS = "x-dpsched-tenant"
"""With the admin token, act as this tenant: how a trusted front end (the Kubernetes
operator, whose tenants are namespaces) uses the one API without holding every
tenant's token. The journal records the admin as the actor."""


class Role(Enum):
    """Who a route serves."""

    ANYONE = "anyone"
    """Any valid token (reading blocks)."""
    ADMIN = "admin"
    """The admin token, possibly acting as a tenant (tenants, blocks, rounds, audit)."""
    TENANT = "tenant"
    """A tenant's token, or the admin acting as a tenant (claims)."""


@dataclass(frozen=True)
class Credentials:
    """What a request presents, before anything is checked against tenant state."""

    role: Role
    """What the route needs."""
    token_sha256: str | None
    """SHA-256 of the bearer token; None without an `Authorization: Bearer` header."""
    acting_as: str | None = None
    """The `x-dpsched-tenant` header (it counts with the admin token only)."""


@dataclass(frozen=True)
class Caller:
    """Who a request is, once authenticated."""

    admin: bool
    tenant: str | None
    acting: bool = False
    """The admin acting as `tenant`."""

    @property
    def owner(self) -> str:
        """The tenant a claim route acts for (its role made sure there is one)."""
        assert self.tenant is not None, "a claim route authenticated without a tenant"
        return self.tenant

    def context(self, request_id: str | None = None) -> Context:
        """Who the journal's rows say asked."""
        actor = self.tenant
        if self.admin:
            actor = f"admin as {self.tenant}" if self.acting else "admin"
        return Context(tenant=self.tenant, actor=actor, request_id=request_id)


def authenticate(state: ServiceState, admin_sha256: str, who: Credentials) -> Caller:
    """The caller these credentials prove, or the refusal. On the writer thread only."""
    if who.token_sha256 is None:
        raise ApiError(401, "authorization", "send `Authorization: Bearer TOKEN`")
    if hmac.compare_digest(who.token_sha256, admin_sha256):
        if who.acting_as is None:
            caller = Caller(admin=True, tenant=None)
        elif who.acting_as not in state.tenants:
            raise ApiError(404, ACT_AS, f"unknown tenant {who.acting_as!r}")
        else:
            caller = Caller(admin=True, tenant=who.acting_as, acting=True)
    else:
        tenant = state.tenant_by_hash(who.token_sha256)
        if tenant is None:
            raise ApiError(401, "authorization", "unknown token")
        caller = Caller(admin=False, tenant=tenant)
    if who.role is Role.ADMIN and not caller.admin:
        raise ApiError(403, "authorization", "this route needs the admin token")
    if who.role is Role.TENANT and caller.tenant is None:
        raise ApiError(403, "authorization", "claims belong to tenants: use a tenant token")
    return caller


def _presented(request: Request, role: Role) -> Credentials:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return Credentials(role, None)
    return Credentials(role, token_hash(token), request.headers.get(ACT_AS))


# Coroutines, so that FastAPI calls them on the event loop and not in its thread pool.
async def _anyone(request: Request) -> Credentials:
    return _presented(request, Role.ANYONE)


async def _admin(request: Request) -> Credentials:
    return _presented(request, Role.ADMIN)


async def _tenant(request: Request) -> Credentials:
    return _presented(request, Role.TENANT)


AnyToken = Annotated[Credentials, Depends(_anyone)]
AdminToken = Annotated[Credentials, Depends(_admin)]
TenantToken = Annotated[Credentials, Depends(_tenant)]
