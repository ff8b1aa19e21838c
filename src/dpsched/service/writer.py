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
        self._queue: queue.SimpleQueue[tuple[Job, Future[Any]] | None] = queue.SimpleQueue()
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
        future: Future[Any] = Future()
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
            batch: list[tuple[Job, Future[Any]]] = []
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

    def _run_batch(self, batch: list[tuple[Job, Future[Any]]]) -> None:
        now = self.now()
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        for job, future in batch:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                results.append((future, job(self.durable, now), None))
            except Exception as exc:  # the job's own error, for its request only
                results.append((future, None, exc))
        if not self._commit():
            for future, _, _ in results:
                future.set_exception(UnavailableError("the journal could not commit; retry"))
            return
        for future, value, error in results:
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)
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
