"""A load of concurrent clients on a real service, keeping their own log of what the service
acknowledged: the ground truth the concurrency and crash tests check the service against
(never the server's word)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from dpsched.client import Client, ServiceError

BLOCKS = [f"blk{j}" for j in range(4)]


@dataclass
class Acked:
    """What one client saw acknowledged (2xx) for each of its claims."""

    submitted: dict[str, dict[str, Any]] = field(default_factory=dict)
    """claim id -> body"""
    consumed: dict[str, dict[str, float]] = field(default_factory=dict)
    """claim id -> request id -> fraction"""
    released: set[str] = field(default_factory=set)
    withdrawn: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    """Operations that failed without an answer after every retry: their effect is unknown."""
    ops: int = 0


def run_clients(
    url: str,
    tokens: list[str],
    admin: str,
    *,
    operations: int,
    seed: int,
    stop: threading.Event | None = None,
    retries: int = 8,
    logs: list[Acked] | None = None,
) -> list[Acked]:
    """One thread per token, each doing `operations` random operations (submit, consume,
    release, withdraw, schedule), retrying failures with the same request ids. Pass
    `logs` (one per token) to watch progress while they run."""
    logs = logs if logs is not None else [Acked() for _ in tokens]
    threads = [
        threading.Thread(
            target=_client_loop,
            args=(url, token, admin, logs[i]),
            kwargs={
                "operations": operations,
                "seed": seed * 1000 + i,
                "stop": stop,
                "retries": retries,
            },
        )
        for i, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return logs


def _client_loop(
    url: str,
    token: str,
    admin: str,
    log: Acked,
    *,
    operations: int,
    seed: int,
    stop: threading.Event | None,
    retries: int,
) -> None:
    rng = random.Random(seed)
    with (
        Client(url, token, retries=retries, backoff=0.25) as client,
        Client(url, admin, retries=retries, backoff=0.25) as boss,
    ):
        for counter in range(1, operations + 1):
            if stop is not None and stop.is_set():
                return
            choice = rng.random()
            mine = list(log.submitted)
            if choice < 0.4 or not mine:
                claim_id = f"c{seed}-{counter}"
                blocks = rng.sample(BLOCKS, rng.choice([1, 2]))
                body = {
                    "id": claim_id,
                    "blocks": blocks,
                    "demand": {"epsilon": round(rng.uniform(0.01, 0.15), 3)},
                }
                if _acked(log, lambda b=body: client.submit(b)) is not None:
                    log.submitted[claim_id] = body
            elif choice < 0.65:
                claim_id = rng.choice(mine)
                fraction = rng.choice([0.25, 0.5])
                request = f"use-{seed}-{counter}"
                done = _acked(
                    log,
                    lambda c=claim_id, f=fraction, r=request: client.consume(c, f, request_id=r),
                    key=(claim_id, request),
                )
                if done is not None:
                    log.consumed.setdefault(claim_id, {})[request] = fraction
            elif choice < 0.75:
                claim_id = rng.choice(mine)
                request = f"rel-{seed}-{counter}"
                if _acked(log, lambda c=claim_id, r=request: client.release(c, r)) is not None:
                    log.released.add(claim_id)
            elif choice < 0.85:
                claim_id = rng.choice(mine)
                request = f"wd-{seed}-{counter}"
                if _acked(log, lambda c=claim_id, r=request: client.withdraw(c, r)) is not None:
                    log.withdrawn.add(claim_id)
            else:
                _acked(log, boss.schedule)


def _acked(log: Acked, call: Callable[[], Any], key: tuple[str, str] | None = None) -> Any | None:
    """The answer if the service acknowledged the call; None if it refused it (4xx: a
    legitimate outcome, e.g. consuming a claim that is still pending); an operation that
    never got an answer is recorded as unknown."""
    log.ops += 1
    try:
        return call()
    except ServiceError:
        return None
    except httpx.HTTPError:
        if key is not None:
            log.unknown.add(key[0])
        return None


def wait_healthy(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the service did not come back")
