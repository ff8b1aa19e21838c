"""Greedy first-fit packing: walk claims in a policy's order, grant each one that fits.

Hot path. Budget only shrinks during a pass, so a claim that does not fit now
never will: whole chunks of the order are screened at once with one vectorised
check, and only claims that pass are re-checked one by one (needed only after an
earlier grant in the same chunk). In a saturated system almost every claim is
dropped by the screen and costs no Python-level work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpsched.core.admission import TOLERANCE, csr_claims_fit
from dpsched.core.ranges import concat_ranges
from dpsched.policies.problem import Problem

_FIRST_CHUNK = 32
_MAX_CHUNK = 4096


@dataclass
class PackResult:
    allocated: list[int]
    remaining: np.ndarray
    stopped_at: int
    """Position in `order` where packing stopped (== len(order) unless max_allocations hit)."""


def greedy_pack(
    problem: Problem,
    order: np.ndarray,
    available: np.ndarray | None = None,
    max_allocations: int | None = None,
) -> PackResult:
    remaining = (problem.available if available is None else available).copy()
    usable = problem.usable
    order = np.asarray(order, dtype=np.int64)
    lengths = np.diff(problem.indptr)[order]
    starts = problem.indptr[order]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    entries = concat_ranges(starts, lengths)
    blocks = problem.entry_block[entries]
    demand = problem.entry_demand[entries]

    allocated: list[int] = []
    limit = len(order) + 1 if max_allocations is None else max_allocations
    position, chunk = 0, _FIRST_CHUNK
    while position < len(order) and len(allocated) < limit:
        end = min(position + chunk, len(order))
        lo, hi = offsets[position], offsets[end]
        b = blocks[lo:hi]
        ok = ((demand[lo:hi] <= remaining[b] + TOLERANCE) & usable[b]).any(axis=1)
        task_ok = np.logical_and.reduceat(ok, offsets[position:end] - lo)
        granted_in_chunk = False
        stopped = end
        for local in np.flatnonzero(task_ok):
            k = position + int(local)
            s, e = offsets[k], offsets[k + 1]
            rows, need = blocks[s:e], demand[s:e]
            if granted_in_chunk and not (
                ((need <= remaining[rows] + TOLERANCE) & usable[rows]).any(axis=1).all()
            ):
                continue
            remaining[rows] -= need
            allocated.append(int(order[k]))
            granted_in_chunk = True
            if len(allocated) >= limit:
                stopped = k + 1
                break
        position = stopped
        chunk = _FIRST_CHUNK if granted_in_chunk else min(chunk * 2, _MAX_CHUNK)
    return PackResult(allocated, remaining, position)


def claims_fitting(problem: Problem, available: np.ndarray) -> np.ndarray:
    """Mask of claims that fit `available` on their own (every block, some usable order)."""
    return csr_claims_fit(
        problem.indptr, problem.entry_block, problem.entry_demand, available, problem.usable
    )
