"""Prometheus metrics: budget per block and order, claims by state, requests, latencies.

The ledger's numbers are read through the writer at scrape time, so a scrape shows
committed state, like every other read. Requests are counted and timed by the `Observe`
middleware; rounds by the writer, which runs them all.
"""

from __future__ import annotations

import time as wallclock
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from dpsched.core import ClaimState
from dpsched.engine.durable import DurableEngine
from dpsched.service.writer import RoundReport, Writer

PARTS = ("capacity", "locked", "unlocked", "reserved", "allocated", "consumed")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

SCRAPE_TIMEOUT_S = 30.0


class LedgerCollector(Collector):
    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = self._writer.submit(_figures).result(timeout=SCRAPE_TIMEOUT_S)
        blocks, labels, parts, spent, states = figures
        budget = GaugeMetricFamily(
            "dpsched_block_budget",
            "Budget of a block at an RDP order (or epsilon), by part: capacity = locked + "
            "unlocked + reserved + allocated + consumed.",
            labels=["block", "order", "part"],
        )
        for part, matrix in parts.items():
            for block, row in zip(blocks, matrix, strict=True):
                for label, value in zip(labels, row, strict=True):
                    budget.add_metric([block, label, part], value)
        yield budget
        epsilon = GaugeMetricFamily(
            "dpsched_block_spent_epsilon",
            "(epsilon, delta)-DP guarantee a block has granted (allocated or consumed).",
            labels=["block"],
        )
        for block, value in zip(blocks, spent, strict=True):
            epsilon.add_metric([block], value)
        yield epsilon
        claims = GaugeMetricFamily("dpsched_claims", "Claims by state.", labels=["state"])
        for state in ClaimState:
            claims.add_metric([state.value], states.get(state.value, 0))
        yield claims


def _figures(durable: DurableEngine, _now: float) -> tuple[Any, ...]:
    ledger = durable.engine.ledger
    blocks = [b.id for b in ledger.blocks]
    labels = ledger.accounting.labels
    parts = {part: getattr(ledger.budget, part).tolist() for part in PARTS}
    spent = [ledger.spent_epsilon(b) for b in blocks]
    states = Tally(claim.state.value for claim in ledger.claims)
    return blocks, labels, parts, spent, states


class ServiceMetrics:
    """One registry per app, so that several apps (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dpsched_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "dpsched_request_seconds",
            "HTTP request latency by route and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.round_seconds = Histogram(
            "dpsched_round_seconds",
            "Scheduling round latency.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "dpsched_commit_seconds",
            "Journal commit latency (one transaction per batch of requests).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.granted = Counter(
            "dpsched_granted_total", "Claims granted by scheduling rounds.", registry=self.registry
        )
        self.forgotten = Counter(
            "dpsched_claims_forgotten_total",
            "Finished claims moved from memory to the journal's archive after the retention.",
            registry=self.registry,
        )

    def watch(self, writer: Writer) -> None:
        """Report the ledger's figures too, read through this writer at each scrape."""
        self.registry.register(LedgerCollector(writer))

    def observe_round(self, report: RoundReport) -> None:
        """After each committed round (the writer's `on_round`)."""
        self.round_seconds.observe(report.seconds)
        self.granted.inc(len(report.outcome.granted))
        self.forgotten.inc(report.forgotten)


class Observe:
    """Counts and times every request by route template (pure ASGI: no per-request task;
    the labelled metric children are looked up once per route, method and status)."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = wallclock.perf_counter()
        status = [500]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("method", "")
            key = (path, method, status[0])
            counter = self._counters.get(key)
            if counter is None:
                counter = self.metrics.requests.labels(path, method, str(status[0]))
                self._counters[key] = counter
            counter.inc()
            timer = self._timers.get(key[:2])
            if timer is None:
                timer = self.metrics.request_seconds.labels(path, method)
                self._timers[key[:2]] = timer
            timer.observe(wallclock.perf_counter() - start)
