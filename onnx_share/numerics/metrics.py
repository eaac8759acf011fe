"""Error measures between a weight and its compressed stand-in."""

from __future__ import annotations

import numpy as np

# Elements per block: the sums run in float64 without a float64 copy of a whole large tensor.
BLOCK_ELEMENTS = 1 << 20


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


def channel_relative_error(original: np.ndarray, approximation: np.ndarray, axis: int | None) -> float:
    """The root mean over output channels (slices along ``axis``) of ‖W_c − Ŵ_c‖² / ‖W_c‖²: every channel counts
    alike, as it does after the normalization or activation that follows most layers, however small its weights
    (all-zero channels are left out). ``axis`` None: :func:`relative_error`."""
    if axis is None or original.ndim == 0:
        return relative_error(original, approximation)
    w_channels, a_channels = np.moveaxis(original, axis, 0), np.moveaxis(approximation, axis, 0)
    per_block = max(1, BLOCK_ELEMENTS // max(1, original.size // max(1, original.shape[axis])))
    ratios = []
    for start in range(0, w_channels.shape[0], per_block):
        w = w_channels[start : start + per_block].astype(np.float64)
        w = w.reshape(len(w), -1)
        a = a_channels[start : start + per_block].astype(np.float64).reshape(w.shape)
        norms = np.sum(w * w, axis=1)
        errors = np.sum((w - a) ** 2, axis=1)
        ratios.append(errors[norms > 0] / norms[norms > 0])
    joined = np.concatenate(ratios)
    return float(np.sqrt(joined.mean())) if joined.size else 0.0
