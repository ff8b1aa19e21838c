"""What the fit check remembers between steps: per pending entry, a lower bound on the
unlocked fraction at which it fits, and per claim the entry that last kept it from
fitting. Kept with the pending claims (`core.pending`), computed and read by the fit
check (`core.fitting`, where the bounds are explained).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FitHints:
    """Per pending entry: a lower bound on its threshold and the order that attained it
    (-1: unknown). Per claim: the lower bound and block of one entry that kept it from
    fitting (its witness; -inf: none), copied out so that skipping a claim reads two
    small contiguous arrays; and the same bound for the whole remaining budget."""

    theta: np.ndarray
    order: np.ndarray
    bar: np.ndarray
    bar_block: np.ndarray
    bar_entry: np.ndarray
    """The witness's position among its claim's entries."""
    bar_whole: np.ndarray
    bar_static: np.ndarray
    """The witness's least demand over capacity across usable orders: a bound that no
    grant makes stale. A claim whose witness block has less room than that at every
    order (`_candidates`) is skipped without refreshing its threshold: online, most
    pending claims wait on blocks that each step's grants use up again."""

    @classmethod
    def unknown(cls, claims: int, entries: int) -> FitHints:
        # theta -1 is below any fraction, and without an order there is no upper bound:
        # unknown entries always get a fresh threshold.
        return cls(
            theta=np.full(entries, -1.0),
            order=np.full(entries, -1, dtype=np.int64),
            bar=np.full(claims, -np.inf),
            bar_block=np.zeros(claims, dtype=np.int64),
            bar_entry=np.zeros(claims, dtype=np.int64),
            bar_whole=np.full(claims, -np.inf),
            bar_static=np.full(claims, -np.inf),
        )

    def subset(self, keep: np.ndarray, entry_keep: np.ndarray) -> FitHints:
        return FitHints(
            theta=self.theta[entry_keep],
            order=self.order[entry_keep],
            bar=self.bar[keep],
            bar_block=self.bar_block[keep],
            bar_entry=self.bar_entry[keep],
            bar_whole=self.bar_whole[keep],
            bar_static=self.bar_static[keep],
        )

    def extend(self, other: FitHints) -> FitHints:
        return FitHints(
            theta=np.concatenate([self.theta, other.theta]),
            order=np.concatenate([self.order, other.order]),
            bar=np.concatenate([self.bar, other.bar]),
            bar_block=np.concatenate([self.bar_block, other.bar_block]),
            bar_entry=np.concatenate([self.bar_entry, other.bar_entry]),
            bar_whole=np.concatenate([self.bar_whole, other.bar_whole]),
            bar_static=np.concatenate([self.bar_static, other.bar_static]),
        )
