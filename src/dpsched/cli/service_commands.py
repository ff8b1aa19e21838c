"""The online system's commands: `serve` (the budget service, and the Kubernetes
operator with `--kubernetes`), the journal's schema (`db upgrade`) and its audit
(`audit verify`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dpsched.cli.common import (
    Command,
    JsonOut,
    check_output_file,
    command_group,
    console,
    errors,
    friendly_errors,
    json_to_stdout,
    write_json,
)
from dpsched.errors import InputError

if TYPE_CHECKING:
    from dpsched.k8s.run import KubeOptions

DEFAULT_DB = "dpsched.db"
Database = Annotated[
    str,
    typer.Option(
        "--db",
        metavar="URL",
        help="journal database: a SQLite file path, or a URL such as "
        "postgresql+psycopg://user@host/db (default: $DPSCHED_DB, else dpsched.db)",
    ),
]


def _database(value: str | None) -> str:
    return value or os.environ.get("DPSCHED_DB") or DEFAULT_DB


def _port_free(host: str, port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError("--port", f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _kube_options(
    server: str | None,
    insecure: bool,
    host: str,
    webhook_port: int,
    tls: tuple[Path | None, Path | None],
    peering: str | None,
) -> KubeOptions:
    """Where the operator connects and how the webhook listens (checked before anything
    starts: bad options change nothing)."""
    from dpsched.k8s import require_operator_extra

    require_operator_extra("--kubernetes")
    from dpsched.k8s.kube import Connection
    from dpsched.k8s.run import KubeOptions

    if server is None:
        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise InputError("--kube-server", "not in a cluster: give the API server's URL")
        connection = Connection.in_cluster()
    else:
        connection = Connection(server=server, insecure=insecure)
    if (tls[0] is None) != (tls[1] is None):
        raise InputError("--tls-key" if tls[1] is None else "--tls-cert", "give both or neither")
    for option, path in (("--tls-cert", tls[0]), ("--tls-key", tls[1])):
        if path is not None and not path.is_file():
            raise InputError(option, f"{path} is not a file")
    if webhook_port:
        _port_free(host, webhook_port)
    return KubeOptions(
        connection=connection,
        webhook_port=webhook_port or None,
        tls_cert=str(tls[0]) if tls[0] else None,
        tls_key=str(tls[1]) if tls[1] else None,
        peering=peering,
    )


commands = typer.Typer()
"""This module's top-level commands, added to the root app by `register`."""

db_app = command_group("The journal database: create or migrate its schema.")
audit_app = command_group("Check the journal: it is the audit log.")


@commands.command(cls=Command)
@friendly_errors
def serve(
    config: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="accounting, alphas and scheduler (YAML)"),
    ] = None,
    db: Database = "",
    host: Annotated[str, typer.Option(metavar="HOST", help="address to listen on")] = ("127.0.0.1"),
    port: Annotated[int, typer.Option(metavar="PORT", help="port to listen on")] = 8700,
    kubernetes: Annotated[
        bool,
        typer.Option(
            "--kubernetes",
            help="also run the Kubernetes operator and the Pod admission webhook",
        ),
    ] = False,
    kube_server: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="API server (default: the in-cluster service account's)",
        ),
    ] = None,
    kube_insecure: Annotated[
        bool, typer.Option(help="do not verify the API server's certificate (tests)")
    ] = False,
    webhook_port: Annotated[
        int, typer.Option(metavar="PORT", help="admission webhook port (0: none)")
    ] = 8443,
    tls_cert: Annotated[
        Path | None, typer.Option(metavar="FILE", help="webhook TLS certificate")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(metavar="FILE", help="its key")] = None,
    peering: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="kopf peering: replicas elect one operator"),
    ] = None,
) -> None:
    """Run the budget service: the REST API, the scheduling loop and the journal.

    The admin token is read from $DPSCHED_ADMIN_TOKEN (required). The database must
    be migrated first (`dpsched db upgrade`). With `--kubernetes`, the same process
    also runs the operator (PrivateBlock and PrivacyClaim resources, gated Pods) and
    the Pod admission webhook, over the same engine.
    """
    token = os.environ.get("DPSCHED_ADMIN_TOKEN", "").strip()
    if not token:
        raise InputError(
            "DPSCHED_ADMIN_TOKEN", "set it to the admin token before starting the service"
        )
    kube = (
        _kube_options(kube_server, kube_insecure, host, webhook_port, (tls_cert, tls_key), peering)
        if kubernetes
        else None
    )
    from dpsched.service.app import Settings, create_app
    from dpsched.service.config import load_service_config

    settings = Settings(db=_database(db), config=load_service_config(config), admin_token=token)
    _port_free(host, port)
    service = create_app(settings)
    import uvicorn

    errors.print(f"dpsched serving on http://{host}:{port} (journal: {settings.db})")
    if kube is not None:
        import asyncio

        from dpsched.k8s.run import serve_all

        errors.print(f"dpsched operator: watching {kube.connection.server}")
        asyncio.run(serve_all(service, host, port, token, kube))
        return
    uvicorn.run(
        service,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


@db_app.command("upgrade", cls=Command)
@friendly_errors
def upgrade(db: Database = "", json_out: JsonOut = None) -> None:
    """Create the journal's tables, or migrate them to this version's schema."""
    from dpsched.engine.journal import Journal

    check_output_file(json_out, "--json")
    url = _database(db)
    revision = Journal(url, check=False).upgrade()
    if not json_to_stdout(json_out):
        console.print(f"{url}: schema at revision {revision}", highlight=False, soft_wrap=True)
    if json_out is not None:
        write_json(json_out, {"db": url, "revision": revision})


@audit_app.command("verify", cls=Command)
@friendly_errors
def audit_verify(db: Database = "", json_out: JsonOut = None) -> None:
    """Replay the journal from its first row: check the hash chain and the budget
    invariant after every operation, and report the first bad row (exit 1)."""
    from dpsched.engine.audit import verify
    from dpsched.engine.journal import Journal

    check_output_file(json_out, "--json")
    url = _database(db)
    report = verify(Journal(url))
    if not json_to_stdout(json_out):
        if report.ok:
            console.print(
                f"{url}: {report.rows} rows verified, all sound",
                highlight=False,
                soft_wrap=True,
            )
        else:
            errors.print(
                f"{url}: row {report.bad_row} is bad: {report.problem} "
                f"({report.rows} rows before it verified)",
                markup=False,
            )
    if json_out is not None:
        write_json(
            json_out,
            {
                "db": url,
                "ok": report.ok,
                "rows": report.rows,
                "bad_row": report.bad_row,
                "problem": report.problem,
            },
        )
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands and command groups to the root app."""
    app.registered_commands += commands.registered_commands
    app.add_typer(db_app, name="db")
    app.add_typer(audit_app, name="audit")
