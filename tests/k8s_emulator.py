"""Async test helpers around `dpsched.lab.emulator.FaithfulEmulator` (kmock's API server
made faithful): serve it in the test's event loop, talk to it, run kopf against it.

    async with serve_emulator() as cluster:        # loopback, random port
        cluster.emulator.declare("dpsched.io/v1/privacyclaims", "PrivacyClaim",
                                 namespaced=True, status=True)
        async with running_operator(registry, cluster.url):   # kopf, in its own thread
            await cluster.client.create("dpsched.io/v1", "privacyclaims", body, "ns")
            await eventually(lambda: ..., timeout=5)

kopf runs in a thread with its own event loop, so that its shutdown (which cancels every
task it did not start) cannot touch the emulator's or the test's tasks; the emulator runs
in the test's loop, so a test must not block that loop while kopf talks to it.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar, cast, overload

import aiohttp
import kmock
import kopf

from dpsched.lab.emulator import FaithfulEmulator

T = TypeVar("T")
Json = dict[str, Any]

# ------------------------------------------------------------------------------- client


class ApiError(Exception):
    """A non-2xx answer; `body` is the parsed Kubernetes Status (or the raw text)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def resource_path(
    api_version: str, plural: str, namespace: str | None = None, name: str | None = None
) -> str:
    """The URL path of a collection or an object, e.g. ("dpsched.io/v1", "privacyclaims")."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{scope}/{plural}" + (f"/{name}" if name else "")


class KubeClient:
    """A minimal asynchronous Kubernetes REST client (aiohttp) for the tests' own calls."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KubeClient:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        """Send `body` as JSON; answer the parsed JSON reply, or raise ApiError."""
        assert self._session is not None, "use the client as `async with`"
        data = None if body is None else aiohttp.JsonPayload(body, content_type=content_type)
        async with self._session.request(method, self.url + path, data=data) as reply:
            text = await reply.text()
            parsed: Any = text
            if reply.content_type == "application/json":
                parsed = await reply.json()
            if reply.status >= 300:
                raise ApiError(reply.status, parsed)
            return parsed

    async def create(
        self, api_version: str, plural: str, body: Json, namespace: str | None = None
    ) -> Json:
        body = {"apiVersion": api_version, **body}
        path = resource_path(api_version, plural, namespace)
        return cast(Json, await self.request("POST", path, body))

    async def get(
        self, api_version: str, plural: str, name: str, namespace: str | None = None
    ) -> Json | None:
        """The object, or None if there is none."""
        try:
            path = resource_path(api_version, plural, namespace, name)
            return cast(Json, await self.request("GET", path))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list_objects(
        self, api_version: str, plural: str, namespace: str | None = None
    ) -> list[Json]:
        reply = await self.request("GET", resource_path(api_version, plural, namespace))
        return list(reply["items"])

    async def patch(
        self,
        api_version: str,
        plural: str,
        name: str,
        patch: Json | list[Json],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Json:
        """A merge patch (a dict) or a JSON patch (a list of operations)."""
        path = resource_path(api_version, plural, namespace, name)
        if subresource:
            path += f"/{subresource}"
        kind = "json-patch+json" if isinstance(patch, list) else "merge-patch+json"
        return cast(Json, await self.request("PATCH", path, patch, f"application/{kind}"))

    async def delete(
        self, api_version: str, plural: str, name: str, namespace: str | None = None
    ) -> Json:
        path = resource_path(api_version, plural, namespace, name)
        return cast(Json, await self.request("DELETE", path))

    async def events(self, namespace: str | None = None) -> list[Json]:
        """Core v1 Events (kopf.info/warn/exception and handler outcomes land there)."""
        return await self.list_objects("v1", "events", namespace)


# ------------------------------------------------------------------------------ serving


@dataclass(frozen=True)
class ServedEmulator:
    """An emulator served in the test's own event loop: its URL and an async client."""

    emulator: FaithfulEmulator
    url: str
    client: KubeClient


@asynccontextmanager
async def serve_emulator(
    emulator: FaithfulEmulator | None = None, *, host: str = "127.0.0.1"
) -> AsyncIterator[ServedEmulator]:
    """Serve `emulator` (a new one by default) on a free loopback port in this loop."""
    emulator = emulator if emulator is not None else FaithfulEmulator()
    async with emulator, kmock.Server(emulator, host=host) as server:
        url = str(server.url).rstrip("/")
        async with KubeClient(url) as client:
            yield ServedEmulator(emulator, url, client)


@overload
async def eventually(
    predicate: Callable[[], Awaitable[T | None]],
    timeout: float = ...,
    *,
    interval: float = ...,
    what: str = ...,
) -> T: ...
@overload
async def eventually(
    predicate: Callable[[], T | None],
    timeout: float = ...,
    *,
    interval: float = ...,
    what: str = ...,
) -> T: ...
async def eventually(
    predicate: Callable[[], Any],
    timeout: float = 5.0,
    *,
    interval: float = 0.02,
    what: str = "",
) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy; return that.
    It sleeps between polls, so the emulator in the same loop keeps serving."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what or predicate}: last {result!r}"
            )
        await asyncio.sleep(interval)


