"""dpsched: differential-privacy budget scheduled as a cluster resource.

Layers, lower never importing higher: `budget` (privacy arithmetic) -> `core`
(blocks, claims, ledger, selectors, unlocking) -> `policies` (orderings and the
scheduling step) -> front ends (`offline`, `sim`) -> `cli`.
"""

from dpsched.budget import Accounting
from dpsched.core import BlockSpec, ClaimSpec, ClaimState, Ledger
from dpsched.errors import DpschedError, InputError, LedgerError
from dpsched.policies import POLICIES, Problem, get_policy, schedule_step

__version__ = "0.1.0"

__all__ = [
    "POLICIES",
    "Accounting",
    "BlockSpec",
    "ClaimSpec",
    "ClaimState",
    "DpschedError",
    "InputError",
    "Ledger",
    "LedgerError",
    "Problem",
    "get_policy",
    "schedule_step",
]
