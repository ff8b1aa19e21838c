"""Budget-service benchmarks: `python benchmarks/service.py` prints one table.

On loopback, a real `dpsched serve` and 16 concurrent clients (threads, keep-alive
connections) on 100 blocks doing mixed submit / consume / release for a fixed time:
acknowledged (durable) operations per second and p99 latency, on SQLite and on
PostgreSQL (started from `pgserver`), printed beside the raw durable-commit rate of
the same database (one-row transactions in a plain loop) so the ratio is visible.
In-process: one scheduling round with 100,000 pending claims on 100 blocks; a cold
restart (`DurableEngine.open`) on a journal of 1,000,000 operations; and the peak RSS of
a server holding 100,000 claims. Targets: >= 2,000 ops/s, p99 <= 50 ms, round <=
200 ms, restart <= 10 s, RSS <= 1 GB. Exits 1 if one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pgserver
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.service_process import Service, new_database  # noqa: E402

from dpsched.budget import Accounting  # noqa: E402
from dpsched.core import AllUnlocked, BatchBuilder, BlockSpec, Ledger  # noqa: E402
from dpsched.engine import Engine  # noqa: E402
from dpsched.engine.durable import Context, DurableEngine  # noqa: E402
from dpsched.engine.journal import Journal  # noqa: E402
from dpsched.service.config import ServiceConfig  # noqa: E402
from dpsched.service.state import ServiceState, ledger_id  # noqa: E402

CLIENTS = 16
BLOCKS = 100


def load(service: Service, seconds: float) -> tuple[float, float, int]:
    """(acknowledged ops/s, p99 latency in s, ops) under 16 concurrent clients: 16
    keep-alive connections driven by one asyncio loop speaking plain HTTP/1.1, so that
    the load generator takes a small part of a core and the server the rest."""
    with service.admin() as admin:
        for j in range(BLOCKS):
            admin.post("/v1/blocks", json={"id": f"b{j}", "epsilon": 1000, "delta": 1e-7})
        tokens = [
            admin.post("/v1/tenants", json={"name": f"bench{i}"}).json()["token"]
            for i in range(CLIENTS)
        ]
    latencies: list[float] = []
    began = time.perf_counter()
    asyncio.run(_clients(service.port, tokens, time.monotonic() + seconds, latencies))
    elapsed = time.perf_counter() - began
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan")
    return len(latencies) / elapsed, p99, len(latencies)


async def _clients(port: int, tokens: list[str], stop: float, latencies: list[float]) -> None:
    await asyncio.gather(*(_client(port, t, i, stop, latencies) for i, t in enumerate(tokens)))


async def _client(port: int, token: str, seed: int, stop: float, latencies: list[float]) -> None:
    """Mixed submit (50%), consume (35%) and release (15%) on this client's claims."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rng = random.Random(seed)
    mine: list[str] = []
    blocks = [f"b{j}" for j in range(BLOCKS)]
    n = 0

    async def call(path: str, body: dict[str, Any]) -> int:
        data = json.dumps(body).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        return status

    while time.monotonic() < stop:
        n += 1
        start = time.perf_counter()
        if not mine or rng.random() < 0.5:
            claim_id = f"c{n}"
            body = {
                "id": claim_id,
                "blocks": rng.sample(blocks, 2),
                "demand": {"rdp": [0.001] * 12},
            }
            status = await call("/v1/claims", body)
            mine.append(claim_id)
        elif rng.random() < 0.7:
            body = {"request_id": f"u{n}", "fraction": 0.5}
            status = await call(f"/v1/claims/{rng.choice(mine)}/consume", body)
        else:
            status = await call(f"/v1/claims/{mine.pop()}/release", {"request_id": f"r{n}"})
        if status < 500:
            latencies.append(time.perf_counter() - start)
    writer.close()


