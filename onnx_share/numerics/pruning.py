"""Magnitude pruning: which weights to zero, per tensor or over several tensors, and what sparse storage costs.

The pruned set is always "the smallest magnitudes first": by ``fraction`` it is exactly
``ceil(fraction · n)`` elements (elements already zero count, being the smallest), ties at the cut broken by
position (lower flat index first, earlier tensor first), so the result is deterministic; by ``threshold``
it is every element with ``|w| <= threshold`` (the threshold in the tensor's precision). Masks are boolean
arrays, True where a weight is zeroed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# ONNX sparse tensors: onnx.checker accepts only INT64 indices (one linear index per stored value).
SPARSE_INDEX_BYTES = 8
# Slack on fraction · n so that e.g. 0.3 · 10 (3.0000000000000004) asks for 3 zeros, not 4.
_COUNT_SLACK = 1e-9


def zeros_for_fraction(size: int, fraction: float) -> int:
    """How many of ``size`` elements must be zero for at least ``fraction`` of them to be."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    return min(size, max(0, math.ceil(fraction * size - _COUNT_SLACK * max(size, 1))))


def sparsity(values: np.ndarray) -> float:
    """The share of elements that are exactly zero (0 for an empty tensor)."""
    values = np.asarray(values)
    return float(np.count_nonzero(values == 0)) / values.size if values.size else 0.0


def fraction_mask(values: np.ndarray, fraction: float) -> np.ndarray:
    """Mask of the ``ceil(fraction · n)`` smallest-magnitude elements of ``values`` (ties: lower index first)."""
    values = np.asarray(values)
    magnitudes = _magnitudes(values, _work_dtype([values]))
    return _smallest(magnitudes, zeros_for_fraction(values.size, fraction)).reshape(values.shape)


def global_fraction_masks(tensors: Sequence[np.ndarray], fraction: float) -> list[np.ndarray]:
    """Masks for several tensors under one magnitude cut, zeroing ``fraction`` of all their elements together.

    Ties at the cut go to earlier tensors first, then lower flat indices.
    """
    arrays = [np.asarray(t) for t in tensors]
    if not arrays:
        return []
    dtype = _work_dtype(arrays)
    magnitudes = np.concatenate([_magnitudes(a, dtype) for a in arrays])
    mask = _smallest(magnitudes, zeros_for_fraction(magnitudes.size, fraction))
    ends = np.cumsum([a.size for a in arrays])
    return [m.reshape(a.shape) for m, a in zip(np.split(mask, ends[:-1]), arrays, strict=True)]


def threshold_mask(values: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of the elements with ``|w| <= threshold``, the threshold rounded to the tensor's dtype first.

    (So a float32 weight stored as float32(0.2) is pruned by ``threshold=0.2``.)
    """
    if not threshold >= 0.0:
        raise ValueError(f"threshold must be non-negative, got {threshold}")
    values = np.asarray(values)
    limit = float(threshold)
    if values.dtype.kind not in "iub":
        with np.errstate(over="ignore"):  # a threshold beyond the dtype's range becomes inf: prune everything
            limit = float(np.asarray(limit).astype(values.dtype))
    return np.abs(values.astype(np.float64)) <= limit


def apply_mask(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``values`` (same dtype) with the masked elements set to +0.0."""
    values = np.asarray(values)
    pruned = values.copy()
    pruned[mask] = 0
    return pruned


def sparse_nbytes(nonzeros: int, itemsize: int, index_bytes: int = SPARSE_INDEX_BYTES) -> int:
    """Bytes of an ONNX sparse tensor with ``nonzeros`` stored values and 1-D linear indices."""
    return nonzeros * (itemsize + index_bytes)


def _work_dtype(arrays: Sequence[np.ndarray]) -> type:
    """float32 holds every float16 / bfloat16 / float32 magnitude exactly at half float64's memory."""
    return np.float64 if any(a.dtype == np.float64 or a.dtype.kind in "iu" for a in arrays) else np.float32


def _magnitudes(values: np.ndarray, dtype: type) -> np.ndarray:
    return np.abs(values.astype(dtype, copy=False)).ravel()


def _smallest(magnitudes: np.ndarray, count: int) -> np.ndarray:
    """Mask of the ``count`` smallest entries of a flat array, ties at the cut taken in index order."""
    mask = np.zeros(magnitudes.size, dtype=bool)
    if count <= 0:
        return mask
    if count >= magnitudes.size:
        mask[:] = True
        return mask
    cut = np.partition(magnitudes, count - 1)[count - 1]
    mask = magnitudes < cut
    ties = np.flatnonzero(magnitudes == cut)
    mask[ties[: count - int(np.count_nonzero(mask))]] = True
    return mask
