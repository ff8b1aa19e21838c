"""The few Kubernetes API calls the operator makes outside kopf's own handler patches:
mirroring statuses of objects other than the one a handler runs for, and Events.

Every write is a PATCH, never a PUT: a status is merge-patched with the object's
resourceVersion as a precondition, so a write computed from a stale read is refused
(409) instead of overwriting a newer one, and is retried on a fresh read with backoff.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
CONFLICT_RETRIES = 8


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Connection:
    server: str
    token: str | None = None
    ca_file: str | None = None
    insecure: bool = False

    @classmethod
    def in_cluster(cls) -> Connection:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        return cls(
            server=f"https://{host}:{port}",
            token=(SERVICE_ACCOUNT / "token").read_text().strip(),
            ca_file=str(SERVICE_ACCOUNT / "ca.crt"),
        )


def path_of(group: str, version: str, plural: str, namespace: str | None, name: str) -> str:
    base = "/api/v1" if group == "" else f"/apis/{group}/{version}"
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{where}/{plural}/{name}"


class KubeApi:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.connection.insecure:
            return False
        if self.connection.ca_file:
            return ssl.create_default_context(cafile=self.connection.ca_file)
        return True

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json"}
            if self.connection.token:
                headers["Authorization"] = f"Bearer {self.connection.token}"
            self._session = aiohttp.ClientSession(
                base_url=self.connection.server,
                headers=headers,
                connector=aiohttp.TCPConnector(ssl=self._ssl()),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        session = await self.session()
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["json"] = body
            kwargs["headers"] = {"Content-Type": content_type}
        async with session.request(method, path, **kwargs) as reply:
            text = await reply.text()
            if reply.status >= 400:
                raise KubeError(reply.status, text[:500])
            return await reply.json(content_type=None) if text else None

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def merge_patch(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request("PATCH", path, body, "application/merge-patch+json")

    async def json_patch(self, path: str, operations: list[dict[str, Any]]) -> Any:
        return await self.request("PATCH", path, operations, "application/json-patch+json")

    async def patch_status(
        self, path: str, status: dict[str, Any], current: dict[str, Any] | None = None
    ) -> bool:
        """Merge `status` into the object's status, guarded by its resourceVersion (of
        `current`, the object as just read, if given); on a conflict, re-read and retry
        with backoff. False if the object is gone."""
        delay = 0.05
        for attempt in range(CONFLICT_RETRIES):
            if attempt or current is None:
                current = await self.get(path)
            if current is None:
                return False
            version = current.get("metadata", {}).get("resourceVersion")
            body = {"metadata": {"resourceVersion": version}, "status": status}
            try:
                await self.merge_patch(f"{path}/status", body)
                return True
            except KubeError as exc:
                if exc.status == 404:
                    return False
                if exc.status != 409:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise KubeError(409, f"{path}: still conflicting after {CONFLICT_RETRIES} tries")

    async def event(
        self, involved: dict[str, Any], kind: str, reason: str, message: str, warning: bool = False
    ) -> None:
        """Post a core/v1 Event about an object (`involved`: its apiVersion, kind, name,
        namespace and uid); events about cluster-scoped objects go to `default`."""
        namespace = involved.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        name = f"{involved['name']}.{dt.datetime.now(dt.UTC).strftime('%Y%m%d%H%M%S%f')}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name[:253], "namespace": namespace},
            "involvedObject": {**involved, "kind": kind},
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "dpsched"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.request("POST", f"/api/v1/namespaces/{namespace}/events", event)
