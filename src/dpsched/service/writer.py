"""The single writer: every request's work runs on one thread, in batches committed once.

Requests hand the writer a function of the durable engine and the current time and
wait for its result. The writer takes whatever has queued up (up to `max_batch`),
runs each function in arrival order, commits everything they changed in one
transaction (group commit), and only then releases their results: no answer ever
reflects an operation whose commit has not completed, and if the commit fails every
request of the batch gets the error (the engine rebuilds its state from the journal).
Reads go through the writer too, so they see committed state only; so does
authentication, which reads the tenants' tokens.

Scheduling rounds run here too, in one place (`_run_round`): every `period` seconds,
right after a batch that added a block, and when a request asks for one (`round_now`,
run in its turn among the requests). `after_round` (the front end's housekeeping, such
as forgetting finished claims) runs with the round and commits with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time as wallclock
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from dpsched.engine.durable import Context, DurableEngine
from dpsched.engine.engine import RoundOutcome

T = TypeVar("T")
Job = Callable[[DurableEngine, float], Any]
Waiter = Future[Any] | asyncio.Future[Any]
"""Who waits for a job: a thread (concurrent future) or a coroutine (asyncio future)."""
Result = tuple[Waiter, Any, BaseException | None]
log = logging.getLogger("dpsched.service")


class UnavailableError(Exception):
    """The journal could not commit: nothing of the batch happened."""


@dataclass(frozen=True)
class RoundReport:
    """What a committed round did, and how long it took with its housekeeping."""

    outcome: RoundOutcome
    seconds: float
    forgotten: int
    """Finished claims `after_round` moved out of memory."""


@dataclass(frozen=True)
class _RoundAsked:
    """A round a request asked for; `asker` names who asks, on the writer (or refuses)."""

    asker: Callable[[DurableEngine, float], Context]
    waiter: asyncio.Future[RoundReport]


class Writer:
    def __init__(
        self,
        durable: DurableEngine,
        period: float,
        *,
        max_batch: int = 512,
        on_commit: Callable[[], None] | None = None,
        on_round: Callable[[RoundReport], None] | None = None,
        on_commit_time: Callable[[float], None] | None = None,
        after_round: Callable[[float], int] | None = None,
        clock: Callable[[], float] = wallclock.time,
    ) -> None:
        self.durable = durable
        self.period = period
        self.max_batch = max_batch
        self._on_commit = on_commit
        self._on_round = on_round
        self._on_commit_time = on_commit_time
        self._after_round = after_round
        self._clock = clock
        self._queue: queue.SimpleQueue[tuple[Job, Waiter] | _RoundAsked | None]
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="dpsched-writer", daemon=True)
        self._stopping = False
        self._next_round = 0.0
        self._now = 0.0

    # ----------------------------------------------------------------- control
    def start(self) -> None:
        self._next_round = wallclock.monotonic() + self.period
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._queue.put(None)
        self._thread.join(timeout=30)

    def submit(self, job: Callable[[DurableEngine, float], T]) -> Future[T]:
        """Run `job` on the writer; for a thread to wait on."""
        future: Future[T] = Future()
        self._queue.put((job, future))
        return future

    def submit_async(self, job: Callable[[DurableEngine, float], T]) -> asyncio.Future[T]:
        """Run `job` on the writer; for a coroutine to await. The answers of a whole
        batch reach the event loop in one wake-up, not one per request."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((job, future))
        return future

    def round_now(
        self, asker: Callable[[DurableEngine, float], Context]
    ) -> asyncio.Future[RoundReport]:
        """Run a round after the jobs queued before this call, for a coroutine to await.
        `asker` runs first, on the writer, and names who asks (the journal's rows say
        so); if it raises, no round runs and the error is the answer."""
        future: asyncio.Future[RoundReport] = asyncio.get_running_loop().create_future()
        self._queue.put(_RoundAsked(asker, future))
        return future

    # ----------------------------------------------------------------- running
    def now(self) -> float:
        """Wall-clock seconds, never going backwards."""
        self._now = max(self._now, self._clock())
        return self._now

    def _run(self) -> None:
        while not self._stopping:
            batch, asked = self._take()
            added_block = self._run_batch(batch) if batch else False
            if asked is not None:
                self._answer(asked)
            if added_block or wallclock.monotonic() >= self._next_round:
                self._next_round = wallclock.monotonic() + self.period
                with contextlib.suppress(Exception):  # logged; the next round tries again
                    self._run_round(Context(actor="scheduler"))

    def _take(self) -> tuple[list[tuple[Job, Waiter]], _RoundAsked | None]:
        """The next batch: what has queued up (waiting for it until a round is due), up
        to `max_batch`, and ending at a round asked for, which runs right after it."""
        batch: list[tuple[Job, Waiter]] = []
        timeout = max(self._next_round - wallclock.monotonic(), 0.0)
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return batch, None
        while True:
            if isinstance(item, _RoundAsked):
                return batch, item
            if item is not None:
                batch.append(item)
            if len(batch) >= self.max_batch:
                return batch, None
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, None

    def _run_batch(self, batch: list[tuple[Job, Waiter]]) -> bool:
        """Run, commit and answer a batch; whether it added a block."""
        now = self.now()
        blocks = len(self.durable.engine.ledger.blocks)
        results: list[Result] = []
        for job, waiter in batch:
            if isinstance(waiter, Future) and not waiter.set_running_or_notify_cancel():
                continue
            try:
                results.append((waiter, job(self.durable, now), None))
            except Exception as exc:  # the job's own error, for its request only
                results.append((waiter, None, exc))
        added_block = len(self.durable.engine.ledger.blocks) > blocks
        if not self._commit():
            failed = UnavailableError("the journal could not commit; retry")
            results = [(waiter, None, failed) for waiter, _, _ in results]
        _deliver(results)
        if self._on_commit is not None:
            self._on_commit()
        return added_block

    def _answer(self, asked: _RoundAsked) -> None:
        try:
            report = self._run_round(asked.asker(self.durable, self.now()))
        except Exception as exc:
            _deliver([(asked.waiter, None, exc)])
        else:
            _deliver([(asked.waiter, report, None)])

    def _run_round(self, context: Context) -> RoundReport:
        """A round, its housekeeping and its metrics, committed together: whether it is
        periodic or asked for, it runs here. Raises if it fails or cannot commit."""
        now = self.now()
        start = wallclock.perf_counter()
        try:
            with self.durable.acting(context, now) as engine:
                outcome = engine.round(now)
            forgotten = 0 if self._after_round is None else self._after_round(now)
        except Exception:
            log.exception("scheduling round failed")
            self._commit()
            raise
        report = RoundReport(outcome, wallclock.perf_counter() - start, forgotten)
        if not self._commit():
            raise UnavailableError("the journal could not commit the round; retry")
        if self._on_round is not None:
            self._on_round(report)
        if self._on_commit is not None:
            self._on_commit()
        return report

    def _commit(self) -> bool:
        if not self.durable.staged:
            return True
        start = wallclock.perf_counter()
        try:
            self.durable.commit()
        except Exception:
            log.exception("journal commit failed; state reloaded from the journal")
            return False
        if self._on_commit_time is not None:
            self._on_commit_time(wallclock.perf_counter() - start)
        return True


def _deliver(results: list[Result]) -> None:
    """Hand each waiter its result: threads at once, each event loop in one wake-up."""
    loops: dict[asyncio.AbstractEventLoop, list[Result]] = {}
    for item in results:
        waiter = item[0]
        if isinstance(waiter, Future):
            _settle([item])
        else:
            loops.setdefault(waiter.get_loop(), []).append(item)
    for loop, items in loops.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            continue


def _settle(items: list[Result]) -> None:
    """Hand each waiter its job's value or error (in the waiter's own thread or loop)."""
    for waiter, value, error in items:
        if waiter.cancelled():
            continue
        if error is None:
            waiter.set_result(value)
        else:
            waiter.set_exception(error)
