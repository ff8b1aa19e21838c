"""Offline commands: schedule, compare and curve."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from dpsched.cli.common import (
    Command,
    JsonOut,
    check_output_file,
    console,
    errors,
    friendly_errors,
    json_to_stdout,
    loading,
    write_json,
)
from dpsched.cli.names import MECHANISM_NAMES, POLICY_NAMES
from dpsched.cli.options import parse_key_values
from dpsched.errors import InputError

Instance = Annotated[
    Path, typer.Argument(metavar="INSTANCE", help="instance file (.yaml, .yml or .json)")
]
TimeLimit = Annotated[
    float | None, typer.Option(metavar="SECONDS", help="optimal: solver time limit")
]
LARGE_FILE = 5_000_000
"""Bytes above which loading an instance shows a progress line."""


def _policy_options(
    policy: str, option: list[str] | None, time_limit: float | None
) -> dict[str, Any]:
    values = parse_key_values(option, "--option")
    if time_limit is not None:
        if policy != "optimal":
            raise InputError("--time-limit", "only the optimal policy takes a time limit")
        values["time_limit"] = time_limit
    return values


def _load(path: Path) -> Any:
    from dpsched.offline import load_instance

    large = path.is_file() and path.stat().st_size > LARGE_FILE
    with loading(large and errors.is_terminal) as progress:
        return load_instance(path, progress)


commands = typer.Typer()
"""This module's top-level commands, added to the root app by `register`."""


@commands.command(cls=Command)
@friendly_errors
def schedule(
    instance: Instance,
    policy: Annotated[
        str, typer.Option(metavar="NAME", help=f"one of {', '.join(POLICY_NAMES)}")
    ] = "dpack",
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", metavar="KEY=VALUE", help="policy option (repeatable)"),
    ] = None,
    time_limit: TimeLimit = None,
    json_out: JsonOut = None,
) -> None:
    """Run one policy on an instance: what it granted, what waits and why, what is left.

    Prints the summary, each block's spent epsilon and remaining budget at its best
    order, rejected and unallocated claims with their reasons, and the granted ids.
    """
    from dpsched.cli.tables import (
        SHOWN_ROWS,
        blocks_table,
        claims_table,
        comparison_table,
        id_list,
    )
    from dpsched.offline import bulk_allocation, run_policy
    from dpsched.policies import get_policy

    check_output_file(json_out, "--json")
    if policy not in POLICY_NAMES:
        choices = ", ".join(POLICY_NAMES)
        raise InputError("--policy", f"unknown policy {policy!r}; choose from {choices}")
    options = _policy_options(policy, option, time_limit)
    get_policy(policy).options(options)  # bad options fail before a long load
    with bulk_allocation():  # the whole run: see its docstring
        loaded = _load(instance)
        explain = None if json_out is not None else SHOWN_ROWS
        _, report = run_policy(loaded, policy, options, explain)
        del loaded
    if not json_to_stdout(json_out):
        console.print(comparison_table([report], title=f"{instance.name}: {policy}"))
        console.print(blocks_table(report))
        if report["rejected"]:
            console.print(claims_table(report["rejected"], "rejected: can never run"))
        if report["unallocated"]:
            console.print(
                claims_table(report["unallocated"], "not allocated", report["n_unallocated"])
            )
        console.print("allocated: " + id_list(report["allocated"]), highlight=False)
    if json_out is not None:
        write_json(json_out, report)


