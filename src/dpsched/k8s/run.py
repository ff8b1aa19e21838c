"""`dpsched serve --kubernetes`: the REST API, the admission webhook and the operator in
one process, over one engine and journal (the operator reaches the engine through the
API on loopback, so nothing about scheduling is written twice). The servers share one
event loop; the operator has its own, in a thread, as its handlers call the API
synchronously and must never block the loop that answers them."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from dataclasses import dataclass
from typing import Any

import kopf
import uvicorn

from dpsched.k8s.kube import Connection, KubeApi
from dpsched.k8s.operator import Operator, OperatorConfig
from dpsched.k8s.settling import KOPF_PREFIX
from dpsched.k8s.webhook import create_webhook_app


@dataclass(frozen=True)
class KubeOptions:
    connection: Connection
    webhook_port: int | None = 8443
    tls_cert: str | None = None
    tls_key: str | None = None
    peering: str | None = None
    """kopf peering name: replicas elect one active operator (the others pause)."""
    sync_interval: float = 0.5


def registry_for(operator: Operator, connection: Connection) -> kopf.OperatorRegistry:
    """A kopf registry with the operator's handlers and a login to `connection`."""
    registry = kopf.OperatorRegistry()
    operator.register(registry)

    @kopf.on.login(registry=registry)
    def _login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(
            server=connection.server,
            token=connection.token,
            ca_path=connection.ca_file,
            insecure=connection.insecure,
        )

    @kopf.on.startup(registry=registry)
    def _settings(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.INFO
        settings.persistence.finalizer = f"{KOPF_PREFIX}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX)

    return registry


async def run_operator(
    config: OperatorConfig,
    connection: Connection,
    *,
    peering: str | None = None,
    priority: int | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run the operator until `stop_flag` is set (an asyncio or a threading event: a
    caller in another thread, as the lab and the tests are, can stop it). With
    `peering`, replicas elect the one of highest `priority` (random by default)."""
    chosen = (priority or random.randint(1, 2**30)) if peering else 0
    operator = Operator(config, KubeApi(connection), peering=peering, priority=chosen)
    registry = registry_for(operator, connection)
    await kopf.operator(
        registry=registry,
        clusterwide=True,
        standalone=peering is None,
        peering_name=peering,
        priority=chosen if peering else None,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


async def serve_all(app: Any, host: str, port: int, admin_token: str, options: KubeOptions) -> None:
    """Run the API, then the webhook and the operator once the API answers."""
    api = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    )
    tasks = [asyncio.create_task(api.serve())]
    while not api.started:
        if tasks[0].done():
            await tasks[0]
            return
        await asyncio.sleep(0.05)
    if options.webhook_port is not None:
        webhook = uvicorn.Server(
            uvicorn.Config(
                create_webhook_app(),
                host=host,
                port=options.webhook_port,
                ssl_certfile=options.tls_cert,
                ssl_keyfile=options.tls_key,
                log_level="warning",
                access_log=False,
            )
        )
        tasks.append(asyncio.create_task(webhook.serve()))
    local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    config = OperatorConfig(
        service_url=f"http://{local}:{port}",
        admin_token=admin_token,
        sync_interval=options.sync_interval,
    )
    # The operator calls the API synchronously from its handlers: it runs in a thread of
    # its own, with its own event loop, never in the loop that serves those calls.
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    operator = loop.run_in_executor(
        None,
        lambda: asyncio.run(
            run_operator(config, options.connection, peering=options.peering, stop_flag=stop)
        ),
    )
    tasks.append(asyncio.ensure_future(operator))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
