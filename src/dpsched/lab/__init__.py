"""The lab: dpsched's Kubernetes path run whole on one machine, for experiments,
benchmarks and tests; not part of what a cluster runs.

`emulator.py` serves a Kubernetes API server without a cluster (kmock's, made faithful),
`deployment.py` wires the budget service, that API server and the operator on loopback,
and `fig8.py` reproduces DPack's Kubernetes experiment on it. It sits above the front
ends (it drives `k8s` and compares with `sim`) and below the CLI; no front end imports it.

The emulator's packages come only with the `lab` extra (`pip install 'dpsched[lab]'`,
which also brings the operator's `kubernetes` extra): a cluster runs the operator
against a real API server without them. Importing the lab without them fails at once
with one line saying what to install, rather than later with a bare
ModuleNotFoundError.
"""

from __future__ import annotations

from importlib import import_module

from dpsched.errors import DpschedError

EXTRA = ("kmock", "jsonpatch", "jsonpointer", "attrs")
"""What the `lab` extra installs (distribution and module names alike)."""


class LabExtraMissingError(DpschedError, ImportError):
    """A package of the `lab` extra is not installed."""


def _require_extra() -> None:
    for name in EXTRA:
        try:
            import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in EXTRA:  # installed, but broken: its own error says why
                raise
            raise LabExtraMissingError(
                f"dpsched.lab needs {exc.name}, which comes with the lab extra: "
                "pip install 'dpsched[lab]'",
                name=exc.name,
            ) from None


_require_extra()
