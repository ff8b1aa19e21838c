"""A Kubernetes API server without a cluster: kmock's emulator, made faithful where an
operator depends on it, served on loopback. The tests run kopf for real against it, and
so do the lab's deployment (`deployment.py`) and the operator benchmark (no
kube-apiserver runs here).

`FaithfulEmulator` is kmock's `KubernetesEmulator` (an in-memory API server) with what a
real API server adds and kmock leaves out: `metadata.uid`, `creationTimestamp`,
`generation` and `resourceVersion`; `generateName`; 201 on create; optimistic
concurrency (409 on a stale `metadata.resourceVersion`, 422 on a failed JSON-patch `test`,
as kube-apiserver answers); the status subresource (a `/status` write changes only
`status`, any other write leaves `status` alone); no new version for a no-op patch; a
watch that cannot lose a write made while it starts; and a bounded record of requests,
so that long runs stay linear. `EmulatedCluster` serves it from a background thread
with a synchronous client, for tests and experiments that are not async themselves
(`wait_until` polls it from such code).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import itertools
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import aiohttp
import aiohttp.web
import attrs
import httpx
import jsonpatch
import jsonpointer
import kmock

Json = dict[str, Any]

VERBS = frozenset({"create", "delete", "get", "list", "patch", "watch"})
WRITES = (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE)
# kopf waits to discover v1/namespaces before it watches anything, and posts v1 Events.
CORE_RESOURCES = {"v1/namespaces": ("Namespace", False), "v1/events": ("Event", True)}
# Set by the server, never by a client's write.
SERVER_METADATA = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")
KEEP_REQUESTS = 8
"""kmock records every request and matches each new one by scanning that record, which
makes a long run quadratic: only the last few are kept (the current one last)."""
RESOURCES = {
    "v1/pods": ("Pod", True, True),
    "events.k8s.io/v1/events": ("Event", True, False),
    "dpsched.io/v1/privateblocks": ("PrivateBlock", False, True),
    "dpsched.io/v1/privacyclaims": ("PrivacyClaim", True, True),
}
"""What dpsched's operator reads and writes: (kind, namespaced, has a status subresource)."""


@attrs.frozen
class Conflict(kmock.KubernetesError):
    status: int = 409
    reason: str = "Conflict"
    message: str = (
        "Operation cannot be fulfilled: the object has been modified;"
        " please apply your changes to the latest version and try again"
    )


@attrs.frozen
class Invalid(kmock.KubernetesError):
    status: int = 422
    reason: str = "Invalid"


@attrs.frozen
class BadRequest(kmock.KubernetesError):
    status: int = 400
    reason: str = "BadRequest"


