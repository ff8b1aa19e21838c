"""`dpsched`: schedule, compare and inspect privacy budget from the terminal, run the
budget service (and the Kubernetes operator) and talk to it.

Every command turns a DpschedError into one line on stderr and exit status 2:
users see which field is wrong, never a traceback. Commands import what they use
when they run (`cli.common` explains why), so this module stays light.
"""

from __future__ import annotations

from typing import Annotated

import typer

from dpsched import __version__
from dpsched.cli.client_commands import register as register_client_commands
from dpsched.cli.common import Group, console
from dpsched.cli.k8s_commands import register as register_k8s_commands
from dpsched.cli.offline_commands import register as register_offline_commands
from dpsched.cli.service_commands import register as register_service_commands
from dpsched.cli.sim_commands import register as register_simulator_commands

app = typer.Typer(
    cls=Group,
    add_completion=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Schedule differential-privacy budget: FCFS, DPF, area, DPack, round robin and the "
    "exact optimum, offline or simulated online; serve it to jobs as a budget service (and on "
    "Kubernetes) and talk to that service.",
)


def _version(show: bool) -> None:
    if show:
        console.print(f"dpsched {__version__}", highlight=False)
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Print the version, or the help when no command is given."""
    if ctx.invoked_subcommand is None:
        console.print(ctx.get_help())
        raise typer.Exit()


register_offline_commands(app)
register_simulator_commands(app)
register_service_commands(app)
register_client_commands(app)
register_k8s_commands(app)


def main() -> None:
    app(prog_name="dpsched")