def raw_commit_rate(url: str, seconds: float = 3.0) -> float:
    """One-row durable transactions per second in a plain loop, same database and settings."""
    journal = Journal(url)  # its engine carries the SQLite durability pragmas
    engine = journal._engine
    table = sa.Table("bench_commits", sa.MetaData(), sa.Column("n", sa.Integer))
    table.create(engine, checkfirst=True)
    count, stop = 0, time.monotonic() + seconds
    while time.monotonic() < stop:
        with engine.begin() as connection:
            connection.execute(table.insert(), {"n": count})
        count += 1
    journal.close()
    return count / seconds


def pending_ledger(n_claims: int, seed: int = 0) -> Ledger:
    rng = np.random.default_rng(seed)
    ledger = Ledger(Accounting("rdp"))
    unlocking = AllUnlocked()
    for j in range(BLOCKS):
        unlocking.on_block_added(
            ledger, ledger.add_block(BlockSpec(id=f"b{j}", epsilon=10, delta=1e-7)), 0
        )
    builder = BatchBuilder(ledger)
    for i in range(n_claims):
        k = int(rng.integers(1, 4))
        blocks = sorted(rng.choice(BLOCKS, size=k, replace=False).tolist())
        builder.add_raw(
            {
                "id": f"c{i}",
                "blocks": [f"b{j}" for j in blocks],
                "demand": {
                    "rdp": (np.linspace(0.2, 3.0, 12) * rng.uniform(0.5, 2)).round(4).tolist()
                },
            }
        )
    ledger.submit_batch(builder.build())
    return ledger


def round_time(n_claims: int) -> tuple[float, int]:
    ledger = pending_ledger(n_claims)
    engine = Engine(ledger, AllUnlocked(), "dpack")
    start = time.perf_counter()
    outcome = engine.round(0.0)
    return time.perf_counter() - start, len(outcome.granted)


def restart_time(directory: Path, operations: int, forget: bool) -> tuple[float, int]:
    """Cold start on a journal of `operations` rows (claims submitted, granted, consumed);
    with `forget`, finished claims leave the state as they would after the retention."""
    url = f"sqlite:///{directory / f'restart-{forget}.db'}"
    Journal(url, check=False).upgrade()
    durable = DurableEngine.open(Journal(url), Accounting("basic"), AllUnlocked(), "fcfs")
    with durable.acting(Context(), 0.0) as engine:
        for j in range(BLOCKS):
            engine.add_block(BlockSpec(id=f"b{j}", epsilon=1e9), 0.0)
    durable.commit()
    i = 0
    while durable.journal.last_seq < operations:
        with durable.acting(Context(tenant="t"), float(i)) as engine:
            for _ in range(1000):
                claim_id = f"c{i}"
                engine.submit(
                    {"id": claim_id, "blocks": [f"b{i % BLOCKS}"], "demand": {"epsilon": 1.0}},
                    float(i),
                )
                engine.ledger.allocate(claim_id, request_id=f"a{i}", time=float(i))
                engine.consume(claim_id, request_id=f"u{i}", time=float(i))
                i += 1
            if forget:
                engine.forget_finished(float(i))
        durable.commit()
    rows = durable.journal.last_seq
    durable.journal.close()
    start = time.perf_counter()
    DurableEngine.open(Journal(url), Accounting("basic"), AllUnlocked(), "fcfs")
    return time.perf_counter() - start, rows