@attrs.define(kw_only=True)
class FaithfulEmulator(kmock.KubernetesEmulator):
    """kmock's emulator, made to behave like kube-apiserver where operators depend on it.

    kmock applies every write itself (and sends the watch event) in `_handle`; this class
    works out the resulting object first, under one lock for all writes (so a check and
    its write cannot interleave with another write), and hands kmock the exact object to
    store. So `request.data` of a recorded write is what was stored, as a JSON patch that
    replaces the whole object; `request.body` keeps the bytes the client sent.
    """

    test_failure_status: int = 422
    """The answer to a JSON patch whose `test` op fails: 422, as kube-apiserver and kopf
    (which retries on it) have it; 409 if a test wants conflicts to look alike."""

    _versions: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _last_version: int = attrs.field(default=0, init=False)
    _write_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for name, (kind, namespaced) in CORE_RESOURCES.items():
            self.declare(name, kind, namespaced=namespaced)

    def declare(self, resource: str, kind: str, *, namespaced: bool, status: bool = False) -> None:
        """Serve `resource` ("group/version/plural", "v1/plural" for the core group)."""
        self.resources[resource] = kmock.ResourceInfo(
            kind=kind,
            namespaced=namespaced,
            verbs=set(VERBS),
            subresources={"status"} if status else set(),
        )

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if len(self._requests) > KEEP_REQUESTS:
            del self._requests[: -KEEP_REQUESTS // 2]
        if request.resource is None or request.action not in WRITES:
            return await super()._handle(request)
        async with self._write_lock:
            if request.action == kmock.action.CREATE:
                _replace_data(request, self._created(request))
            elif (stored := self._stored(request)) is None:
                pass  # kmock answers 404
            elif request.action == kmock.action.DELETE:
                self._deleting(request, stored)
            elif (result := self._patched(request, copy.deepcopy(dict(stored.raw)))) is None:
                # A no-op patch: kube-apiserver writes nothing and sends no watch event.
                return await kmock.RawHandler._handle(self, request)
            else:
                _replace_data(request, [{"op": "replace", "path": "", "value": result}])
            response = await super()._handle(request)
        if request.action == kmock.action.CREATE and response.status == 200:
            response.set_status(201)
        return response

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        payload = cast(Json, await super()._serve_list(request))
        payload["metadata"]["resourceVersion"] = str(self._last_version)
        return payload

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[kmock.Payload]:
        """kmock's watch takes its snapshot of the objects, streams it, and only then
        listens for changes: a write in between is lost (kopf then waits forever for the
        event of its own patch); and it ignores `resourceVersion`, so a list-then-watch
        client (kopf) gets every object twice, the second time stale. Here the snapshot
        and the start of listening are one atomic step, and a watch from a
        resourceVersion skips the objects that have not changed since (it cannot replay
        a deletion made between the list and the watch: kmock keeps no event log)."""
        yield b""  # send the headers now, as kmock does
        assert request.resource is not None
        bus = self._buses[request.resource]
        async with self._lock:
            marker = await bus.mark()
            objects = [
                dict(obj.raw)
                for (resource, namespace, name), obj in self.objects.items()
                if resource == request.resource
                and not obj.deleted
                and _selects(request, namespace, name)
            ]
        try:
            since = request.params.get("resourceVersion", "")
            since_version = int(since) if since.isdigit() else 0
            for obj in objects:
                version = str(obj.get("metadata", {}).get("resourceVersion", ""))
                if not version.isdigit() or int(version) > since_version:
                    yield {"type": "ADDED" if not since_version else "MODIFIED", "object": obj}
            async for event in bus.stream(since=marker):
                meta = event.get("object", {}).get("metadata", {})
                if _selects(request, meta.get("namespace"), meta.get("name")):
                    yield event
        finally:
            await bus.unmark(marker)

    def _next_version(self) -> str:
        self._last_version = next(self._versions)
        return str(self._last_version)

    def _has_status(self, request: kmock.Request) -> bool:
        resource = request.resource
        if resource is None or resource not in self.resources:
            return False
        return "status" in self.resources[resource].subresources

    def _stored(self, request: kmock.Request) -> kmock.Object | None:
        if request.resource is None or request.name is None:
            return None
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return self.objects[key]

    def _created(self, request: kmock.Request) -> Json:
        if not isinstance(request.data, dict):
            raise BadRequest(message="the body must be a JSON object")
        body = copy.deepcopy(request.data)
        resource = request.resource
        if resource is not None and resource in self.resources:  # the server knows them
            group = f"{resource.group}/" if resource.group else ""
            body.setdefault("apiVersion", f"{group}{resource.version}")
            if kind := self.resources[resource].kind:
                body.setdefault("kind", kind)
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
            )
        if request.namespace:
            meta.setdefault("namespace", request.namespace)
        for field in (*SERVER_METADATA, "generation", "resourceVersion"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["generation"] = 1
        meta["resourceVersion"] = self._next_version()
        if self._has_status(request):
            body.pop("status", None)  # ignored on create, as for any status subresource
        return body

    def _patched(self, request: kmock.Request, before: Json) -> Json | None:
        """The object after the patch, or None if it does not change."""
        old_meta = before.setdefault("metadata", {})
        with_status = self._has_status(request)
        try:
            if isinstance(request.data, list):  # RFC 6902 JSON patch
                after: Json = jsonpatch.apply_patch(before, request.data)
            elif isinstance(request.data, dict):  # RFC 7386 merge patch
                after = _merged(copy.deepcopy(before), request.data)
            else:
                raise BadRequest(message="the patch must be a JSON object or array")
        except jsonpatch.JsonPatchTestFailed as exc:
            if self.test_failure_status == 409:
                raise Conflict(message=str(exc), details=_details(request)) from exc
            raise Invalid(status=self.test_failure_status, message=str(exc)) from exc
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise Invalid(message=str(exc)) from exc
        if not isinstance(after.get("metadata"), dict):
            raise Invalid(message="metadata must be an object")
        new_meta = after["metadata"]
        # A resourceVersion left in the patched object is a precondition.
        wanted = new_meta.get("resourceVersion")
        if wanted is not None and wanted != old_meta.get("resourceVersion"):
            raise Conflict(details=_details(request))
        if request.subresource == "status":  # only status changes
            result = copy.deepcopy(before)
            if "status" in after:
                result["status"] = after["status"]
            else:
                result.pop("status", None)
        else:
            result = after
            for field in (*SERVER_METADATA, "name", "namespace", "generation"):
                _keep(new_meta, old_meta, field)
            if with_status:
                _keep(result, before, "status")
            if _generational(result, with_status) != _generational(before, with_status):
                new_meta["generation"] = old_meta.get("generation", 1) + 1
        _keep(result["metadata"], old_meta, "resourceVersion")
        if result == before:
            return None
        result["metadata"]["resourceVersion"] = self._next_version()
        return result

    def _deleting(self, request: kmock.Request, stored: kmock.Object) -> None:
        """Check a DELETE's preconditions, and version the change kmock then makes."""
        meta = stored.raw.get("metadata", {})
        options = request.data if isinstance(request.data, dict) else {}
        preconditions = options.get("preconditions") or {}
        for field in ("resourceVersion", "uid"):
            if preconditions.get(field) not in (None, meta.get(field)):
                raise Conflict(details=_details(request))
        if meta.get("deletionTimestamp"):
            return  # already deleting: nothing changes
        changes: Json = {"resourceVersion": self._next_version()}
        if meta.get("finalizers"):  # kmock now sets deletionTimestamp
            changes["generation"] = meta.get("generation", 1) + 1
            changes["deletionGracePeriodSeconds"] = 0
        stored.patch({"metadata": changes})


def _replace_data(request: kmock.Request, data: Any) -> None:
    # kmock matches its reactions to the very request object it recorded: a copy made
    # with attrs.evolve() would match none, so the parsed body is replaced in place.
    object.__setattr__(request, "data", data)


def _merged(target: Json, patch: Json) -> Json:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        elif isinstance(value, dict):
            result[key] = _merged({}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _selects(request: kmock.Request, namespace: str | None, name: str | None) -> bool:
    """Whether a watch request covers an object: a cluster-wide watch covers all."""
    return request.namespace in (None, namespace) and request.name in (None, name)


def _keep(new: Json, old: Json, key: str) -> None:
    if key in old:
        new[key] = copy.deepcopy(old[key])
    else:
        new.pop(key, None)


def _generational(body: Json, with_status: bool) -> Json:
    """What metadata.generation of a custom resource counts changes of: all but
    metadata, and but status if status is a subresource."""
    ignored = ("metadata", "status") if with_status else ("metadata",)
    return {key: value for key, value in body.items() if key not in ignored}


def _details(request: kmock.Request) -> Json:
    resource = request.resource
    group = resource.group if resource is not None else ""
    kind = resource.plural if resource is not None else ""
    return {"name": request.name, "group": group, "kind": kind}


class EmulatedCluster:
    """The emulator (a FaithfulEmulator, or a test's subclass of it) served on loopback
    from a background thread, with a sync client."""

    def __init__(self, emulator: FaithfulEmulator | None = None) -> None:
        self.emulator = emulator if emulator is not None else FaithfulEmulator()
        for name, (kind, namespaced, status) in RESOURCES.items():
            self.emulator.declare(name, kind, namespaced=namespaced, status=status)
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> EmulatedCluster:
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


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Call `predicate` until it returns something truthy (blocking the thread between
    calls); return that, or fail the caller after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(0.05)


@contextmanager
def running_emulated_cluster(
    emulator: FaithfulEmulator | None = None,
) -> Iterator[EmulatedCluster]:
    cluster = EmulatedCluster(emulator).start()
    try:
        yield cluster
    finally:
        cluster.stop()