@commands.command(cls=Command)
@friendly_errors
def compare(
    instance: Instance,
    policies: Annotated[
        str, typer.Option(metavar="NAMES", help="comma-separated policies")
    ] = ",".join(POLICY_NAMES),
    time_limit: TimeLimit = 60.0,
    json_out: JsonOut = None,
) -> None:
    """Run several policies on the same instance; one row per policy."""
    from dpsched.cli.tables import claims_table, comparison_table
    from dpsched.offline import bulk_allocation, run_policy

    check_output_file(json_out, "--json")
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        raise InputError("--policies", "name at least one policy")
    unknown = [n for n in names if n not in POLICY_NAMES]
    if unknown:
        raise InputError(
            "--policies",
            f"unknown policy {unknown[0]!r}; choose from {', '.join(POLICY_NAMES)}",
        )
    reports = []
    with bulk_allocation():
        loaded = _load(instance)
        for name in names:
            options = {"time_limit": time_limit} if name == "optimal" and time_limit else {}
            explain = None if json_out is not None else 0
            reports.append(run_policy(loaded, name, options, explain)[1])
    if not json_to_stdout(json_out):
        title = f"{instance.name} ({loaded.accounting.mode})"
        console.print(comparison_table(reports, title=title))
        if reports[0]["rejected"]:
            console.print(claims_table(reports[0]["rejected"], "rejected: can never run"))
        waiting = ", ".join(f"{r['policy']} {r['n_unallocated']}" for r in reports)
        console.print(
            f"not allocated: {waiting}. For each claim's reason: dpsched schedule "
            "INSTANCE --policy NAME, or --json FILE here.",
            highlight=False,
        )
    if json_out is not None:
        write_json(
            json_out,
            {
                "instance": str(instance),
                "accounting": loaded.accounting.mode,
                "n_tasks": loaded.n_tasks,
                "policies": reports,
            },
        )


@commands.command(cls=Command)
@friendly_errors
def curve(
    mechanism: Annotated[
        str,
        typer.Argument(metavar="MECHANISM", help=f"one of {', '.join(MECHANISM_NAMES)}"),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", metavar="KEY=VALUE", help="mechanism parameter (repeatable)"),
    ] = None,
    delta: Annotated[
        float, typer.Option(metavar="DELTA", help="delta for the (epsilon, delta) conversion")
    ] = 1e-6,
    alphas: Annotated[
        str | None, typer.Option(metavar="ORDERS", help="comma-separated RDP orders")
    ] = None,
    json_out: JsonOut = None,
) -> None:
    """A mechanism's RDP curve (via dp-accounting) and its (epsilon, delta) conversion."""
    import numpy as np
    from pydantic import TypeAdapter, ValidationError

    from dpsched.budget import Accounting, MechanismSpec, rdp_curve, rdp_to_epsilon
    from dpsched.cli.tables import curve_table
    from dpsched.errors import from_validation_error

    check_output_file(json_out, "--json")
    if not 0.0 < delta < 1.0:
        raise InputError("--delta", f"must be in (0, 1), got {delta:g}")
    spec_data = {"mechanism": mechanism, **parse_key_values(param, "--param")}
    try:
        spec = TypeAdapter(MechanismSpec).validate_python(spec_data)
    except ValidationError as exc:
        raise from_validation_error("mechanism", exc, spec_data) from None
    orders = _orders(alphas) if alphas else Accounting().alphas
    accounting = Accounting("rdp", orders, delta)
    values = rdp_curve(spec, accounting.alphas)
    classic = values + math.log(1.0 / delta) / (np.asarray(accounting.alphas) - 1.0)
    best = int(np.argmin(classic))
    improved = rdp_to_epsilon(accounting.alphas, values, delta)
    if not json_to_stdout(json_out):
        console.print(
            curve_table([f"{a:g}" for a in accounting.alphas], values.tolist(), classic.tolist())
        )
        console.print(
            f"(epsilon, delta={delta:g})-DP: improved conversion epsilon = {improved:.6g}; "
            f"classic epsilon = {classic[best]:.6g} at alpha = {accounting.alphas[best]:g}",
            highlight=False,
        )
    if json_out is not None:
        write_json(
            json_out,
            {
                "mechanism": spec.model_dump(mode="json"),
                "delta": delta,
                "alphas": list(accounting.alphas),
                "rdp": [_finite_or_none(v) for v in values.tolist()],
                "classic_epsilon": [_finite_or_none(v) for v in classic.tolist()],
                "epsilon": _finite_or_none(improved),
                "classic_best": {
                    "alpha": accounting.alphas[best],
                    "epsilon": _finite_or_none(float(classic[best])),
                },
            },
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands and command groups to the root app."""
    app.registered_commands += commands.registered_commands


def _orders(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(a) for a in text.split(","))
    except ValueError:
        raise InputError("--alphas", f"expected comma-separated numbers, got {text!r}") from None


def _finite_or_none(value: float) -> float | None:
    """JSON has no infinity: an order where the bound does not converge is null."""
    return value if math.isfinite(value) else None
