"""1-D weighted k-means over the values of a weight tensor: the (near-)optimal clustering, or seeded Lloyd.

The optimal 1-D k-means is a dynamic program over the sorted values (Wang & Song's Ckmeans.1d.dp): the
cost of a cluster is the SSE about its mean, which satisfies the quadrangle inequality, so a DP layer
takes O(u log u) by divide and conquer. ``kmeans_1d_exact`` runs that DP on all ``u`` distinct values:
exact, and slow on big tensors. ``kmeans_1d(init="optimal")`` runs it on a coarse level of merged
values or bins, refines the cuts level by level down to the values (on the histogram path: the values
of the bins next to each cut), then labels every element exactly and moves each centroid to the exact
mean of its values.

Modules, one job each (only ``api`` is imported here; the rest, with the numba kernels, on first call):

* ``api``: the public functions (``kmeans_1d_many``: every k of a list in one run), ``KMeansResult``,
  ``RowsResult``, ``INIT_METHODS``, ``STRATEGIES``; picks the path.
* ``rows``: the sorted path for many short rows at once (codebooks per channel), in one kernel.
* ``prepare``: input checks, flattening, working coordinates, trivial cases, distinct values.
* ``sorted_values``: the sorted path (small inputs, seeded inits, fallback) and the exact DP.
* ``histogram``: the histogram path (large inputs): float-bit histogram pass, label pass that gathers the
  values next to the cuts, exact cuts among them.
* ``refine``: near-optimal cuts of weighted sorted items (bins or points): coarse DP, level-by-level
  windowed refinement.
* ``dp``: the exact DP solvers (full, last row, Hirschberg, windowed, pinned) over one layer kernel.
* ``seeded``: the seeded inits and plain weighted Lloyd.
* ``finish``: nearest-centroid labels, exact means and SSE.
"""

from onnx_share.numerics.kmeans.api import (
    INIT_METHODS,
    SORTED_MAX_N,
    STRATEGIES,
    KMeansResult,
    RowsResult,
    kmeans_1d,
    kmeans_1d_exact,
    kmeans_1d_many,
    kmeans_rows,
    optimal_sse,
)

__all__ = ["INIT_METHODS", "SORTED_MAX_N", "STRATEGIES", "KMeansResult", "RowsResult", "kmeans_1d", "kmeans_1d_exact",
           "kmeans_1d_many", "kmeans_rows", "optimal_sse"]
