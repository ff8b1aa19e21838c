"""`dpsched`: schedule, compare and inspect privacy budget from the terminal.

Every command turns a DpschedError into one line on stderr and exit status 2:
users see which field is wrong, never a traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from pydantic import TypeAdapter, ValidationError

from dpsched.budget import MECHANISM_NAMES, Accounting, MechanismSpec, rdp_curve, rdp_to_epsilon
from dpsched.cli.common import console, friendly_errors
from dpsched.cli.options import parse_key_values
from dpsched.cli.sim_commands import register as register_simulator_commands
from dpsched.cli.tables import blocks_table, comparison_table, curve_table
from dpsched.errors import InputError, from_validation_error
from dpsched.offline import load_instance, run_policy
from dpsched.policies import POLICIES

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Schedule differential-privacy budget: FCFS, DPF, area, DPack and the exact optimum.",
)


def _policy_options(
    policy: str, option: list[str] | None, time_limit: float | None
) -> dict[str, Any]:
    values = parse_key_values(option, "--option")
    if time_limit is not None:
        if policy != "optimal":
            raise InputError("--time-limit", "only the optimal policy takes a time limit")
        values["time_limit"] = time_limit
    return values


@app.command()
@friendly_errors
def schedule(
    instance: Annotated[Path, typer.Argument(help="instance file (.yaml or .json)")],
    policy: Annotated[str, typer.Option(help=f"one of {', '.join(POLICIES)}")] = "dpack",
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="policy option key=value (repeatable)"),
    ] = None,
    time_limit: Annotated[float | None, typer.Option(help="optimal: solver time limit (s)")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the result as JSON")
    ] = None,
) -> None:
    """Run one policy on an instance and print what it allocated."""
    loaded = load_instance(instance)
    _, report = run_policy(loaded, policy, _policy_options(policy, option, time_limit))
    console.print(comparison_table([report], title=f"{instance.name}: {policy}"))
    console.print(blocks_table(report))
    console.print("allocated: " + (", ".join(report["allocated"]) or "(none)"))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {json_out}")


@app.command()
@friendly_errors
def compare(
    instance: Annotated[Path, typer.Argument(help="instance file (.yaml or .json)")],
    policies: Annotated[str, typer.Option(help="comma-separated policies")] = ",".join(POLICIES),
    time_limit: Annotated[float | None, typer.Option(help="optimal: solver time limit (s)")] = 60.0,
) -> None:
    """Run several policies on the same instance; one row per policy."""
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        raise InputError("--policies", "name at least one policy")
    loaded = load_instance(instance)
    reports = []
    for name in names:
        options = {"time_limit": time_limit} if name == "optimal" and time_limit else {}
        reports.append(run_policy(loaded, name, options)[1])
    console.print(comparison_table(reports, title=f"{instance.name} ({loaded.accounting.mode})"))


@app.command()
@friendly_errors
def curve(
    mechanism: Annotated[str, typer.Argument(help=f"one of {', '.join(MECHANISM_NAMES)}")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="mechanism parameter key=value (repeatable)"),
    ] = None,
    delta: Annotated[float, typer.Option(help="delta for the (epsilon, delta) conversion")] = 1e-6,
    alphas: Annotated[str | None, typer.Option(help="comma-separated RDP orders")] = None,
) -> None:
    """Print a mechanism's RDP curve (via dp-accounting) and its (epsilon, delta) conversion."""
    if not 0.0 < delta < 1.0:
        raise InputError("--delta", f"must be in (0, 1), got {delta}")
    spec_data = {"mechanism": mechanism, **parse_key_values(param, "--param")}
    try:
        spec = TypeAdapter(MechanismSpec).validate_python(spec_data)
    except ValidationError as exc:
        raise from_validation_error("mechanism", exc) from None
    orders = tuple(float(a) for a in alphas.split(",")) if alphas else Accounting().alphas
    accounting = Accounting("rdp", orders)
    values = rdp_curve(spec, accounting.alphas)
    classic = values + math.log(1.0 / delta) / (np.asarray(accounting.alphas) - 1.0)
    console.print(curve_table(accounting, values, classic))
    best = int(np.argmin(classic))
    console.print(
        f"(epsilon, delta={delta:g})-DP: improved conversion epsilon = "
        f"{rdp_to_epsilon(accounting.alphas, values, delta):.6g}; "
        f"classic epsilon = {classic[best]:.6g} at alpha = {accounting.alphas[best]:g}"
    )


register_simulator_commands(app)


def main() -> None:
    app()
