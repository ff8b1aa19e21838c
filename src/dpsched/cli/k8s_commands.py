"""`dpsched k8s ...`: what the Kubernetes front end needs outside the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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

k8s_app = command_group("Kubernetes: the custom resource definitions of dpsched.io/v1.")


@k8s_app.command("crds", cls=Command)
@friendly_errors
def crds_command(
    out: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="write one YAML file per CRD here"),
    ] = None,
    json_out: JsonOut = None,
) -> None:
    """Print (or write) the PrivateBlock and PrivacyClaim CRDs, generated from the same
    models that validate blocks and claims (`kubectl apply -f` the output)."""
    from dpsched.k8s.crds import crds, render

    check_output_file(json_out, "--json")
    documents = crds()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, crd in documents.items():
            (out / name).write_text(render(crd))
        if not json_to_stdout(json_out):
            console.print(f"wrote {', '.join(str(out / n) for n in documents)}")
    elif not json_to_stdout(json_out):
        print("".join(render(crd) for crd in documents.values()), end="")
    if json_out is not None:
        write_json(json_out, {"crds": list(documents.values())})


def register(app: typer.Typer) -> None:
    """Add this module's commands and command groups to the root app."""
    app.add_typer(k8s_app, name="k8s")
