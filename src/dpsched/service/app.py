"""The REST API (FastAPI) over the durable engine: `create_app` wires the parts together.

Where things are: `routes/` holds one router per resource (claims, blocks, tenants,
admin, health and metrics); `bodies` what a request may send; `auth` who is calling;
`runtime` how a handler hands its work to the single `writer`, which applies the plain
functions of `operations` (changes, journaled) and `queries` (reads) in batches and
commits each batch before anyone hears of it; `views` what the API returns; `state`
what the service keeps beside the ledger; `errors` the error format; `metrics` and
`waits` (long polls) the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from fastapi import FastAPI

from dpsched import __version__
from dpsched.engine.durable import SNAPSHOT_EVERY, DurableEngine
from dpsched.engine.journal import Journal
from dpsched.service import openapi, operations
from dpsched.service.books import Books
from dpsched.service.config import ServiceConfig
from dpsched.service.errors import install_handlers
from dpsched.service.metrics import Observe, ServiceMetrics
from dpsched.service.routes import admin, blocks, claims, health, tenants
from dpsched.service.runtime import Runtime
from dpsched.service.state import ServiceState, token_hash
from dpsched.service.waits import Changes
from dpsched.service.writer import Writer

ROUTERS = (health.router, tenants.router, blocks.router, claims.router, admin.router)


@dataclass(frozen=True)
class Settings:
    db: str
    config: ServiceConfig
    admin_token: str
    snapshot_every: int = SNAPSHOT_EVERY


def create_app(settings: Settings) -> FastAPI:
    """Open the journal (refusing an unmigrated one), recover the engine, build the app."""
    config = settings.config
    state = ServiceState()
    durable = DurableEngine.open(
        Journal(settings.db),
        config.make_accounting(),
        config.scheduler.make_unlocking(),
        config.scheduler.policy,
        options=config.scheduler.options,
        state=state,
        snapshot_every=settings.snapshot_every,
    )
    books = Books(durable, state)
    metrics = ServiceMetrics()
    changes = Changes()
    writer = Writer(
        durable,
        config.scheduler.period,
        on_commit=changes.from_writer,
        on_round=metrics.observe_round,
        on_commit_time=metrics.commit_seconds.observe,
        after_round=(
            None
            if config.retention is None
            else partial(operations.forget_finished, books, config.retention)
        ),
    )
    metrics.watch(writer)
    runtime = Runtime(books, writer, changes, metrics, token_hash(settings.admin_token))

    app = FastAPI(
        title="dpsched budget service",
        version=__version__,
        description="Differential-privacy budget as a scheduled resource.",
        lifespan=lambda _app: runtime.running(),
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    app.add_middleware(Observe, metrics=metrics)
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    openapi.install(app)
    return app
