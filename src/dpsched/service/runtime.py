"""One running service, as its handlers reach it (the `ServiceRuntime` dependency), and the
one way a handler hands work to the writer.

A handler parses its input, then awaits the writer once: `run` builds a job from a plain
function (`operations`, `queries`) and its arguments; on the writer the job first
authenticates the caller (`auth.authenticate`, against committed state), then applies
the function. A round asked for (`round_now`) and the audit (which reads the journal
off the writer) authenticate the same way.

Authentication has to come first even though it runs on the writer, after the handler
has checked its input: `parsing` holds back a refusal of the input until the caller is
authenticated, so a request with an unknown token is 401 whatever its body says.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Concatenate, ParamSpec, TypeVar

from fastapi import Depends, Request

from dpsched.engine.durable import Context, DurableEngine
from dpsched.errors import InputError
from dpsched.service.auth import Caller, Credentials, authenticate
from dpsched.service.books import Books, Call
from dpsched.service.errors import ApiError
from dpsched.service.metrics import ServiceMetrics
from dpsched.service.waits import Changes
from dpsched.service.writer import RoundReport, UnavailableError, Writer

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Runtime:
    """What `create_app` built for one app: the handlers' way to the writer."""

    books: Books
    writer: Writer
    changes: Changes
    metrics: ServiceMetrics
    admin_sha256: str
    """SHA-256 of the admin token, fixed at start."""

    async def run(
        self,
        who: Credentials,
        operation: Callable[Concatenate[Call, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`operation(call, *args, **kwargs)` on the writer, for the caller `who` proves."""

        def job(_durable: DurableEngine, now: float) -> T:
            return operation(Call(self.books, now, self._caller(who)), *args, **kwargs)

        return await _committed(self.writer.submit_async(job))

    async def authenticate(self, who: Credentials) -> Caller:
        """Only authenticate, on the writer (for work done elsewhere, such as the audit)."""
        return await _committed(self.writer.submit_async(lambda _d, _now: self._caller(who)))

    async def round_now(self, who: Credentials) -> RoundReport:
        """A scheduling round now, asked for by the caller `who` proves."""

        def asker(_durable: DurableEngine, _now: float) -> Context:
            return self._caller(who).context()

        return await _committed(self.writer.round_now(asker))

    @asynccontextmanager
    async def parsing(self, who: Credentials) -> AsyncIterator[None]:
        """Around a handler's checks of its input: a refusal is raised once the caller
        is authenticated (if authentication refuses, that refusal is raised instead)."""
        try:
            yield
        except (ApiError, InputError):
            await self.authenticate(who)
            raise

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The app's lifespan: the writer runs, long polls are woken on this loop."""
        self.changes.loop = asyncio.get_running_loop()
        # Everything alive now (modules, the recovered state) lives as long as the
        # process: exempt it from the cyclic collector, whose full passes over it
        # otherwise stall every request for tens of milliseconds.
        gc.collect()
        gc.freeze()
        self.writer.start()
        try:
            yield
        finally:
            self.writer.stop()
            self.books.durable.journal.close()

    def _caller(self, who: Credentials) -> Caller:
        return authenticate(self.books.state, self.admin_sha256, who)


async def _committed(answer: Awaitable[T]) -> T:
    """The writer's answer; a batch the journal could not commit is 503 (retry)."""
    try:
        return await answer
    except UnavailableError as exc:
        raise ApiError(503, "journal", str(exc)) from None


async def _runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime), "create_app sets app.state.runtime"
    return runtime


ServiceRuntime = Annotated[Runtime, Depends(_runtime)]
