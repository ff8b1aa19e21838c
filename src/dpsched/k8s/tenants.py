"""The operator's way into the budget service: one client as the admin and one per
namespace acting as that namespace's tenant, and the names that tie a Kubernetes object
to its ledger id.

The operator is a client of the service's API like any other, so validation,
idempotency, the journal and the scheduling rounds are the service's. A claim's id in the
engine is `<name>@<uid>` in the tenant `k8s.<namespace>`, so a claim deleted and created
again under the same name is a new claim; a block's id is its name (blocks are never
removed from the ledger: they are the audit trail).
"""

from __future__ import annotations

from dpsched.client import Client, ServiceError

TENANT_PREFIX = "k8s."
"""A namespace's tenant is `k8s.<namespace>`: never one a REST client made (give REST
tenants other names), and the journal mirror knows the operator's claims by it."""


def engine_id(name: str, uid: str) -> str:
    """The claim's id in the engine (within its namespace's tenant)."""
    return f"{name}@{uid}"


def namespace_of(key: str) -> tuple[str, str]:
    """(namespace, claim id) of a ledger key `k8s.<namespace>/<name>@<uid>`."""
    tenant, claim_id = key.split("/", 1)
    return tenant[len(TENANT_PREFIX) :], claim_id


class TenantClients:
    """The service's clients, made on first use and kept (one connection each)."""

    def __init__(self, service_url: str, admin_token: str) -> None:
        self.service_url = service_url
        self.admin_token = admin_token
        self._clients: dict[str | None, Client] = {}
        self._tenants: set[str] = set()

    def client(self, namespace: str | None = None) -> Client:
        """The admin's client (no namespace), or the one acting as the namespace's
        tenant (which must exist: see `tenant`)."""
        if namespace not in self._clients:
            self._clients[namespace] = Client(
                self.service_url,
                self.admin_token,
                act_as=None if namespace is None else TENANT_PREFIX + namespace,
            )
        return self._clients[namespace]

    def tenant(self, namespace: str) -> Client:
        """The client acting as the namespace's tenant (created on first use)."""
        if namespace not in self._tenants:
            try:
                self.client().add_tenant(TENANT_PREFIX + namespace)
            except ServiceError as exc:
                if exc.status != 409:  # 409: it exists, which is what we want
                    raise
            self._tenants.add(namespace)
        return self.client(namespace)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
