"""The public face of the package: ``kmeans_1d``, ``kmeans_1d_many``, ``kmeans_1d_exact``, ``optimal_sse``, their
result and options.

Importing this module costs numpy only: the modules with numba kernels are imported on the first call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from onnx_share.numerics.kmeans.prepare import Prepared

INIT_METHODS: tuple[str, ...] = ("optimal", "linear", "density", "random", "kmeans++")
STRATEGIES: tuple[str, ...] = ("auto", "sorted", "histogram")
# strategy="auto" takes the sorted path up to this many values (a sort is cheap there, and the histogram's
# fixed costs are not) and the histogram path above.
SORTED_MAX_N = 1 << 17


@dataclass(frozen=True)
class KMeansResult:
    """Result of a 1-D clustering.

    Attributes:
        centroids: float64, sorted ascending, shape ``[m]``; ``m < k`` only when the input has fewer
            distinct values (of positive weight) than ``k``.
        labels: ``np.uint8`` if ``m <= 256`` else ``np.int32``; one per element of the flattened (C order)
            input, indexing ``centroids``.
        sse: ``sum(sample_weight * (x - centroids[labels]) ** 2)``.
    """

    centroids: np.ndarray
    labels: np.ndarray
    sse: float


def kmeans_1d(
    values: np.ndarray,
    k: int,
    *,
    init: str = "optimal",
    strategy: str = "auto",
    sample_weight: np.ndarray | None = None,
    seed: int = 0,
    max_iter: int = 100,
    pin_zero: bool = False,
) -> KMeansResult:
    """Cluster the values of a tensor into at most ``k`` centroids minimising the (weighted) SSE.

    Args:
        values: any shape; float16, bfloat16 (ml_dtypes), float32, float64 or integers. Work is in float64.
        k: number of centroids (``>= 1``).
        init: ``"optimal"`` (default): the exact DP on a coarse level, refined on the data (see the package
            docstring). No proven bound: within 2e-5 relative SSE of the optimum in every measured case,
            mostly within 1e-6 (docs/BENCHMARKS.md). ``"linear"`` (evenly spaced between min and max), ``"density"``
            (weighted quantiles), ``"random"`` (Forgy, seeded) and ``"kmeans++"`` (seeded) are seeds for
            plain weighted Lloyd, kept for experiments.
        strategy: where ``init="optimal"`` works. ``"sorted"``: on the sorted distinct values.
            ``"histogram"``: on a float-bit histogram, two passes over the data (rarely three), sorting
            only the values next to the cuts; it falls back to the sorted path when the bins cannot
            resolve the data (few distinct values, float64 values beyond the float32 range, a narrow mode
            inside a few bins). ``"auto"`` (default): sorted up to ``SORTED_MAX_N`` values, histogram
            above. The seeded inits always work on the sorted values.
        sample_weight: optional non-negative importance per element (same number of elements as values).
        seed: seed of the random inits; every init is deterministic for a given seed.
        max_iter: Lloyd iterations for the seeded inits (``"optimal"`` solves a DP, it does not iterate).
        pin_zero: exact zeros are excluded from the fit and one centroid is pinned at exactly 0.0 (so
            pruning sparsity survives clustering); the other ``k - 1`` centroids are fit on the non-zero
            values. Non-zero values nearer to 0.0 than to any other centroid are labelled 0.0 too (that is
            what minimises the SSE with a pinned centroid).

    Returns:
        The centroids (sorted), a label per element and the SSE.

    Raises:
        ValueError: NaN/inf in values or weights, negative or all-zero weights, ``k < 1``, an unknown
            init or strategy, ``strategy="histogram"`` with a seeded init, a weight of the wrong size, or
            an empty tensor.
    """
    if init not in INIT_METHODS:
        raise ValueError(f"unknown init {init!r}; expected one of {INIT_METHODS}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if strategy == "histogram" and init != "optimal":
        raise ValueError(f"strategy='histogram' needs init='optimal'; init={init!r} runs on the sorted values")
    if init == "optimal":
        return kmeans_1d_many(values, [k], strategy=strategy, sample_weight=sample_weight, pin_zero=pin_zero)[0]
    from onnx_share.numerics.kmeans import prepare, sorted_values  # numba kernels: loaded on first use

    k = prepare.checked_k(k)
    prep = prepare.prepare(*prepare.validate(values, sample_weight), k, pin_zero)
    if prep.trivial is not None:
        return prep.trivial
    return sorted_values.cluster_sorted(prep, init, seed, max_iter)


def kmeans_1d_many(
    values: np.ndarray,
    ks: Sequence[int],
    *,
    strategy: str = "auto",
    sample_weight: np.ndarray | None = None,
    pin_zero: bool = False,
) -> list[KMeansResult]:
    """``[kmeans_1d(values, k, strategy=strategy, sample_weight=sample_weight, pin_zero=pin_zero) for k in ks]``
    (the optimal init), the same results bit for bit, in one run over the values.

    What does not depend on k is done once: the checks, and the histogram pass (histogram path) or the sort into
    distinct values (sorted path). Per k remain the DP on the coarse level, its refinement and the labelling.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    from onnx_share.numerics.kmeans import histogram, prepare, sorted_values  # numba kernels: loaded on first use

    ks = [prepare.checked_k(k) for k in ks]
    x, w = prepare.validate(values, sample_weight)
    hist = None
    if strategy == "histogram" or (strategy == "auto" and x.size > SORTED_MAX_N):
        hist = histogram.histogram(x, w, pin_zero)
    points = None
    results = []
    for k in ks:
        result = None if hist is None else histogram.cluster_histogram(hist, k)
        if result is None:
            prep = prepare.prepare(x, w, k, pin_zero)
            if prep.trivial is None and points is None:
                points = prepare.distinct_points(prep)
            result = prep.trivial or sorted_values.cluster_sorted(prep, "optimal", 0, 0, points)
        results.append(result)
    return results


