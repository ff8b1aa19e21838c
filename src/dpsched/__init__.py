"""dpsched: differential-privacy budget scheduled as a cluster resource.

Layers, lower never importing higher: `budget` (privacy arithmetic) -> `core`
(blocks, claims, ledger, selectors, unlocking) -> `policies` (orderings and the
scheduling step) -> `engine` (the round every front end runs, and its journal) ->
`client` (the budget service's HTTP client) -> front ends, which never import one
another (`offline` schedules, `sim` the simulator, `service` the budget service,
`k8s` the Kubernetes operator) -> `lab` (experiments across front ends, installed
with `dpsched[lab]`) -> `cli`. `tests/test_layout.py` holds the package to it.

The public names below are loaded on first use (PEP 562), so `import dpsched`
(and every CLI start, which imports it as the package of `dpsched.cli`) costs
nothing until a name is actually needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS = {
    "Accounting": "dpsched.budget",
    "BlockSpec": "dpsched.core",
    "ClaimSpec": "dpsched.core",
    "ClaimState": "dpsched.core",
    "Ledger": "dpsched.core",
    "DpschedError": "dpsched.errors",
    "Engine": "dpsched.engine",
    "InputError": "dpsched.errors",
    "LedgerError": "dpsched.errors",
    "POLICIES": "dpsched.policies",
    "Problem": "dpsched.policies",
    "get_policy": "dpsched.policies",
    "schedule_step": "dpsched.policies",
}

__all__ = [
    "POLICIES",
    "Accounting",
    "BlockSpec",
    "ClaimSpec",
    "ClaimState",
    "DpschedError",
    "Engine",
    "InputError",
    "Ledger",
    "LedgerError",
    "Problem",
    "get_policy",
    "schedule_step",
]

if TYPE_CHECKING:
    from dpsched.budget import Accounting
    from dpsched.core import BlockSpec, ClaimSpec, ClaimState, Ledger
    from dpsched.engine import Engine
    from dpsched.errors import DpschedError, InputError, LedgerError
    from dpsched.policies import POLICIES, Problem, get_policy, schedule_step


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dpsched' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
