"""Single-block 0/1 knapsack, solved for all RDP orders of one block at once.

DPack needs, per block and order, the largest total weight of pending claims that
fits what is left of the block at that order (w^max_{j,alpha}). Three regimes,
cheapest first:
- equal weights: the most claims that fit are the smallest demands -> a sort; exact.
- integer weights with a small table: dynamic program over total weight storing the
  least demand reaching it (Pisinger's "minimise weight for each profit"); exact.
- otherwise the FPTAS: weights are scaled down by K = (2/3) eta w_max / n and the
  same program runs on the scaled weights (DPack Prop. 2). When even that table
  would exceed `MAX_TABLE`, K is coarsened to fit it, trading precision for a
  bounded cost; `knapsack_values` reports the effective eta it used.
"""

from __future__ import annotations

import numpy as np

from dpsched.core.admission import TOLERANCE

MAX_TABLE = 1 << 22
"""Largest (items x table width) the dynamic program may touch per block."""


def knapsack_values(
    demand: np.ndarray, weights: np.ndarray, capacity: np.ndarray, eta: float
) -> tuple[np.ndarray, float]:
    """Best total weight per order (columns of `demand`), and the effective eta (0 = exact).

    demand: (items x orders); weights: (items,); capacity: (orders,).
    """
    orders = capacity.size
    values = np.zeros(orders)
    fits_alone = demand <= capacity[None, :] + TOLERANCE
    # Items that fit no order cannot be packed: dropping them first makes the answer
    # independent of them, so callers may pass only the items that fit somewhere.
    useful = fits_alone.any(axis=1)
    if not useful.all():
        demand, weights, fits_alone = demand[useful], weights[useful], fits_alone[useful]
    if demand.shape[0] == 0:
        return values, 0.0
    if np.all(weights == weights[0]):
        ranked = np.sort(np.where(fits_alone, demand, np.inf), axis=0)
        count = (np.cumsum(ranked, axis=0) <= capacity[None, :] + TOLERANCE).sum(axis=0)
        return count * float(weights[0]), 0.0
    everything = np.where(fits_alone, demand, 0.0).sum(axis=0) <= capacity + TOLERANCE
    for a in np.flatnonzero(everything):
        values[a] = weights[fits_alone[:, a]].sum()
    todo = np.flatnonzero(~everything)
    if todo.size == 0:
        return values, 0.0
    in_todo = fits_alone[:, todo].any(axis=1)
    best_single = np.where(fits_alone[:, todo], weights[:, None], 0.0).max(axis=0)
    scale, effective_eta = _weight_scale(weights[in_todo], float(best_single.min()), eta)
    scaled = np.floor(weights / scale + 1e-9).astype(np.int64)
    keep = in_todo & (scaled > 0)
    values[todo] = (
        _min_demand_program(
            demand[keep][:, todo], scaled[keep], capacity[todo], fits_alone[keep][:, todo]
        )
        * scale
    )
    return values, effective_eta


def _weight_scale(weights: np.ndarray, floor_optimum: float, eta: float) -> tuple[float, float]:
    """Scale K for the weights of items that fit alone at some order.

    The FPTAS loses at most n*K, and its guarantee needs that loss measured against a
    lower bound on every order's optimum: the heaviest item that fits alone there.
    Taking the smallest such weight over the orders (`floor_optimum`) keeps the bound
    valid at each order; an item too large for the block must not set the scale.
    """
    n = weights.size
    integral = np.allclose(weights, np.round(weights)) and weights.min() >= 1
    if integral and n * float(np.round(weights).sum()) <= MAX_TABLE:
        return 1.0, 0.0
    scale = (2.0 / 3.0) * eta * floor_optimum / n
    table = float(np.floor(weights / scale).sum())
    if n * table > MAX_TABLE:
        scale *= n * table / MAX_TABLE
    return scale, 1.5 * scale * n / floor_optimum


def _min_demand_program(
    demand: np.ndarray, weights: np.ndarray, capacity: np.ndarray, fits_alone: np.ndarray
) -> np.ndarray:
    """least[w, a] = least total demand at order a of a subset with scaled weight exactly w."""
    total = int(weights.sum())
    least = np.full((total + 1, capacity.size), np.inf)
    least[0] = 0.0
    reach = 0
    for item in range(weights.size):
        w = int(weights[item])
        cost = np.where(fits_alone[item], demand[item], np.inf)
        candidate = least[: reach + 1] + cost[None, :]
        np.minimum(least[w : w + reach + 1], candidate, out=least[w : w + reach + 1])
        reach += w
    feasible = least <= capacity[None, :] + TOLERANCE
    best = np.where(feasible, np.arange(total + 1)[:, None], 0)
    return np.asarray(best.max(axis=0), dtype=float)