@dataclass(frozen=True)
class RowsResult:
    """Result of one clustering per row of a [G, M] array.

    Attributes:
        centroids: float64 [G, k], each row sorted; a row with ``m < k`` distinct values (of positive weight)
            repeats its last centroid.
        labels: [G, M], ``np.uint8`` for ``k <= 256`` else ``np.int32``, indexing the row's centroids.
        sse: float64 [G], each row's ``KMeansResult.sse``.
    """

    centroids: np.ndarray
    labels: np.ndarray
    sse: np.ndarray


def kmeans_rows(
    rows: np.ndarray, k: int, *, sample_weight: np.ndarray | None = None, pin_zero: bool | np.ndarray = False
) -> RowsResult:
    """``kmeans_1d(rows[g], k, pin_zero=pin_zero[g], sample_weight=sample_weight[g])`` for every row g.

    The same results, row for row, much faster for many short rows (a codebook per channel): rows of the sorted
    path that pin no zero run together in one numba kernel that releases the GIL (``rows`` module); the others,
    and all rows when any value or weight is invalid (to raise ``kmeans_1d``'s error), go through ``kmeans_1d``.
    ``pin_zero``: one flag for all rows or one per row.
    """
    from onnx_share.numerics.kmeans import prepare
    from onnx_share.numerics.kmeans import rows as batched

    k = prepare.checked_k(k)
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise ValueError(f"rows must be a non-empty [G, M] array, got shape {rows.shape}")
    x = prepare.flatten(rows).reshape(rows.shape)
    w = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float64).reshape(rows.shape)
    pins = np.broadcast_to(np.asarray(pin_zero, dtype=bool), rows.shape[:1])
    fast = ~pins if rows.shape[1] <= SORTED_MAX_N else np.zeros(rows.shape[0], dtype=bool)
    if fast.any() and not _valid(x, w):
        fast[:] = False
    centroids = np.empty((rows.shape[0], k))
    labels = np.empty(rows.shape, dtype=np.uint8 if k <= 256 else np.int32)
    sse = np.empty(rows.shape[0])
    if fast.any():
        picked = np.flatnonzero(fast)
        c, lab, e = batched.cluster_rows(x[picked], None if w is None else w[picked], k)
        centroids[picked], labels[picked], sse[picked] = c, lab, e
    for g in np.flatnonzero(~fast):
        result = kmeans_1d(x[g], k, pin_zero=bool(pins[g]), sample_weight=None if w is None else w[g])
        centroids[g, : result.centroids.size] = result.centroids
        centroids[g, result.centroids.size :] = result.centroids[-1]
        labels[g], sse[g] = result.labels, result.sse
    return RowsResult(centroids, labels, sse)


def _valid(x: np.ndarray, w: np.ndarray | None) -> bool:
    """Finite values, and finite non-negative weights with a positive sum in every row."""
    finite = bool(np.isfinite(x).all())
    return finite and (w is None or (bool(np.isfinite(w).all()) and bool((w >= 0).all())
                                     and bool((w.sum(axis=1) > 0).all())))


def kmeans_1d_exact(values: np.ndarray, k: int, sample_weight: np.ndarray | None = None) -> KMeansResult:
    """The exact optimal 1-D k-means: DP over all distinct values (slow; the reference for tests).

    Runs the O(k * u * log u) divide-and-conquer DP on the ``u`` sorted distinct values, with the
    partition recovered from an argmin table when it fits in memory and by Hirschberg splitting
    (twice the time, O(u) memory) otherwise. No histogram, no approximation.
    """
    from onnx_share.numerics.kmeans import sorted_values

    prep = _prepare_exact(values, k, sample_weight)
    return prep.trivial if prep.trivial is not None else sorted_values.cluster_exact(prep)


def optimal_sse(values: np.ndarray, k: int, sample_weight: np.ndarray | None = None) -> float:
    """The SSE of ``kmeans_1d_exact`` without its partition: the DP's last layer only (O(u) memory).

    For measuring ``kmeans_1d`` against the optimum on tensors too big for the full table.
    """
    from onnx_share.numerics.kmeans import sorted_values

    prep = _prepare_exact(values, k, sample_weight)
    return prep.trivial.sse if prep.trivial is not None else sorted_values.exact_sse(prep)


def _prepare_exact(values: np.ndarray, k: int, sample_weight: np.ndarray | None) -> Prepared:
    """Validated, prepared input of the exact DP (no pinned centroid)."""
    from onnx_share.numerics.kmeans import prepare

    return prepare.prepare(*prepare.validate(values, sample_weight), prepare.checked_k(k), pin_zero=False)