# ----------------------------------------------------------------------------- operator

_server: contextvars.ContextVar[str] = contextvars.ContextVar("k8s_emulator_server")
_with_login: weakref.WeakSet[kopf.OperatorRegistry] = weakref.WeakSet()

Handlers = kopf.OperatorRegistry | ModuleType | str


def registry_of(handlers: Handlers) -> kopf.OperatorRegistry:
    """A registry as is; a module (or its dotted name, imported here) whose handlers were
    registered by bare `@kopf.on...` decorators: kopf's default registry."""
    if isinstance(handlers, kopf.OperatorRegistry):
        return handlers
    if isinstance(handlers, str):
        importlib.import_module(handlers)
    return kopf.get_default_registry()


def _add_login(registry: kopf.OperatorRegistry) -> None:
    """Log in to the server of the operator thread that asks (a context variable, so
    one registry serves any number of runs). A login handler of ours also stops kopf's
    fallback logins (kubeconfig, in-cluster) from ever reaching a real cluster."""
    if registry in _with_login:
        return

    @kopf.on.login(registry=registry, id="k8s-emulator-login")
    async def _login(**_: Any) -> kopf.ConnectionInfo | None:
        server = _server.get(None)
        if server is None:
            return None
        return kopf.ConnectionInfo(server=server, insecure=True, default_namespace="default")

    _with_login.add(registry)


def operator_settings() -> kopf.OperatorSettings:
    """kopf settings for tests: never SIGKILL the process (kopf's "ultimate exit" kills
    the thread it stops in, which is the whole process, 10 minutes after an unrequested
    stop), and retry watches quickly."""
    settings = kopf.OperatorSettings()
    settings.process.ultimate_exiting_timeout = None
    settings.watching.reconnect_backoff = 0.1
    return settings


class OperatorThread:
    """kopf.operator(standalone, cluster-wide) in a thread with its own event loop."""

    def __init__(
        self,
        handlers: Handlers,
        server: str,
        *,
        settings: kopf.OperatorSettings | None = None,
        memo: object | None = None,
    ) -> None:
        self.registry = registry_of(handlers)
        _add_login(self.registry)
        self.server = server
        self.settings = settings if settings is not None else operator_settings()
        self.memo = memo
        self.error: BaseException | None = None
        self.problems: list[logging.LogRecord] = []
        """kopf's log records of level WARNING and above while it ran."""
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kopf-operator", daemon=True)
        self._log = _Records(self.problems)

    def _run(self) -> None:
        _server.set(self.server)
        try:
            asyncio.run(
                kopf.operator(
                    registry=self.registry,
                    settings=self.settings,
                    memo=self.memo,
                    standalone=True,
                    clusterwide=True,
                    stop_flag=self._stop,
                    ready_flag=self._ready,
                )
            )
        except BaseException as exc:
            self.error = exc

    async def start(self, timeout: float = 10.0) -> None:
        """Start kopf and wait until its startup handlers have run (it then lists and
        watches, so objects created from now on, or before, are all seen)."""
        logging.getLogger("kopf").addHandler(self._log)
        self._thread.start()
        await eventually(
            lambda: self._ready.is_set() or not self._thread.is_alive(),
            timeout,
            what="kopf to start",
        )
        if not self._ready.is_set():
            raise RuntimeError(f"kopf stopped while starting: {self.error!r}") from self.error

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop kopf (its cleanup handlers run) and raise if it failed or hangs."""
        self._stop.set()
        if self._thread.ident is not None:
            await asyncio.to_thread(self._thread.join, timeout)
        logging.getLogger("kopf").removeHandler(self._log)
        if self._thread.is_alive():
            raise RuntimeError(f"kopf did not stop within {timeout:g} s")
        if self.error is not None and self._ready.is_set():
            raise RuntimeError(f"kopf failed: {self.error!r}") from self.error


class _Records(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@asynccontextmanager
async def running_operator(
    handlers: Handlers,
    server: str,
    *,
    settings: kopf.OperatorSettings | None = None,
    memo: object | None = None,
    timeout: float = 10.0,
) -> AsyncIterator[OperatorThread]:
    """Run kopf against `server` for the duration of the block (see OperatorThread)."""
    operator = OperatorThread(handlers, server, settings=settings, memo=memo)
    try:
        await operator.start(timeout)
        yield operator
    finally:
        await operator.stop(timeout)
