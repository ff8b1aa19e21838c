"""The admission rule shared by the ledger and every policy.

A demand fits a block when AT LEAST ONE usable order (capacity > 0) has room:
RDP converts back to (eps_G, delta_G)-DP through any single order. The whole
vector is then deducted, so other orders may go negative, as in both papers.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-9
"""Absolute slack on every budget comparison, so that e.g. ten demands of 0.1 fill a
capacity of 1.0 despite float rounding; invariants are checked with the same slack."""


def rows_fit(demand: np.ndarray, available: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per row (one block of one claim): does some usable order have room? Shape (k,)."""
    fit: np.ndarray = ((demand <= available + TOLERANCE) & usable).any(axis=-1)
    return fit


def fits(demand: np.ndarray, available: np.ndarray, usable: np.ndarray) -> bool:
    """All-or-nothing: every requested block must fit."""
    return bool(rows_fit(demand, available, usable).all())
