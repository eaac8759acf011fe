"""The inner loop of GPTQ in numba: one block of rows rounded row by row, each row's error spread over the rows of
the block after it (imported on first use, so numba stays out of ``import onnx_share``). Division follows numpy
(a zero scale gives inf or nan, as the numpy loop did), not Python (which raises)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def round_block_codebook(block, inverse, rows, dead, midpoints, centroids, codebook, rounded,
                         errors):  # pragma: no cover - numba
    """Round ``block`` [G, b, out] in row order: element (g, i, j) snaps to the nearest entry of codebook
    ``codebook[g, rows[g, i], j]`` (``centroids`` [C, k] sorted, ``midpoints`` [C, k - 1] between them)."""
    groups, size, columns = block.shape
    for i in range(size):
        for g in range(groups):
            row = rows[g, i]
            for j in range(columns):
                value = block[g, i, j]
                entry = codebook[g, row, j]
                low, high = 0, midpoints.shape[1]
                while low < high:
                    middle = (low + high) // 2
                    if midpoints[entry, middle] < value:
                        low = middle + 1
                    else:
                        high = middle
                rounded[g, i, j] = centroids[entry, low]
        _spread(block, inverse, dead, rounded, errors, i)


@njit(cache=True, nogil=True, error_model="numpy")
def round_block_grid(block, inverse, rows, dead, scale, zero_point, qmin, qmax, rounded,
                     errors):  # pragma: no cover - numba
    """Round ``block`` [G, b, out] in row order: element (g, i, j) snaps to its grid ``(q - zero_point) * scale``
    (per element of the view at row ``rows[g, i]``), q in [qmin, qmax]."""
    groups, size, columns = block.shape
    for i in range(size):
        for g in range(groups):
            row = rows[g, i]
            for j in range(columns):
                step = np.rint(block[g, i, j] / scale[g, row, j]) + zero_point[g, row, j]
                step = min(max(step, qmin), qmax)
                rounded[g, i, j] = (step - zero_point[g, row, j]) * scale[g, row, j]
        _spread(block, inverse, dead, rounded, errors, i)


@njit(cache=True, nogil=True, error_model="numpy")
def _spread(block, inverse, dead, rounded, errors, i):  # pragma: no cover - numba
    """Row ``i``'s rounding error, scaled by the inverse factor's diagonal (0 for a dead row), taken off the rows
    after it in the block."""
    groups, size, columns = block.shape
    for g in range(groups):
        pivot = inverse[g, i, i]
        for j in range(columns):
            errors[g, i, j] = 0.0 if dead[g, i] else (block[g, i, j] - rounded[g, i, j]) / pivot
        for later in range(i + 1, size):
            factor = inverse[g, i, later]
            for j in range(columns):
                block[g, later, j] -= factor * errors[g, i, j]
