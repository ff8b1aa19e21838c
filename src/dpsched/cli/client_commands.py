"""Client verbs for the budget service, kubectl-style: tenant, block, claim.

The server and token come from `--server` / `--token` or $DPSCHED_SERVER /
$DPSCHED_TOKEN. Each verb prints a short summary, or with `--json FILE|-` the
service's answer. A refusal is one line naming the field and the HTTP status.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from dpsched.cli.common import (
    Command,
    JsonOut,
    check_output_file,
    command_group,
    console,
    friendly_errors,
    json_to_stdout,
    write_json,
)
from dpsched.errors import InputError

Server = Annotated[
    str,
    typer.Option(
        "--server", metavar="URL", envvar="DPSCHED_SERVER", help="the service ($DPSCHED_SERVER)"
    ),
]
Token = Annotated[
    str,
    typer.Option(
        "--token", metavar="TOKEN", envvar="DPSCHED_TOKEN", help="bearer token ($DPSCHED_TOKEN)"
    ),
]
RequestId = Annotated[
    str | None,
    typer.Option(metavar="ID", help="makes a retry safe: the service applies an id once"),
]
DEFAULT_SERVER = "http://127.0.0.1:8700"


@contextmanager
def _service(server: str, token: str) -> Iterator[Any]:
    """The client, with its failures as one-line errors."""
    import httpx

    from dpsched.client import Client, ServiceError

    if not token:
        raise InputError("--token", "give a token with --token or $DPSCHED_TOKEN")
    client = Client(server or DEFAULT_SERVER, token, retries=2)
    try:
        yield client
    except ServiceError as exc:
        raise InputError(exc.field or "service", f"{exc.reason} (HTTP {exc.status})") from None
    except httpx.TransportError as exc:
        raise InputError("--server", f"cannot reach {server or DEFAULT_SERVER}: {exc}") from None
    finally:
        client.close()


def _read_body(source: str) -> Any:
    """A file (`.json` as JSON, else YAML) or standard input (YAML, which JSON also is)."""
    from dpsched.readers import parse_yaml, read_data

    if source == "-":
        return parse_yaml(sys.stdin.read(), "stdin")
    return read_data(Path(source), "FILE")


def _show(json_out: Path | None, data: Any, summary: Callable[[Any], str | Any]) -> None:
    if not json_to_stdout(json_out):
        console.print(summary(data), highlight=False, soft_wrap=True)
    if json_out is not None:
        write_json(json_out, data)


def _claim_line(claim: dict[str, Any]) -> str:
    reason = f" ({claim['reason']})" if claim.get("reason") else ""
    return f"{claim['id']}: {claim['state']}{reason}"


def _claims_table(claims: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table()
    for column in ("claim", "state", "blocks", "reason"):
        table.add_column(column)
    for claim in claims:
        table.add_row(
            claim["id"], claim["state"], ", ".join(claim["blocks"]), claim["reason"] or ""
        )
    return table


tenant_app = command_group("Tenants (admin).")
block_app = command_group("Blocks of data and their budget.")
claim_app = command_group("Claims on budget.")


@tenant_app.command("add", cls=Command)
@friendly_errors
def tenant_add(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    server: Server = "",
    token: Token = "",
    json_out: JsonOut = None,
) -> None:
    """Create a tenant; prints its token (shown only this once)."""
    check_output_file(json_out, "--json")
    with _service(server, token) as client:
        created = client.add_tenant(name)
    _show(json_out, created, lambda d: f"tenant {d['name']}: token {d['token']}")


@block_app.command("add", cls=Command)
@friendly_errors
def block_add(
    source: Annotated[str, typer.Argument(metavar="FILE", help="a block, or a list ('-': stdin)")],
    server: Server = "",
    token: Token = "",
    json_out: JsonOut = None,
) -> None:
    """Add blocks (admin), each as in the instance format."""
    check_output_file(json_out, "--json")
    data = _read_body(source)
    blocks = data if isinstance(data, list) else [data]
    with _service(server, token) as client:
        added = [client.add_block(block) for block in blocks]
    _show(json_out, added, lambda d: "added " + ", ".join(b["id"] for b in d))


@block_app.command("list", cls=Command)
@friendly_errors
def block_list(server: Server = "", token: Token = "", json_out: JsonOut = None) -> None:
    """Every block: spent epsilon and room at its best order."""
    from rich.table import Table

    check_output_file(json_out, "--json")
    with _service(server, token) as client:
        blocks = client.blocks()

    def table(rows: list[dict[str, Any]]) -> Any:
        out = Table()
        for column in ("block", "dataset", "spent epsilon", "unlocked", "remaining at best"):
            out.add_column(column)
        for b in rows:
            out.add_row(
                b["id"],
                b["dataset"],
                f"{b['spent_epsilon']:.4g}",
                f"{b['unlocked_fraction']:.0%}",
                f"{b['remaining_at_best']:.4g}",
            )
        return out

    _show(json_out, blocks, table)


@block_app.command("get", cls=Command)
@friendly_errors
def block_get(
    block_id: Annotated[str, typer.Argument(metavar="BLOCK")],
    server: Server = "",
    token: Token = "",
    json_out: JsonOut = None,
) -> None:
    """One block, with its budget parts per order."""
    check_output_file(json_out, "--json")
    with _service(server, token) as client:
        block = client.block(block_id)
    _show(
        json_out,
        block,
        lambda b: (
            f"{b['id']}: spent epsilon {b['spent_epsilon']:.4g}, "
            f"{b['unlocked_fraction']:.0%} unlocked, {b['remaining_at_best']:.4g} left at its "
            "best order"
        ),
    )


@claim_app.command("submit", cls=Command)
@friendly_errors
def claim_submit(
    source: Annotated[str, typer.Argument(metavar="FILE", help="a claim ('-': stdin)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check it; store nothing")] = False,
    server: Server = "",
    token: Token = "",
    json_out: JsonOut = None,
) -> None:
    """Submit a claim (a task as in the instance format), or check it with --dry-run."""
    check_output_file(json_out, "--json")
    body = _read_body(source)
    if not isinstance(body, dict):
        raise InputError("FILE", "must hold one claim (a mapping)")
    with _service(server, token) as client:
        if dry_run:
            checked = client.dry_run(body)
            _show(
                json_out,
                checked,
                lambda d: "fits now" if d["fits_now"] else f"does not fit now: {d['reason']}",
            )
            return
        claim = client.submit(body)
    _show(json_out, claim, _claim_line)


@claim_app.command("get", cls=Command)
@friendly_errors
def claim_get(
    claim_id: Annotated[str, typer.Argument(metavar="CLAIM")],
    wait: Annotated[float, typer.Option(metavar="SECONDS", help="long poll")] = 0.0,
    server: Server = "",
    token: Token = "",
    json_out: JsonOut = None,
) -> None:
    """A claim: state, blocks, grant, reason."""
    check_output_file(json_out, "--json")
    with _service(server, token) as client:
        claim = client.claim(claim_id, wait=wait)
    _show(json_out, claim, _claim_line)


@claim_app.command("wait", cls=Command)
@friendly_errors
def claim_wait(
    claim_id: Annotated[str, typer.Argument(metavar="CLAIM")],
    timeout: Annotated[float, typer.Option(metavar="SECONDS")] = 300.0,
    server: Server = "",
    token: Token = "",
    json_out: JsonOut = None,
) -> None:
    """Wait until a claim is no longer pending (exit 1 if it still is at the timeout)."""
    check_output_file(json_out, "--json")
    with _service(server, token) as client:
        claim = client.wait_for(claim_id, timeout=timeout)
    _show(json_out, claim, _claim_line)
    if claim["state"] == "pending":
        raise typer.Exit(1)


@claim_app.command("list", cls=Command)
@friendly_errors
def claim_list(
    state: Annotated[str | None, typer.Option(metavar="STATE")] = None,
    server: Server = "",
    token: Token = "",
    json_out: JsonOut = None,
) -> None:
    """Your claims (all pages), optionally in one state."""
    check_output_file(json_out, "--json")
    with _service(server, token) as client:
        claims = client.all_claims(state)
    _show(json_out, claims, _claims_table)


@claim_app.command("consume", cls=Command)
@friendly_errors
def claim_consume(
    claim_id: Annotated[str, typer.Argument(metavar="CLAIM")],
    fraction: Annotated[float | None, typer.Option(metavar="F", help="of the grant")] = None,
    amount: Annotated[
        list[str] | None,
        typer.Option(metavar="BLOCK=V1,V2,...", help="explicit amount on a block"),
    ] = None,
    request_id: RequestId = None,
    server: Server = "",
    token: Token = "",
    json_out: JsonOut = None,
) -> None:
    """Use (part of) a grant for good: a fraction (all by default) or an amount."""
    check_output_file(json_out, "--json")
    if fraction is not None and amount:
        raise InputError("--amount", "give --fraction or --amount, not both")
    amounts = _amounts(amount) if amount else None
    with _service(server, token) as client:
        claim = client.consume(claim_id, fraction, amounts, request_id)
    _show(json_out, claim, _claim_line)


def _finishing(verb: str, summary: str) -> None:
    """`claim release` and `claim withdraw`: the same arguments, another client call."""

    @claim_app.command(verb, cls=Command, help=summary)
    @friendly_errors
    def finish(
        claim_id: Annotated[str, typer.Argument(metavar="CLAIM")],
        request_id: RequestId = None,
        server: Server = "",
        token: Token = "",
        json_out: JsonOut = None,
    ) -> None:
        check_output_file(json_out, "--json")
        with _service(server, token) as client:
            claim = getattr(client, verb)(claim_id, request_id)
        _show(json_out, claim, _claim_line)


_finishing("release", "Give back the unconsumed part of a grant.")
_finishing("withdraw", "Withdraw a pending claim, or release an allocated one.")


@claim_app.command("explain", cls=Command)
@friendly_errors
def claim_explain(
    claim_id: Annotated[str, typer.Argument(metavar="CLAIM")],
    server: Server = "",
    token: Token = "",
    json_out: JsonOut = None,
) -> None:
    """Why a claim waits: per block, demand against unlocked and remaining budget."""
    check_output_file(json_out, "--json")
    with _service(server, token) as client:
        why = client.explain(claim_id)

    def lines(d: dict[str, Any]) -> str:
        rows = [f"{d['id']}: {d['state']}; {d['reason'] or 'fits'}"]
        for block, info in d["blocks"].items():
            now = "fits now" if info["fits_now"] else "does not fit now"
            ever = "can fit once unlocked" if info["fits_when_unlocked"] else "can never fit"
            rows.append(f"  {block}: {now}, {ever}")
        return "\n".join(rows)

    _show(json_out, why, lines)


def register(app: typer.Typer) -> None:
    """Add this module's commands and command groups to the root app."""
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(block_app, name="block")
    app.add_typer(claim_app, name="claim")


def _amounts(values: list[str]) -> dict[str, list[float]]:
    amounts: dict[str, list[float]] = {}
    for value in values:
        block, sep, numbers = value.partition("=")
        if not sep or not block:
            raise InputError("--amount", f"expected BLOCK=V1,V2,..., got {value!r}")
        try:
            amounts[block] = [float(v) for v in numbers.split(",")]
        except ValueError:
            raise InputError("--amount", f"not numbers: {numbers!r}") from None
    return amounts
