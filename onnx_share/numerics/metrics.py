"""Error measures between a weight and its compressed stand-in."""

from __future__ import annotations

import numpy as np

# Elements per block: the sums run in float64 without a float64 copy of a whole large tensor (a few float64
# temporaries of a block: 2 MB each).
BLOCK_ELEMENTS = 1 << 18


def relative_error(original: np.ndarray, approximation: np.ndarray) -> float:
    """‖W − Ŵ‖ / ‖W‖ accumulated in float64 over blocks (0 for an all-zero W)."""
    flat_w, flat_a = np.ravel(original), np.ravel(approximation)
    error = reference = 0.0
    for start in range(0, flat_w.size, BLOCK_ELEMENTS):
        w = flat_w[start : start + BLOCK_ELEMENTS].astype(np.float64)
        a = flat_a[start : start + BLOCK_ELEMENTS].astype(np.float64)
        error += float(np.sum((w - a) ** 2))
        reference += float(np.sum(w * w))
    return float(np.sqrt(error / reference)) if reference > 0 else 0.0



def count_zeros(values: np.ndarray) -> int:
    """Exact zeros in ``values``, counted over blocks (no boolean copy of the whole tensor)."""
    flat = np.ravel(values)
    return sum(int(np.count_nonzero(flat[start : start + BLOCK_ELEMENTS] == 0))
               for start in range(0, flat.size, BLOCK_ELEMENTS))
