"""Prometheus metrics: budget per block and order, claims by state, requests, latencies.

The ledger's numbers are read through the writer at scrape time, so a scrape shows
committed state, like every other read.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from dpsched.core import ClaimState, Ledger

PARTS = ("capacity", "locked", "unlocked", "reserved", "allocated", "consumed")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Read = Callable[[Callable[[Ledger], Any]], Any]
"""Runs a function of the ledger on the writer (committed state) and returns its value."""


class LedgerCollector(Collector):
    def __init__(self, read: Read) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        blocks, labels, parts, spent, states = self._read(_figures)
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


def _figures(ledger: Ledger) -> tuple[Any, ...]:
    blocks = [b.id for b in ledger.blocks]
    labels = ledger.accounting.labels
    parts = {part: getattr(ledger.budget, part).tolist() for part in PARTS}
    spent = [ledger.spent_epsilon(b) for b in blocks]
    states = Tally(claim.state.value for claim in ledger.claims)
    return blocks, labels, parts, spent, states


class ServiceMetrics:
    """One registry per app, so that several apps (tests) never share counters."""

    def __init__(self, read: Read) -> None:
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
        self.registry.register(LedgerCollector(read))
