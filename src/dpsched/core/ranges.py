"""Index ranges laid end to end: the one gather behind every CSR "entries of these rows".

Claims own consecutive entries (`indptr`), blocks own consecutive lane members: a pass
over a few of them needs the indices of their ranges, concatenated in order, without a
Python loop.
"""

from __future__ import annotations

import numpy as np


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """[starts[0], starts[0] + lengths[0]), [starts[1], ...), ... concatenated."""
    offsets = np.cumsum(lengths) - lengths
    indices: np.ndarray = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))
    return indices


def rows_of(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The entries of CSR rows `rows` (row i owns indptr[i]:indptr[i + 1]), in order."""
    starts = indptr[rows]
    return concat_ranges(starts, indptr[rows + 1] - starts)
