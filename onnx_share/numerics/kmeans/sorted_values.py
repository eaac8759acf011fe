"""The sorted path: everything on the sorted distinct values (in y units) with their total weights.

``cluster_sorted`` is ``kmeans_1d`` on this path (the optimal init through ``refine.optimal_cuts`` on
points, or a seeded init and Lloyd); ``cluster_exact`` and ``exact_sse`` run the exact DP on all ``u``
distinct values (O(k u log u); the reference the other paths are measured against).
"""

from __future__ import annotations

import numpy as np

from onnx_share.numerics.kmeans import dp
from onnx_share.numerics.kmeans.api import KMeansResult
from onnx_share.numerics.kmeans.finish import finish_from_centroids
from onnx_share.numerics.kmeans.prepare import Points, Prepared, distinct_points, own_centroids
from onnx_share.numerics.kmeans.refine import optimal_cuts
from onnx_share.numerics.kmeans.seeded import seeded_lloyd


def cluster_sorted(prep: Prepared, init: str, seed: int, max_iter: int, pts: Points | None = None) -> KMeansResult:
    """Cluster on the sorted distinct values (``pts``, when already found for the same values, weights and
    ``pin_zero``): the refined DP for "optimal", seed + Lloyd otherwise."""
    pts = distinct_points(prep) if pts is None else pts
    k_free = prep.k - 1 if prep.pin_zero else prep.k
    if pts.values.size <= k_free:
        return own_centroids(prep, pts.values)
    if init == "optimal":
        v, wv = pts.values, pts.weights
        part = optimal_cuts(wv, v * wv, v * v * wv, prep.k, int(np.searchsorted(v, 0.0)) if prep.pin_zero else -1)
        cent, pinned = part.centroids(), part.pin_seg
    else:
        cent, pinned = seeded_lloyd(pts, prep.k, prep.pin_zero, init, seed, max_iter)
    return finish_from_centroids(prep, cent, pinned)


def cluster_exact(prep: Prepared) -> KMeansResult:
    """The exact optimum: the DP on all distinct values, then the exact labelling (no pin_zero)."""
    pts = distinct_points(prep)
    if pts.values.size <= prep.k:
        return own_centroids(prep, pts.values)
    pw, ps, pq = pts.prefix_sums()
    cuts = dp.optimal_cuts(pw, ps, pq, prep.k)
    return finish_from_centroids(prep, dp.segment_means(pw, ps, cuts), pinned_idx=-1)


def exact_sse(prep: Prepared) -> float:
    """The optimal SSE only: the exact DP's last layer (O(u) memory), in value units."""
    pts = distinct_points(prep)
    if pts.values.size <= prep.k:
        return 0.0
    return float(max(dp.last_row(*pts.prefix_sums(), prep.k)[-1], 0.0)) / prep.scale**2
