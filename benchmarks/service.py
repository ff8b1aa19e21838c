"""Budget-service benchmarks: `python benchmarks/service.py` prints one table.

On loopback, a real `dpsched serve` and 16 concurrent clients (keep-alive connections
driven by one asyncio loop) on 100 blocks doing mixed submit / consume / release for a
fixed time: acknowledged operations (answered 2xx, so durable) per second and their p99
latency, on SQLite and on PostgreSQL (started from `pgserver`), printed beside the raw
durable-commit rate of the same database (one-row transactions in a plain loop) so the
ratio is visible. Every other answer is counted apart, by status: a refusal (e.g. 409, a
consume of a claim the scheduler has not granted yet) did no durable work.
In-process: one scheduling round with 100,000 pending claims on 100 blocks; a cold
restart (`DurableEngine.open`) on a journal of 1,000,000 operations; and the peak RSS of
a server holding 100,000 claims. Targets: >= 2,000 ops/s, p99 <= 50 ms, round <=
200 ms, restart <= 10 s, RSS <= 1 GB. Exits 1 if one is missed.

`--smoke` runs every case on SQLite, small (a 1 s load, 2,000 claims, a journal of a
few thousand operations), and checks no target: it is there so that CI notices when the
benchmark itself breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
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
from dpsched.budget.accounting import MAX_BUDGET  # noqa: E402
from dpsched.core import AllUnlocked, BatchBuilder, BlockSpec, Ledger  # noqa: E402
from dpsched.engine import Engine  # noqa: E402
from dpsched.engine.durable import Context, DurableEngine  # noqa: E402
from dpsched.engine.journal import Journal  # noqa: E402
from dpsched.service.config import ServiceConfig  # noqa: E402
from dpsched.service.records import ClaimBody, TenantAdded  # noqa: E402
from dpsched.service.state import ServiceState, ledger_id  # noqa: E402

CLIENTS = 16
BLOCKS = 100


@dataclass(frozen=True)
class Sizes:
    """How much of each case one run does."""

    databases: tuple[str, ...]
    seconds: float
    """Load duration per database."""
    raw_seconds: float
    """Duration of the raw commit loop."""
    claims: int
    """Pending claims in the round, and claims the server holds for its RSS."""
    operations: int
    """Journal rows the cold restart reads."""


FULL = Sizes(("sqlite", "postgresql"), 10.0, 3.0, 100_000, 1_000_000)
QUICK = Sizes(("sqlite",), 10.0, 3.0, 20_000, 100_000)
SMOKE = Sizes(("sqlite",), 1.0, 0.5, 2000, 3000)


@dataclass
class Answers:
    """What the clients were answered: the latency of each acknowledged (2xx) operation,
    and how many answers of every other status."""

    acknowledged: list[float] = field(default_factory=list)
    other: Counter[int] = field(default_factory=Counter)

    def p99(self) -> float:
        ordered = sorted(self.acknowledged)
        return ordered[int(0.99 * (len(ordered) - 1))] if ordered else float("nan")

    def others(self) -> str:
        return ", ".join(f"{n:,} x {s}" for s, n in sorted(self.other.items())) or "none"


def load(service: Service, seconds: float) -> tuple[Answers, float]:
    """The answers to 16 concurrent clients and the seconds they ran: 16 keep-alive
    connections driven by one asyncio loop speaking plain HTTP/1.1, so that the load
    generator takes a small part of a core and the server the rest."""
    with service.admin() as admin:
        for j in range(BLOCKS):
            admin.post("/v1/blocks", json={"id": f"b{j}", "epsilon": 1000, "delta": 1e-7})
        tokens = [
            admin.post("/v1/tenants", json={"name": f"bench{i}"}).json()["token"]
            for i in range(CLIENTS)
        ]
    answers = Answers()
    began = time.perf_counter()
    asyncio.run(_clients(service.port, tokens, time.monotonic() + seconds, answers))
    return answers, time.perf_counter() - began


async def _clients(port: int, tokens: list[str], stop: float, answers: Answers) -> None:
    await asyncio.gather(*(_client(port, t, i, stop, answers) for i, t in enumerate(tokens)))


async def _client(port: int, token: str, seed: int, stop: float, answers: Answers) -> None:
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
        if 200 <= status < 300:
            answers.acknowledged.append(time.perf_counter() - start)
        else:
            answers.other[status] += 1
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
            engine.add_block(BlockSpec(id=f"b{j}", epsilon=MAX_BUDGET), 0.0)  # never full
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
    durable.record(TenantAdded("bench", "0" * 64), Context(), 0.0)
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
                durable.record(ClaimBody("bench", f"c{i}", body), Context(tenant="bench"), 1.0)
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


class Report:
    """The table, and how many targets were missed (not counted in smoke mode)."""

    def __init__(self, smoke: bool) -> None:
        title = "dpsched budget-service benchmarks"
        self.table = Table(title=title + (" (smoke: targets not checked)" if smoke else ""))
        for column in ("case", "measured", "target", "ok"):
            self.table.add_column(column, justify="left" if column == "case" else "right")
        self.smoke = smoke
        self.missed = 0

    def row(self, case: str, measured: str, target: str, ok: bool) -> None:
        self.missed += not ok and not self.smoke
        self.table.add_row(case, measured, target, "yes" if ok else "NO")


def database_rows(report: Report, kind: str, url: str, directory: Path, sizes: Sizes) -> None:
    """The load on a served database, beside the raw commit rate of the same database."""
    config = directory / "bench.yaml"
    config.write_text("scheduler: {policy: fcfs, period: 0.5}\nretention: 1\n")
    service = Service(url, directory, config).start()
    try:
        answers, elapsed = load(service, sizes.seconds)
        text = httpx.get(f"{service.url}/metrics").text
        forgotten = next(
            float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("dpsched_claims_forgotten_total ")
        )
    finally:
        service.stop()
    raw = raw_commit_rate(url, sizes.raw_seconds)
    acknowledged = len(answers.acknowledged)
    rate, p99 = acknowledged / elapsed, answers.p99()
    report.row(
        f"{kind}: acknowledged (2xx) ops/s ({CLIENTS} clients, {acknowledged:,} ops)",
        f"{rate:,.0f}",
        ">= 2,000",
        rate >= 2000,
    )
    report.row(
        f"{kind}: p99 latency (acknowledged)", f"{p99 * 1000:.1f} ms", "<= 50 ms", p99 <= 0.05
    )
    report.row(f"{kind}: other answers (count x status)", answers.others(), "", True)
    report.row(
        f"{kind}: claims archived during the run (retention 1 s)", f"{forgotten:,.0f}", "", True
    )
    report.row(
        f"{kind}: raw durable commits/s (one-row transactions)",
        f"{raw:,.0f}",
        f"ratio {rate / raw:.2f}",
        True,
    )


def in_process_rows(report: Report, directory: Path, sizes: Sizes) -> None:
    """The round, the cold restarts and the server's peak memory."""
    seconds, granted = round_time(sizes.claims)
    report.row(
        f"round, {sizes.claims:,} pending claims on {BLOCKS} blocks (dpack, {granted} granted)",
        f"{seconds * 1000:.0f} ms",
        "<= 200 ms",
        seconds <= 0.2,
    )
    for forget in (False, True):
        seconds, rows = restart_time(directory, sizes.operations, forget)
        kept = "finished claims forgotten" if forget else "every claim kept"
        report.row(
            f"cold restart, {rows:,} journaled operations ({kept})",
            f"{seconds:.2f} s",
            "<= 10 s",
            seconds <= 10,
        )
    peak = server_rss(directory, sizes.claims)
    report.row(
        f"server peak RSS with {sizes.claims:,} claims",
        f"{peak:.0f} MB",
        "<= 1,024 MB",
        peak <= 1024,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, help="load duration per database (default 10)")
    parser.add_argument(
        "--quick", action="store_true", help="SQLite load only, smaller in-process cases"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="every case small, on SQLite, no target checked"
    )
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.seconds is not None:
        sizes = replace(sizes, seconds=args.seconds)
    report = Report(args.smoke)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        postgres = None
        server = None
        if "postgresql" in sizes.databases:
            server = pgserver.get_server(str(directory / "pg"), cleanup_mode="delete")
            postgres = server.get_uri()
        for kind in sizes.databases:
            database_rows(report, kind, new_database(kind, directory, postgres), directory, sizes)
        if server is not None:
            server.cleanup()
        in_process_rows(report, directory, sizes)
    Console(width=130).print(report.table)
    return 1 if report.missed else 0


if __name__ == "__main__":
    sys.exit(main())
