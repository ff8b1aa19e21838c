"""Dominant Private-block Fairness (PrivateKube Alg. 1 and 3).

A claim's share of a block is its largest demand over usable orders divided by
the block's TOTAL capacity at that order (not what is left: fairness is relative
to the block's whole budget). Claims go smallest dominant share first; equal
dominant shares fall back to the 2nd, 3rd... largest share, then arrival, then id.
The weighted variant divides shares by the claim's weight.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from dpsched.policies.packing import greedy_pack
from dpsched.policies.problem import Problem
from dpsched.policies.result import PolicyResult


class DpfOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weighted: bool = True


def block_shares(problem: Problem) -> np.ndarray:
    """Per entry (claim, block): max over usable orders of demand / total capacity."""
    capacity = problem.capacity[problem.entry_block]
    usable = problem.usable[problem.entry_block]
    # Overflow to inf is the right key: a share too large to represent sorts last.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(usable, problem.entry_demand / np.where(usable, capacity, 1.0), -np.inf)
    share = ratio.max(axis=1)
    return np.where(np.isneginf(share), np.inf, share)


def dpf_order(problem: Problem, weighted: bool = True) -> np.ndarray:
    share = block_shares(problem)
    if weighted:
        with np.errstate(over="ignore"):
            share = share / problem.weights[problem.entry_task]
    task = problem.entry_task
    by_task_then_share = np.lexsort((-share, task))
    position = np.arange(share.size) - problem.indptr[task[by_task_then_share]]
    width = int(np.diff(problem.indptr).max(initial=1))
    sorted_shares = np.zeros((problem.n, width))
    sorted_shares[task[by_task_then_share], position] = share[by_task_then_share]
    keys = np.vstack([problem.tie_rank[None, :], sorted_shares[:, ::-1].T])
    return np.lexsort(keys)


def dpf(problem: Problem, options: DpfOptions) -> PolicyResult:
    return PolicyResult(greedy_pack(problem, dpf_order(problem, options.weighted)).allocated)
