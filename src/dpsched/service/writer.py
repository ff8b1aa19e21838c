"""The single writer: every request's work runs on one thread, in batches committed once.

Requests hand the writer a function of the durable engine and the current time and
wait for its result. The writer takes whatever has queued up (up to `max_batch`),
runs each function in arrival order, commits everything they changed in one
transaction (group commit), and only then releases their results: no answer ever
reflects an operation whose commit has not completed, and if the commit fails every
request of the batch gets the error (the engine rebuilds its state from the journal).
Reads go through the writer too, so they see committed state only.

Between batches the writer runs a scheduling round every `period` seconds, and right
after a batch that added a block; `after_round` (the front end's housekeeping, such as
forgetting finished claims) runs with the round and commits with it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time as wallclock
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from dpsched.engine.durable import Context, DurableEngine
from dpsched.engine.engine import RoundOutcome

Job = Callable[[DurableEngine, float], Any]
Waiter = Future[Any] | asyncio.Future[Any]
"""Who waits for a job: a thread (concurrent future) or a coroutine (asyncio future)."""
log = logging.getLogger("dpsched.service")


class UnavailableError(Exception):
    """The journal could not commit: nothing of the batch happened."""


class Writer:
    def __init__(
        self,
        durable: DurableEngine,
        period: float,
        *,
        max_batch: int = 512,
        on_commit: Callable[[], None] | None = None,
        on_round: Callable[[RoundOutcome, float], None] | None = None,
        on_commit_time: Callable[[float], None] | None = None,
        after_round: Job | None = None,
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
        self._queue: queue.SimpleQueue[tuple[Job, Waiter] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="dpsched-writer", daemon=True)
        self._stopping = False
        self._round_due = False
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

    def submit(self, job: Job) -> Future[Any]:
        """Run `job` on the writer; for a thread to wait on."""
        future: Future[Any] = Future()
        self._queue.put((job, future))
        return future

    def submit_async(self, job: Job) -> asyncio.Future[Any]:
        """Run `job` on the writer; for a coroutine to await. The answers of a whole
        batch reach the event loop in one wake-up, not one per request."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put((job, future))
        return future

    def round_soon(self) -> None:
        """Ask for a round right after the current batch (e.g. a block was added)."""
        self._round_due = True

    # ----------------------------------------------------------------- running
    def now(self) -> float:
        """Wall-clock seconds, never going backwards."""
        self._now = max(self._now, self._clock())
        return self._now

    def _run(self) -> None:
        while not self._stopping:
            timeout = max(self._next_round - wallclock.monotonic(), 0.0)
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                first = None
            batch: list[tuple[Job, Waiter]] = []
            if first is not None:
                batch.append(first)
                while len(batch) < self.max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        batch.append(item)
            if batch:
                self._run_batch(batch)
            if self._round_due or wallclock.monotonic() >= self._next_round:
                self._round_due = False
                self._next_round = wallclock.monotonic() + self.period
                self._run_round()

    def _run_batch(self, batch: list[tuple[Job, Waiter]]) -> None:
        now = self.now()
        results: list[tuple[Waiter, Any, BaseException | None]] = []
        for job, waiter in batch:
            if isinstance(waiter, Future) and not waiter.set_running_or_notify_cancel():
                continue
            try:
                results.append((waiter, job(self.durable, now), None))
            except Exception as exc:  # the job's own error, for its request only
                results.append((waiter, None, exc))
        if not self._commit():
            failed = UnavailableError("the journal could not commit; retry")
            results = [(waiter, None, failed) for waiter, _, _ in results]
        loops: dict[asyncio.AbstractEventLoop, list[tuple[Waiter, Any, BaseException | None]]]
        loops = {}
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
        if self._on_commit is not None:
            self._on_commit()

    def _run_round(self) -> None:
        now = self.now()
        start = wallclock.perf_counter()
        try:
            with self.durable.acting(Context(actor="scheduler"), now) as engine:
                outcome = engine.round(now)
            if self._after_round is not None:
                self._after_round(self.durable, now)
        except Exception:
            log.exception("scheduling round failed")
            self._commit()
            return
        seconds = wallclock.perf_counter() - start
        if self._commit():
            if self._on_round is not None:
                self._on_round(outcome, seconds)
            if self._on_commit is not None:
                self._on_commit()

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


def _settle(items: list[tuple[Waiter, Any, BaseException | None]]) -> None:
    """Hand each waiter its job's value or error (in the waiter's own thread or loop)."""
    for waiter, value, error in items:
        if waiter.cancelled():
            continue
        if error is None:
            waiter.set_result(value)
        else:
            waiter.set_exception(error)
