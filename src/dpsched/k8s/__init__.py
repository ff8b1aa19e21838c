"""The Kubernetes front end: custom resources, the operator, gated Pods, Kubeflow.

The operator (kopf, and aiohttp for the API server) comes with the `kubernetes` extra
(`pip install 'dpsched[kubernetes]'`): a plain install is the library, the CLI and the
budget service. The rest of this package (the CRDs, Pod annotations, the webhook's
answers, Kubeflow components) needs no extra.
"""

from __future__ import annotations

from importlib import import_module

from dpsched.errors import InputError

EXTRA = ("kopf", "aiohttp")
"""What the `kubernetes` extra installs (distribution and module names alike)."""


def require_operator_extra(field: str) -> None:
    """Fail at once, with one line saying what to install, when the operator's packages
    are missing (rather than later with a bare ModuleNotFoundError)."""
    for name in EXTRA:
        try:
            import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in EXTRA:  # installed, but broken: its own error says why
                raise
            raise InputError(
                field,
                f"the operator needs {exc.name}, which comes with the kubernetes extra: "
                "pip install 'dpsched[kubernetes]'",
            ) from None
