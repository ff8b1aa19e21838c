"""HiGHS through `highspy`, for `optimal`'s MILP and the LP that prices its bound.

Imported lazily (only `optimal` needs it). Never load OR-Tools in the same process:
both bundle their own solver libraries.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


def new_highs(time_limit: float | None, mip_rel_gap: float | None = None) -> Any:
    """A silent HiGHS instance with the given limits (seconds; relative MIP gap)."""
    import highspy

    with _quiet_stdout():  # HiGHS prints a banner on its first construction, on fd 1
        highs = highspy.Highs()  # type: ignore[no-untyped-call]
    highs.setOptionValue("output_flag", False)
    if time_limit is not None:
        highs.setOptionValue("time_limit", float(time_limit))
    if mip_rel_gap is not None:
        highs.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    return highs


def pass_model(
    highs: Any,
    *,
    cost: np.ndarray,
    upper: np.ndarray,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    matrix: Any,
    integer: np.ndarray | None = None,
) -> None:
    """min cost.x, row_lower <= A x <= row_upper, 0 <= x <= upper; A a scipy.sparse
    CSR matrix (rows x columns); `integer` marks integer columns (none if None)."""
    import highspy

    n_rows, n_cols = matrix.shape
    lp = highspy.HighsLp()
    lp.num_col_ = n_cols
    lp.num_row_ = n_rows
    lp.col_cost_ = cost
    lp.col_lower_ = np.zeros(n_cols)
    lp.col_upper_ = upper
    lp.row_lower_ = row_lower
    lp.row_upper_ = row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = n_cols
    lp.a_matrix_.num_row_ = n_rows
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    if integer is not None:
        kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
        lp.integrality_ = [kinds[int(k)] for k in integer]
    highs.passModel(lp)


def csr(
    rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray], shape: tuple[int, int]
) -> Any:
    """A scipy.sparse CSR matrix from coordinate pieces (duplicates summed)."""
    from scipy.sparse import coo_matrix

    return coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    ).tocsr()


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send the process's file descriptor 1 to /dev/null for a moment: `--json -` writes
    the report there, and a C library's banner would break it."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
