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


def entries_fit(
    entry_block: np.ndarray, entry_demand: np.ndarray, available: np.ndarray, usable: np.ndarray
) -> np.ndarray:
    """`rows_fit` for entries of many claims (entry e reads block entry_block[e])."""
    # Fold the tolerance and the unusable orders into one small (blocks x orders) table
    # before gathering it per entry: the gather is the costly part.
    room = np.where(usable, available + TOLERANCE, -np.inf)
    ok: np.ndarray = (entry_demand <= room[entry_block]).any(axis=1)
    return ok


def claims_from_entries(indptr: np.ndarray, entry_ok: np.ndarray) -> np.ndarray:
    """All-or-nothing per claim, in CSR layout (claim i owns entries indptr[i]:indptr[i+1])."""
    if indptr.size <= 1:
        return np.zeros(0, dtype=bool)
    fit: np.ndarray = np.logical_and.reduceat(entry_ok, indptr[:-1])
    return fit


def csr_claims_fit(
    indptr: np.ndarray,
    entry_block: np.ndarray,
    entry_demand: np.ndarray,
    available: np.ndarray,
    usable: np.ndarray,
) -> np.ndarray:
    """`fits` for many claims at once, in CSR layout: one vectorised pass, shape (claims,)."""
    if indptr.size <= 1:
        return np.zeros(0, dtype=bool)
    return claims_from_entries(indptr, entries_fit(entry_block, entry_demand, available, usable))
