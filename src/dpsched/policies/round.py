"""What a policy needs from a scheduling round, declared rather than known by name.

The round (`policies.step`) is one cycle for every policy, as the Kubernetes scheduler
framework's scheduling cycle is: it never names a plug-in, it asks each policy's
declared needs at fixed points. Which pending claims must the policy see (`sees`)?
Does it see the budget already reserved for each, and may it reserve more
(`reservations`)? Does it keep something from one round to the next, which whoever
runs rounds over and over holds for it and the round lends to each problem
(`memory`)? The engine keeps that memory without knowing what it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from dpsched.core import Ledger, PendingArrays
from dpsched.core.fitting import PendingFit

Sees = Literal["fitting", "touching", "all"]


class Lent(Protocol):
    """A policy's memory lent to one round's problem (`Problem.kept`)."""

    def close(self) -> None:
        """The round is over: undo what the round did to the memory."""


class RoundMemory(Protocol):
    """What a policy keeps across rounds (DPack's knapsack lanes over every pending
    claim, `lanes.PendingLanes`)."""

    def lend(self, ledger: Ledger, now: PendingFit, fitting: PendingArrays) -> Lent | None:
        """Bring the memory up to date with the ledger and lend it to a round whose
        problem holds the pending claims that fit now (`fitting`); None when it cannot
        serve this round, which then shows the policy every claim `sees` asks for."""


@dataclass(frozen=True)
class RoundNeeds:
    sees: Sees
    """Which pending claims can change the decision, so a round may drop the others:
    "fitting" when a claim's rank (or the optimum) depends only on itself, so claims
    that cannot fit now are irrelevant; "touching" when the decision also counts every
    claim reading a block some fitting claim reads (DPack's knapsacks), unless the
    policy's memory serves the round; "all" when the policy hands out budget even
    while no claim fits (round robin's shares)."""
    reservations: bool = False
    """The policy sees what is reserved for each claim and may reserve more
    (`PolicyResult.reservations`, applied before the round's grants)."""
    memory: Callable[[], RoundMemory] | None = None
    """Makes the policy's memory across rounds (None: it keeps nothing)."""