def server_rss(directory: Path, claims: int) -> float:
    """Peak RSS (MB) of a server that recovered a journal holding `claims` claims."""
    url = f"sqlite:///{directory / 'rss.db'}"
    Journal(url, check=False).upgrade()
    state = ServiceState()
    durable = DurableEngine.open(
        Journal(url), ServiceConfig().make_accounting(), AllUnlocked(), "dpack", state=state
    )
    ledger = pending_ledger(0)
    with durable.acting(Context(actor="admin"), 0.0) as engine:
        for block in ledger.blocks:
            engine.add_block(block, 0.0)
    durable.record("tenant_add", {"name": "bench", "token_sha256": "0" * 64}, Context(), 0.0)
    state.add_tenant("bench", "0" * 64)
    durable.commit()
    rng = np.random.default_rng(1)
    for start in range(0, claims, 5000):
        with durable.acting(Context(tenant="bench"), 1.0) as engine:
            for i in range(start, min(start + 5000, claims)):
                body = {
                    "id": f"c{i}",
                    "blocks": [f"b{int(rng.integers(BLOCKS))}"],
                    "demand": {"rdp": [5.0] * 12},
                }
                engine.submit({**body, "id": ledger_id("bench", f"c{i}")}, 1.0)
                durable.record(
                    "claim_body",
                    {"tenant": "bench", "id": f"c{i}", "body": body},
                    Context(tenant="bench"),
                    1.0,
                )
        durable.commit()
    durable.snapshot()
    durable.journal.close()
    service = Service(url, directory).start()
    with service.admin() as admin:
        admin.get("/v1/blocks")
    status = Path(f"/proc/{service.process.pid}/status").read_text()  # type: ignore[union-attr]
    peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    service.stop()
    return peak / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="load duration per database")
    parser.add_argument(
        "--quick", action="store_true", help="SQLite load only, smaller in-process cases"
    )
    args = parser.parse_args()
    table = Table(title="dpsched budget-service benchmarks")
    for column in ("case", "measured", "target", "ok"):
        table.add_column(column, justify="left" if column == "case" else "right")
    missed = 0

    def row(case: str, measured: str, target: str, ok: bool) -> None:
        nonlocal missed
        missed += not ok
        table.add_row(case, measured, target, "yes" if ok else "NO")

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        kinds = ["sqlite"] if args.quick else ["sqlite", "postgresql"]
        postgres = None
        server = None
        if "postgresql" in kinds:
            server = pgserver.get_server(str(directory / "pg"), cleanup_mode="delete")
            postgres = server.get_uri()
        for kind in kinds:
            url = new_database(kind, directory, postgres)
            config = directory / "bench.yaml"
            config.write_text("scheduler: {policy: fcfs, period: 0.5}\nretention: 1\n")
            service = Service(url, directory, config).start()
            try:
                rate, p99, ops = load(service, args.seconds)
                text = httpx.get(f"{service.url}/metrics").text
                forgotten = next(
                    float(line.split()[1])
                    for line in text.splitlines()
                    if line.startswith("dpsched_claims_forgotten_total ")
                )
            finally:
                service.stop()
            raw = raw_commit_rate(url)
            row(
                f"{kind}: acknowledged ops/s ({CLIENTS} clients, {ops} ops)",
                f"{rate:,.0f}",
                ">= 2,000",
                rate >= 2000,
            )
            row(f"{kind}: p99 latency", f"{p99 * 1000:.1f} ms", "<= 50 ms", p99 <= 0.05)
            row(
                f"{kind}: claims archived during the run (retention 1 s)",
                f"{forgotten:,.0f}",
                "",
                True,
            )
            row(
                f"{kind}: raw durable commits/s (one-row transactions)",
                f"{raw:,.0f}",
                f"ratio {rate / raw:.2f}",
                True,
            )
        if server is not None:
            server.cleanup()
        claims = 20_000 if args.quick else 100_000
        seconds, granted = round_time(claims)
        row(
            f"round, {claims:,} pending claims on {BLOCKS} blocks (dpack, {granted} granted)",
            f"{seconds * 1000:.0f} ms",
            "<= 200 ms",
            seconds <= 0.2,
        )
        operations = 100_000 if args.quick else 1_000_000
        for forget in (False, True):
            seconds, rows = restart_time(directory, operations, forget)
            kept = "finished claims forgotten" if forget else "every claim kept"
            row(
                f"cold restart, {rows:,} journaled operations ({kept})",
                f"{seconds:.2f} s",
                "<= 10 s",
                seconds <= 10,
            )
        peak = server_rss(directory, claims)
        row(
            f"server peak RSS with {claims:,} claims", f"{peak:.0f} MB", "<= 1,024 MB", peak <= 1024
        )
    Console(width=130).print(table)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
