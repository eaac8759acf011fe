"""Error measures between a weight and its compressed stand-in."""

from __future__ import annotations

import numpy as np


def relative_error(original: np.ndarray, approximation: np.ndarray) -> float:
    """‖W − Ŵ‖ / ‖W‖ in float64 (0 for an all-zero W)."""
    reference = np.asarray(original, dtype=np.float64)
    norm = float(np.linalg.norm(reference))
    if norm == 0:
        return 0.0
    return float(np.linalg.norm(reference - np.asarray(approximation, dtype=np.float64))) / norm
