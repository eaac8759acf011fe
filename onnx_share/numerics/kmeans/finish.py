"""The last Lloyd half-step, exactly: nearest-centroid labels, each centroid moved to the mean of its
values, and the SSE summed from per-cluster sums (the pinned centroid stays at 0.0).

``finish_from_centroids`` labels every element itself (the sorted path); the histogram path labels
through its key table and hands its per-cluster sums to ``result_from_sums``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from onnx_share.numerics.kmeans.api import KMeansResult

if TYPE_CHECKING:
    from onnx_share.numerics.kmeans.prepare import Prepared


def finish_from_centroids(prep: Prepared, cent_y: np.ndarray, pinned_idx: int) -> KMeansResult:
    """Label by nearest centroid (ties go to the lower one), move centroids to means, compute the SSE.

    ``cent_y``: sorted centroids in y units; ``pinned_idx``: the one pinned at 0.0, or -1.
    """
    cent_y = np.asarray(cent_y, dtype=np.float64)
    bd = 0.5 * (cent_y[:-1] + cent_y[1:])
    labels = np.searchsorted(bd, prep.y(), side="left").astype(label_dtype(cent_y.size))
    cx = prep.center + cent_y / prep.scale
    if pinned_idx >= 0:
        cx[pinned_idx] = 0.0
    acc = np.zeros((cent_y.size, 3))
    _accumulate(prep.x, prep.w, prep.weighted, labels, cx, acc)
    return result_from_sums(cx, labels, acc, pinned_idx)


def label_dtype(m: int) -> type:
    """uint8 labels for up to 256 centroids, int32 above."""
    return np.uint8 if m <= 256 else np.int32


def sorted_result(centroids: np.ndarray, labels: np.ndarray, sse: float) -> KMeansResult:
    """Build the result; rounding can only swap centroids equal to within an ulp, but keep the contract."""
    if np.any(np.diff(centroids) < 0):
        order = np.argsort(centroids, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        centroids = centroids[order]
        labels = rank[labels].astype(labels.dtype)
    return KMeansResult(centroids=centroids, labels=labels, sse=max(float(sse), 0.0))


def result_from_sums(cx: np.ndarray, labels: np.ndarray, acc: np.ndarray, pinned_idx: int) -> KMeansResult:
    """Centroid = cx + mean offset of its members (pinned stays 0.0); SSE from the per-cluster sums.

    ``acc[j]`` holds the sums of w, w*d and w*d^2 with ``d = x - cx[j]`` over the members of cluster j.
    """
    w, d1, d2 = acc[:, 0], acc[:, 1], acc[:, 2]
    has = w > 0
    shift = np.where(has, d1 / np.where(has, w, 1.0), 0.0)
    sse_parts = np.where(has, d2 - d1 * shift, 0.0)
    if pinned_idx >= 0:
        shift[pinned_idx] = 0.0
        sse_parts[pinned_idx] = d2[pinned_idx]
    centroids = cx + shift
    if pinned_idx >= 0:
        centroids[pinned_idx] = 0.0
    return sorted_result(centroids, labels, float(np.sum(np.maximum(sse_parts, 0.0))))


@njit(cache=True, nogil=True)
def _accumulate(x, w, weighted, labels, cx, acc):  # pragma: no cover - numba
    """Per-cluster sums of w, w*d, w*d^2 with d = x - cx[label]."""
    for i in range(x.size):
        lab = labels[i]
        wt = w[i] if weighted else 1.0
        d = np.float64(x[i]) - cx[lab]
        acc[lab, 0] += wt
        acc[lab, 1] += wt * d
        acc[lab, 2] += wt * d * d
