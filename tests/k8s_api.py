"""A Kubernetes API server for tests: kmock's emulator, made faithful where the operator
depends on it, run on loopback in a thread, with kopf running for real against it.

kmock stores objects and serves list/watch/patch/delete with finalizers, but never
assigns uid, generation or resourceVersion and never answers 409 on a stale write.
`FaithfulEmulator` adds what a real API server does there: uid, creationTimestamp and
generation on create; a new resourceVersion on every write (in the stored object before
the watch event goes out, as watchers rely on); generation bumped on spec changes only;
409 Conflict on a write whose resourceVersion precondition (merge patch metadata, or a
JSON-patch `test`) is stale; names from `generateName`; `/status` writes that change
only status, and main-resource writes that leave a status subresource alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import httpx
import jsonpatch
import kmock
from kmock._internal import enums, k8s, rendering

WITH_STATUS = {"privateblocks", "privacyclaims", "pods"}


@attrs.frozen
class Conflict(k8s.KubernetesError):
    status: int = 409
    reason: str = "Conflict"
    message: str = "the object has been modified; please apply your changes to the latest version"


class FaithfulEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    _versions = itertools.count(1000)

    async def _handle(self, request: rendering.Request) -> Any:
        if request.resource is not None and request.action in (
            enums.action.CREATE,
            enums.action.UPDATE,
        ):
            request = self._prepare(request)
        return await super()._handle(request)

    def _stored(self, request: rendering.Request) -> dict[str, Any] | None:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        raw: dict[str, Any] = self.objects[key].raw
        return raw

    def _prepare(self, request: rendering.Request) -> rendering.Request:
        version = str(next(self._versions))
        if request.action == enums.action.CREATE:
            data = copy.deepcopy(request.data)
            meta = data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["generation"] = 1
            meta["resourceVersion"] = version
            if request.namespace and "namespace" not in meta:
                meta["namespace"] = request.namespace
            return _with_data(request, data)
        stored = self._stored(request)
        if stored is None:
            return request  # kmock answers 404
        current = stored.get("metadata", {}).get("resourceVersion")
        plural = request.resource.plural if request.resource else ""
        status_only = request.subresource == "status"
        if isinstance(request.data, list):  # JSON patch
            for op in request.data:
                guarded = op.get("op") == "test" and op.get("path") == "/metadata/resourceVersion"
                if guarded and op.get("value") != current:
                    raise Conflict()
            operations = [
                op for op in request.data if op.get("path") != "/metadata/resourceVersion"
            ]
            after = jsonpatch.apply_patch(copy.deepcopy(stored), operations)
        else:
            data = copy.deepcopy(request.data or {})
            wanted = (data.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != current:
                raise Conflict()
            if status_only:
                data = {"metadata": data.get("metadata", {}), "status": data.get("status")}
            elif plural in WITH_STATUS:
                data.pop("status", None)
            after = _merged(copy.deepcopy(stored), data)
        generation = stored.get("metadata", {}).get("generation", 1)
        if not status_only and after.get("spec") != stored.get("spec"):
            generation += 1
        if isinstance(request.data, list):
            extra = [
                {"op": "add", "path": "/metadata/resourceVersion", "value": version},
                {"op": "add", "path": "/metadata/generation", "value": generation},
            ]
            kept = [op for op in request.data if op.get("op") != "test"]
            return _with_data(request, kept + extra)
        data.setdefault("metadata", {})
        data["metadata"] = {
            **(data["metadata"] or {}),
            "resourceVersion": version,
            "generation": generation,
        }
        return _with_data(request, data)


def _with_data(request: rendering.Request, data: Any) -> rendering.Request:
    """The request with its parsed body replaced (kmock's requests are frozen, and a copy
    would no longer match the emulator's reactions)."""
    object.__setattr__(request, "data", data)
    return request


def _merged(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch (None deletes)."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merged(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


RESOURCES = {
    "v1/namespaces": ("Namespace", False, set()),
    "v1/events": ("Event", True, set()),
    "v1/pods": ("Pod", True, {"status"}),
    "events.k8s.io/v1/events": ("Event", True, set()),
    "dpsched.io/v1/privateblocks": ("PrivateBlock", False, {"status"}),
    "dpsched.io/v1/privacyclaims": ("PrivacyClaim", True, {"status"}),
}
VERBS = {"list", "watch", "get", "create", "patch", "delete"}


class Cluster:
    """The emulator served on loopback from a background thread, with a sync client."""

    def __init__(self) -> None:
        self.emulator = FaithfulEmulator()
        for name, (kind, namespaced, subresources) in RESOURCES.items():
            self.emulator.resources[name] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, subresources=subresources, verbs=VERBS
            )
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> Cluster:
        self._thread.start()
        self.url = str(asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(30))
        self.http = httpx.Client(base_url=self.url, timeout=10)
        return self

    async def _serve(self) -> str:
        self._stack = contextlib.AsyncExitStack()
        await self._stack.enter_async_context(self.emulator)
        server = await self._stack.enter_async_context(kmock.Server(self.emulator))
        return str(server.url).rstrip("/")

    def stop(self) -> None:
        self.http.close()
        asyncio.run_coroutine_threadsafe(self._stack.aclose(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    # --------------------------------------------------------------- objects
    @staticmethod
    def path(api: str, plural: str, namespace: str | None, name: str | None = None) -> str:
        base = "/api/v1" if api == "v1" else f"/apis/{api}"
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"{base}{where}/{plural}" + (f"/{name}" if name else "")

    def create(self, api: str, plural: str, namespace: str | None, body: dict[str, Any]) -> Any:
        reply = self.http.post(self.path(api, plural, namespace), json=body)
        assert reply.status_code in (200, 201), reply.text
        return reply.json()

    def get(self, api: str, plural: str, namespace: str | None, name: str) -> Any:
        reply = self.http.get(self.path(api, plural, namespace, name))
        return reply.json() if reply.status_code == 200 else None

    def patch(
        self, api: str, plural: str, namespace: str | None, name: str, body: dict[str, Any]
    ) -> httpx.Response:
        return self.http.patch(
            self.path(api, plural, namespace, name),
            json=body,
            headers={"Content-Type": "application/merge-patch+json"},
        )

    def delete(self, api: str, plural: str, namespace: str | None, name: str) -> httpx.Response:
        return self.http.delete(self.path(api, plural, namespace, name))

    def events(self, namespace: str) -> list[dict[str, Any]]:
        reply = self.http.get(self.path("v1", "events", namespace))
        return list(reply.json()["items"]) if reply.status_code == 200 else []


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(0.05)


@contextmanager
def running_cluster() -> Iterator[Cluster]:
    cluster = Cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()
