"""1-D weighted k-means over the values of a weight tensor: the (near-)optimal clustering, or seeded Lloyd.

``kmeans_1d(init="optimal")`` solves the optimal 1-D k-means by dynamic programming (Wang & Song's
Ckmeans.1d.dp with the divide-and-conquer speed-up) on a fine weighted histogram of the values, polishes
the result with Lloyd iterations, and assigns every value to its nearest centroid in one exact pass.
``kmeans_1d_exact`` is the slow, provably exact reference: the same DP on every distinct value.

How the fast path works, for ``n`` values and ``k`` clusters:

1. One pass: validate (NaN/inf), min, max, mean.
2. One pass: a histogram over ``y = (x - mean) * 2**-e`` keyed by the sign, exponent and the top
   ``_FINE_BITS`` mantissa bits of ``y`` (float-bit bins: relative width ``2**-_FINE_BITS``, exact for
   float16/bfloat16 input, fine near the centre and in value for outliers). Each bin keeps its weight,
   sum, sum of squares, min and max, so within-bin scatter is accounted for.
3. The bins are merged greedily (Ward-like: a run of bins is merged while its scatter stays under a
   threshold, found by bisection) into about ``_GROUPS_PER_CLUSTER * k`` groups; the exact DP over the
   groups picks the partition; Lloyd iterations on the bins (each bin modelled as uniform on
   ``[min, max]`` when a boundary cuts it) move the boundaries off group edges.
4. One pass: label every value by its nearest centroid (a table lookup by bin key, one exact
   comparison for bins a boundary cuts), move each centroid to the mean of its values and compute the
   SSE exactly from per-cluster sums of ``x - centroid``.

Small inputs, and data the float-bit bins cannot resolve (a few heavy bins that a boundary cuts), go
through the sorted-distinct-values path instead (exact DP when there are few distinct values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["INIT_METHODS", "KMeansResult", "kmeans_1d", "kmeans_1d_exact"]

INIT_METHODS: tuple[str, ...] = ("optimal", "linear", "density", "random", "kmeans++")

# Mantissa bits of the float-bit histogram keys (2**-_FINE_BITS relative bin width). Keys come from the
# float32 bits of y: sign, 8 exponent bits, the top _FINE_BITS mantissa bits.
_FINE_BITS = 10
_HALF_KEYS = 1 << (8 + _FINE_BITS)
_N_KEYS = 2 * _HALF_KEYS
# The DP runs on about this many merged groups per cluster (and at least _MIN_GROUPS).
_GROUPS_PER_CLUSTER = 8
_MIN_GROUPS = 256
# Bin-level refinement: each cut is searched within this many cluster widths (in groups) either side,
# re-centred until stable. One width was enough in every measured case; two leave a margin.
_REFINE_CLUSTER_WIDTHS = 2
_REFINE_MAX_ROUNDS = 64
# Inputs up to this size use the sorted-distinct-values path (a sort is cheap there).
_SORT_PATH_MAX_N = 1 << 15
# A bin cut by a boundary may hold at most this share of the lighter neighbouring cluster's weight;
# otherwise the histogram is too coarse for the data and the sorted path is used.
_MAX_CUT_BIN_SHARE = 0.05
# Lloyd polish on the histogram model: stop when no centroid moves more than this (units of the spread).
_POLISH_TOL = 1e-13
_POLISH_MAX_ITER = 300
# Above this many DP table cells (k * n), the exact DP recovers the partition by Hirschberg splitting.
_DP_TABLE_MAX_CELLS = 1 << 26
_CHUNK = 1024
# Label table entries: first possible label in the low bits, number of boundaries in the key above.
_SPAN_SHIFT = 32
_LABEL_MASK = (1 << _SPAN_SHIFT) - 1


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


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def kmeans_1d(
    values: np.ndarray,
    k: int,
    *,
    init: str = "optimal",
    sample_weight: np.ndarray | None = None,
    seed: int = 0,
    max_iter: int = 100,
    pin_zero: bool = False,
) -> KMeansResult:
    """Cluster the values of a tensor into at most ``k`` centroids minimising the (weighted) SSE.

    Args:
        values: any shape; float16, bfloat16 (ml_dtypes), float32, float64 or integers. Work is in float64.
        k: number of centroids (``>= 1``).
        init: ``"optimal"`` (default) gives the optimum or within 1e-4 relative SSE of it. ``"linear"``
            (evenly spaced between min and max), ``"density"`` (weighted quantiles), ``"random"`` (Forgy,
            seeded) and ``"kmeans++"`` (seeded) are seeds for plain weighted Lloyd, kept for experiments.
        sample_weight: optional non-negative importance per element (same number of elements as values).
        seed: seed of the random inits; every init is deterministic for a given seed.
        max_iter: Lloyd iterations for the seeded inits (and the cap of the polish for ``"optimal"``).
        pin_zero: exact zeros are excluded from the fit and one centroid is pinned at exactly 0.0 (so
            pruning sparsity survives clustering); the other ``k - 1`` centroids are fit on the non-zero
            values. Non-zero values nearer to 0.0 than to any other centroid are labelled 0.0 too (that is
            what minimises the SSE with a pinned centroid).

    Returns:
        The centroids (sorted), a label per element and the SSE.

    Raises:
        ValueError: NaN/inf in values or weights, negative or all-zero weights, ``k < 1``, an unknown
            init, a weight of the wrong size, or an empty tensor.
    """
    if init not in INIT_METHODS:
        raise ValueError(f"unknown init {init!r}; expected one of {INIT_METHODS}")
    prep = _prepare(values, k, sample_weight, pin_zero)
    if prep.trivial is not None:
        return prep.trivial
    if init == "optimal" and prep.x.size > _SORT_PATH_MAX_N:
        result = _cluster_histogram(prep, max_iter)
        if result is not None:
            return result
    return _cluster_sorted(prep, init, seed, max_iter)


def kmeans_1d_exact(values: np.ndarray, k: int, sample_weight: np.ndarray | None = None) -> KMeansResult:
    """The exact optimal 1-D k-means: DP over all distinct values (slow; the reference for tests).

    Runs the O(k * u * log u) divide-and-conquer DP on the ``u`` sorted distinct values, with the
    partition recovered from an argmin table when it fits in memory and by Hirschberg splitting
    (twice the time, O(u) memory) otherwise. No histogram, no approximation.
    """
    prep = _prepare(values, k, sample_weight, pin_zero=False)
    if prep.trivial is not None:
        return prep.trivial
    pts = _distinct_points(prep)
    if pts.values.size <= prep.k:
        return _own_centroids(prep, pts.values)
    pw, ps, pq = _prefix(pts.weights, pts.values * pts.weights, pts.values * pts.values * pts.weights)
    cuts = _optimal_cuts(pw, ps, pq, prep.k)
    cent_y = _segment_means(pw, ps, cuts)
    return _finish_from_centroids_y(prep, cent_y, pinned_idx=-1)


# --------------------------------------------------------------------------------------------------
# Input preparation
# --------------------------------------------------------------------------------------------------


@dataclass
class _Prepared:
    """Validated, flattened input and the affine map ``y = (x - center) * scale`` used internally."""

    x: np.ndarray  # flat float32 or float64
    w: np.ndarray  # flat float64 weights (empty when unweighted)
    weighted: bool
    k: int
    pin_zero: bool
    center: float
    scale: float
    trivial: KMeansResult | None = None


@dataclass
class _Points:
    """Sorted distinct values (in y units) of positive weight, with their total weights."""

    values: np.ndarray
    weights: np.ndarray


def _flatten(values: np.ndarray) -> np.ndarray:
    """Flatten (C order) to float32 or float64 without copying when already one of those."""
    a = np.asarray(values)
    if a.dtype in (np.float32, np.float64):
        return np.ascontiguousarray(a).reshape(-1)
    if a.dtype.kind in "biu":
        return a.astype(np.float64).reshape(-1)
    if a.dtype.itemsize <= 2 or a.dtype.kind != "f":
        # float16, bfloat16 and the other ml_dtypes small floats are exact in float32.
        try:
            return np.ascontiguousarray(a.astype(np.float32)).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cannot cluster values of dtype {a.dtype}") from exc
    return a.astype(np.float64).reshape(-1)


def _prepare(values: np.ndarray, k: int, sample_weight: np.ndarray | None, pin_zero: bool) -> _Prepared:
    """Validate the arguments, compute the centring/scaling and catch the trivial cases."""
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    x = _flatten(values)
    if x.size == 0:
        raise ValueError("cannot cluster an empty tensor")
    weighted = sample_weight is not None
    if weighted:
        w = np.ascontiguousarray(np.asarray(sample_weight, dtype=np.float64)).reshape(-1)
        if w.size != x.size:
            raise ValueError(f"sample_weight has {w.size} elements but values has {x.size}")
    else:
        w = np.empty(0, dtype=np.float64)
    lo, hi, total, mean, bad_x, bad_w = _scan_stats(x, w, weighted)
    if bad_x:
        raise ValueError("values contain NaN or inf; clean the tensor before clustering it")
    if bad_w:
        raise ValueError("sample_weight must be finite and non-negative")
    if total <= 0.0:
        raise ValueError("sample_weight sums to zero: nothing to cluster")
    center = 0.0 if pin_zero else float(mean)
    if not lo <= center <= hi:  # rounding of the mean
        center = float(min(max(center, lo), hi))
    spread = max(hi - center, center - lo)
    scale = 1.0 if spread == 0.0 else math.ldexp(1.0, -math.frexp(spread)[1])
    prep = _Prepared(x, w, weighted, int(k), pin_zero, center, scale)
    if spread == 0.0:
        prep.trivial = _own_centroids(prep, np.array([0.0]))
    elif prep.k == 1 and not pin_zero:
        prep.trivial = _finish_from_centroids_y(prep, np.array([(mean - center) * scale]), pinned_idx=-1)
    elif prep.k == 1:
        prep.trivial = _finish_from_centroids_y(prep, np.array([0.0]), pinned_idx=0)
    return prep


def _to_y(prep: _Prepared) -> np.ndarray:
    """The working coordinates ``y = (x - center) * scale`` (|y| < 1), as a float64 array."""
    return (prep.x.astype(np.float64) - prep.center) * prep.scale


def _distinct_points(prep: _Prepared, y: np.ndarray | None = None) -> _Points:
    """Sorted distinct values of positive weight (zeros left out when pin_zero), with total weights."""
    if y is None:
        y = _to_y(prep)
    keep = np.ones(y.size, dtype=bool) if not prep.weighted else prep.w > 0
    if prep.pin_zero:
        keep &= prep.x != 0
    yk = y[keep]
    values, inverse = np.unique(yk, return_inverse=True)
    if prep.weighted:
        weights = np.bincount(inverse, weights=prep.w[keep], minlength=values.size)
    else:
        weights = np.bincount(inverse, minlength=values.size).astype(np.float64)
    return _Points(values, weights)


def _own_centroids(prep: _Prepared, values_y: np.ndarray) -> KMeansResult:
    """Each distinct value its own centroid (plus 0.0 when pinned): exact, SSE 0 up to rounding."""
    cent = np.unique(values_y)
    pinned = -1
    if prep.pin_zero:
        cent = np.unique(np.concatenate([cent, [0.0]]))
        pinned = int(np.searchsorted(cent, 0.0))
    return _finish_from_centroids_y(prep, cent, pinned)


# --------------------------------------------------------------------------------------------------
# Finishing: nearest-centroid labels, centroid = mean of its values, exact SSE
# --------------------------------------------------------------------------------------------------


def _finish_from_centroids_y(prep: _Prepared, cent_y: np.ndarray, pinned_idx: int) -> KMeansResult:
    """Label by nearest centroid (ties go to the lower one), move centroids to means, compute SSE."""
    cent_y = np.asarray(cent_y, dtype=np.float64)
    bd = 0.5 * (cent_y[:-1] + cent_y[1:])
    y = _to_y(prep)
    labels = np.searchsorted(bd, y, side="left").astype(_label_dtype(cent_y.size))
    cx = _y_to_x(prep, cent_y, pinned_idx)
    acc = np.zeros((cent_y.size, 3))
    _accumulate(prep.x, prep.w, prep.weighted, labels, cx, acc)
    return _result(cx, labels, acc, pinned_idx)


def _y_to_x(prep: _Prepared, cent_y: np.ndarray, pinned_idx: int) -> np.ndarray:
    """Centroids back in value units; the pinned one exactly 0.0."""
    cx = prep.center + cent_y / prep.scale
    if pinned_idx >= 0:
        cx[pinned_idx] = 0.0
    return cx


def _label_dtype(m: int) -> type:
    return np.uint8 if m <= 256 else np.int32


def _result(cx: np.ndarray, labels: np.ndarray, acc: np.ndarray, pinned_idx: int) -> KMeansResult:
    """Centroid = cx + mean offset of its members (pinned stays 0.0); SSE from the per-cluster sums."""
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
    return _sorted_result(centroids, labels, float(np.sum(np.maximum(sse_parts, 0.0))))


def _sorted_result(centroids: np.ndarray, labels: np.ndarray, sse: float) -> KMeansResult:
    """Build the result; rounding can only swap centroids equal to within an ulp, but keep the contract."""
    if np.any(np.diff(centroids) < 0):
        order = np.argsort(centroids, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        centroids = centroids[order]
        labels = rank[labels].astype(labels.dtype)
    return KMeansResult(centroids=centroids, labels=labels, sse=max(float(sse), 0.0))


# --------------------------------------------------------------------------------------------------
# Sorted-distinct-values path (small inputs, seeded inits, fallback)
# --------------------------------------------------------------------------------------------------


def _cluster_sorted(prep: _Prepared, init: str, seed: int, max_iter: int) -> KMeansResult:
    """Cluster on the sorted distinct values: DP (+ Lloyd) for "optimal", seed + Lloyd otherwise."""
    pts = _distinct_points(prep)
    k_free = prep.k - 1 if prep.pin_zero else prep.k
    if pts.values.size <= k_free:
        return _own_centroids(prep, pts.values)
    if init == "optimal":
        cent, pinned = _optimal_on_bins(
            pts.weights, pts.values * pts.weights, pts.values, pts.values, prep, max_iter
        )
    else:
        cent, pinned = _seeded_lloyd(pts, prep, init, seed, max_iter)
    return _finish_from_centroids_y(prep, cent, pinned)


def _seeded_lloyd(pts: _Points, prep: _Prepared, init: str, seed: int, max_iter: int) -> tuple[np.ndarray, int]:
    """Seed the free centroids with ``init`` and run plain weighted Lloyd on the distinct values."""
    k_free = prep.k - 1 if prep.pin_zero else prep.k
    u, wu = pts.values, pts.weights
    rng = np.random.default_rng(seed)
    fixed = np.array([0.0]) if prep.pin_zero else np.empty(0)
    if init == "linear":
        seeds = np.linspace(u[0], u[-1], k_free)
    elif init == "density":
        cw = np.cumsum(wu)
        probs = (np.arange(k_free) + 0.5) / k_free * cw[-1]
        seeds = u[np.minimum(np.searchsorted(cw, probs, side="left"), u.size - 1)]
    elif init == "random":
        seeds = u[rng.choice(u.size, size=k_free, replace=False, p=wu / wu.sum())]
    else:  # kmeans++
        seeds = _kmeanspp(u, wu, k_free, fixed, rng)
    cent = _fill_empty(u, wu, np.unique(np.concatenate([seeds, fixed])), prep.k)
    cent = _lloyd_points(u, wu, cent, prep.pin_zero, max_iter)
    pinned = int(np.searchsorted(cent, 0.0)) if prep.pin_zero else -1
    return cent, pinned


def _lloyd_points(u: np.ndarray, wu: np.ndarray, cent: np.ndarray, pin_zero: bool, max_iter: int) -> np.ndarray:
    """Plain weighted Lloyd on sorted distinct values (O(k log u) per step via prefix sums).

    A centroid left without points moves to the value with the largest weighted error.
    """
    k = cent.size
    pw, ps, _ = _prefix(wu, u * wu, u * u * wu)
    for _ in range(max_iter):
        new = _lloyd_step_points(u, pw, ps, cent, pin_zero)
        if new.size < k:
            new = _fill_empty(u, wu, new, k)
        if np.array_equal(new, cent):
            break
        cent = new
    return cent


def _kmeanspp(u: np.ndarray, wu: np.ndarray, n_seeds: int, fixed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """k-means++ (D^2 weighting, single trial) over weighted distinct values."""
    chosen: list[float] = []
    if fixed.size:
        d2 = (u - fixed[0]) ** 2
    else:
        first = u[rng.choice(u.size, p=wu / wu.sum())]
        chosen.append(float(first))
        d2 = (u - first) ** 2
    while len(chosen) < n_seeds:
        p = wu * d2
        total = p.sum()
        if total <= 0:
            break
        c = u[rng.choice(u.size, p=p / total)]
        chosen.append(float(c))
        d2 = np.minimum(d2, (u - c) ** 2)
    return np.array(chosen)


def _lloyd_step_points(u: np.ndarray, pw: np.ndarray, ps: np.ndarray, cent: np.ndarray, pin_zero: bool) -> np.ndarray:
    """One Lloyd step on sorted weighted points via prefix sums; drops centroids left empty."""
    bd = 0.5 * (cent[:-1] + cent[1:])
    edges = np.concatenate([[0], np.searchsorted(u, bd, side="right"), [u.size]])
    w = pw[edges[1:]] - pw[edges[:-1]]
    s = ps[edges[1:]] - ps[edges[:-1]]
    has = w > 0
    new = np.where(has, s / np.where(has, w, 1.0), cent)
    if pin_zero:
        new[cent == 0.0] = 0.0
        keep = has | (cent == 0.0)
    else:
        keep = has
    return np.unique(new[keep])


def _fill_empty(u: np.ndarray, wu: np.ndarray, cent: np.ndarray, k: int) -> np.ndarray:
    """Add centroids at the distinct values with the largest weighted error until there are ``k``."""
    while cent.size < k:
        bd = 0.5 * (cent[:-1] + cent[1:])
        lab = np.searchsorted(bd, u, side="left")
        err = wu * (u - cent[lab]) ** 2
        err[np.isin(u, cent)] = -1.0
        best = int(np.argmax(err))
        if err[best] < 0:
            break
        cent = np.unique(np.concatenate([cent, [u[best]]]))
    return cent


# --------------------------------------------------------------------------------------------------
# Histogram path (large inputs, init="optimal")
# --------------------------------------------------------------------------------------------------


def _cluster_histogram(prep: _Prepared, max_iter: int) -> KMeansResult | None:
    """The fast path; returns None when the histogram is too coarse for the data (use the sorted path)."""
    table = np.zeros((_N_KEYS, 3))
    keys = np.empty(min(prep.x.size, _N_KEYS), dtype=np.int64)
    nk = _histogram(prep.x, prep.w, prep.weighted, prep.center, prep.scale, prep.pin_zero, table, keys)
    keys = np.sort(keys[:nk])
    if keys.size < 2 * prep.k:  # few distinct values, or too few bins to place k centroids well
        return None
    bw, bs, bq = (np.ascontiguousarray(c) for c in table[keys].T)
    blo, bhi = _bin_ranges(keys, bw, bs, bq)
    cent_y, pinned = _optimal_on_bins(bw, bs, blo, bhi, prep, max_iter, bq=bq)
    bd = 0.5 * (cent_y[:-1] + cent_y[1:])
    if not _cuts_are_fine(bw, blo, bhi, bd, cent_y.size):
        return None
    tab = np.empty(_N_KEYS, dtype=np.int64)
    _fill_label_table(_keys_of(bd), tab)
    labels = np.empty(prep.x.size, dtype=_label_dtype(cent_y.size))
    acc = np.zeros((cent_y.size, 3))
    _assign(prep.x, prep.w, prep.weighted, prep.center, prep.scale, tab, bd, cent_y, labels, acc)
    code = tab[keys]
    whole = (code >> _SPAN_SHIFT) == 0  # bins no boundary cuts: their sums are exact per cluster
    lab = (code & _LABEL_MASK)[whole]
    return _histogram_result(prep, cent_y, pinned, labels, acc, lab, bw[whole], bs[whole], bq[whole])


def _bin_ranges(keys: np.ndarray, bw: np.ndarray, bs: np.ndarray, bq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value range modelling each bin: mean +- sqrt(3 var) (a uniform with the bin's two moments),
    clipped to the key's nominal range. A bin of one distinct value becomes a point."""
    neg = keys < _HALF_KEYS
    mag = np.where(neg, _HALF_KEYS - 1 - keys, keys - _HALF_KEYS).astype(np.int32)
    shift = 23 - _FINE_BITS
    a = (mag << shift).view(np.float32).astype(np.float64)
    b = ((mag + 1) << shift).view(np.float32).astype(np.float64)
    lo = np.where(neg, -b, a)
    hi = np.where(neg, -a, b)
    mean = bs / bw
    half_width = np.sqrt(3.0 * np.maximum(bq / bw - mean * mean, 0.0))
    lo = np.minimum(np.maximum(mean - half_width, lo), mean)
    hi = np.maximum(np.minimum(mean + half_width, hi), mean)
    return lo, hi


def _histogram_result(
    prep: _Prepared,
    cent_y: np.ndarray,
    pinned: int,
    labels: np.ndarray,
    acc: np.ndarray,
    lab: np.ndarray,
    bw: np.ndarray,
    bs: np.ndarray,
    bq: np.ndarray,
) -> KMeansResult:
    """Means and SSE from whole bins (label ``lab``) plus per-element sums ``acc`` of the cut bins.

    ``acc[j]`` holds sums of w, w*d, w*d^2 with ``d = y - cent_y[j]`` over the elements of cut bins.
    """
    k = cent_y.size
    mean = bs / bw
    m2 = np.maximum(bq - bs * mean, 0.0)
    w = np.bincount(lab, bw, k) + acc[:, 0]
    d1 = np.bincount(lab, bw * (mean - cent_y[lab]), k) + acc[:, 1]
    shift = np.where(w > 0, d1 / np.where(w > 0, w, 1.0), 0.0)
    if pinned >= 0:
        shift[pinned] = 0.0
    mu = cent_y + shift
    sse_bins = np.bincount(lab, m2 + bw * (mean - mu[lab]) ** 2, k)
    sse_cut = acc[:, 2] - 2.0 * shift * acc[:, 1] + shift * shift * acc[:, 0]
    sse = float(np.sum(sse_bins) + np.sum(np.maximum(sse_cut, 0.0))) / prep.scale**2
    return _sorted_result(_y_to_x(prep, mu, pinned), labels, sse)


def _cuts_are_fine(bw: np.ndarray, blo: np.ndarray, bhi: np.ndarray, bd: np.ndarray, k: int) -> bool:
    """True when every multi-valued bin cut by a boundary is light next to the clusters it touches."""
    if bd.size == 0:
        return True
    first = np.searchsorted(bhi, bd, side="left")  # first bin with hi >= boundary
    cut = (first < bw.size) & (blo[np.minimum(first, bw.size - 1)] < bd)
    if not np.any(cut):
        return True
    edges = np.concatenate([[0], np.searchsorted(blo, bd, side="right"), [bw.size]])
    cw = np.add.reduceat(np.concatenate([bw, [0.0]]), np.minimum(edges[:-1], bw.size))
    cw[edges[:-1] >= edges[1:]] = 0.0
    lighter = np.minimum(cw[:-1], cw[1:])
    share = bw[np.minimum(first, bw.size - 1)] / np.maximum(lighter, 1e-300)
    return bool(np.all(share[cut] <= _MAX_CUT_BIN_SHARE))


def _keys_of(v: np.ndarray) -> np.ndarray:
    """Histogram keys of y values (the same map as the passes over the data)."""
    bits = np.ascontiguousarray(v, dtype=np.float64).astype(np.float32).view(np.int32).astype(np.int64)
    return _HALF_KEYS + (((bits & 0x7FFFFFFF) >> (23 - _FINE_BITS)) ^ (bits >> 31))


# --------------------------------------------------------------------------------------------------
# DP + polish on weighted bins (shared by both paths)
# --------------------------------------------------------------------------------------------------


def _optimal_on_bins(
    bw: np.ndarray,
    bs: np.ndarray,
    blo: np.ndarray,
    bhi: np.ndarray,
    prep: _Prepared,
    max_iter: int,
    bq: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Optimal centroids (y units) for weighted bins; returns them and the pinned index (-1 if none).

    Bins are sorted, disjoint value ranges ``[blo, bhi]`` with weight ``bw``, weighted sum ``bs`` and
    weighted sum of squares ``bq`` (points: ``blo == bhi``). The exact DP runs on runs of bins merged
    into about ``_GROUPS_PER_CLUSTER * k`` groups, then again on the bins themselves with every cut
    restricted to a window of groups around its coarse position (widened while a cut lands on a window
    edge). Lloyd on the bins, splitting a cut bin as if uniform, finally moves cuts inside bins.
    """
    if bq is None:
        bq = bs * blo  # points: w * v * v
    k = prep.k
    n = bw.size
    split = int(np.searchsorted(blo, 0.0, side="left")) if prep.pin_zero else -1
    starts = _merge_bins(bw, bs, bq, max(_MIN_GROUPS, _GROUPS_PER_CLUSTER * k), split)
    gw, gs, gq = (np.add.reduceat(a, starts) for a in (bw, bs, bq))
    if prep.pin_zero:
        gcuts, pin_seg = _pinned_cuts(gw, gs, gq, int(np.searchsorted(starts, split)), k)
    else:
        gcuts, pin_seg = _optimal_cuts(*_prefix(gw, gs, gq), k), -1
    pw, ps, pq = _prefix(bw, bs, bq)
    edges = np.append(starts, n)
    cuts = edges[gcuts]
    if starts.size < n:
        cuts = _refine_cuts(pw, ps, pq, gcuts, edges, pin_seg, split)
    cent = _segment_means(pw, ps, cuts)
    if pin_seg >= 0:
        cent[pin_seg] = 0.0
    points = bool(np.all(blo == bhi))
    iters = min(max_iter, _POLISH_MAX_ITER)
    if not points and iters > 0:
        cent = _lloyd_bins(bw, bs, blo, bhi, cent, pin_seg, iters, _POLISH_TOL)
    return cent, pin_seg


def _refine_cuts(
    pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, gcuts: np.ndarray, edges: np.ndarray, pin_seg: int, split: int
) -> np.ndarray:
    """Bin-level optimal cuts by a banded DP around the group-level cuts, re-centred until stable.

    Each round solves the DP exactly with every cut restricted to the groups next to its current
    position (a window holding the current cuts, so the SSE never increases) and re-centres the
    windows on the result; it stops when no cut moves. Being optimal against all joint moves of every
    cut by up to a group, the result escapes the soft "all cuts drift together" mode that the group
    quantisation leaves behind.
    """
    k = gcuts.size - 1
    n = int(edges[-1])
    ng = edges.size - 1
    hard_lo = np.zeros(k + 1, dtype=np.int64)
    hard_hi = np.full(k + 1, n, dtype=np.int64)
    if pin_seg >= 0:  # the pinned segment [cut pin_seg, cut pin_seg + 1) contains the sign change
        hard_hi[pin_seg] = split
        hard_lo[pin_seg + 1] = split
    cuts = edges[gcuts]
    radius = max(2, math.ceil(_REFINE_CLUSTER_WIDTHS * ng / k))
    for _ in range(_REFINE_MAX_ROUNDS):
        g = np.searchsorted(edges, cuts, side="right") - 1  # group holding each cut
        wlo = np.maximum(edges[np.clip(g - radius, 0, ng)], hard_lo)
        whi = np.minimum(edges[np.clip(g + radius + 1, 0, ng)], hard_hi)
        wlo[0], whi[0], wlo[k], whi[k] = 0, 0, n, n
        new = _banded_cuts(pw, ps, pq, wlo, whi, pin_seg + 1)
        if np.array_equal(new, cuts):
            break
        cuts = new
    return cuts


def _banded_cuts(pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, wlo: np.ndarray, whi: np.ndarray, pin_layer: int) -> np.ndarray:
    """Optimal cuts with cut m restricted to ``[wlo[m], whi[m]]``; layer ``pin_layer`` costs sum w y^2."""
    k = wlo.size - 1
    prev = np.zeros(1)
    args = []
    for m in range(1, k + 1):
        cur = np.full(whi[m] - wlo[m] + 1, np.inf)
        arg = np.zeros(cur.size, dtype=np.int64)
        _band_layer(prev, wlo[m - 1], cur, wlo[m], arg, pw, ps, pq, m == pin_layer)
        args.append(arg)
        prev = cur
    cuts = np.empty(k + 1, dtype=np.int64)
    cuts[k] = wlo[k]
    for m in range(k, 0, -1):
        cuts[m - 1] = args[m - 1][cuts[m] - wlo[m]]
    return cuts


def _merge_bins(bw: np.ndarray, bs: np.ndarray, bq: np.ndarray, target: int, split: int) -> np.ndarray:
    """Start indices of at most ``target`` runs of bins, merged greedily while their scatter <= tau.

    ``tau`` is found by bisection (log scale) so that the run count lands in [target/2, target].
    ``split`` (>= 0) forces a run to start there (the sign change when zero is pinned).
    """
    n = bw.size
    if n <= target:
        return np.arange(n)
    mean = bs / bw
    m2 = np.maximum(bq - bs * mean, 0.0)
    total_w = bw.sum()
    total_mean = bs.sum() / total_w
    total_m2 = float(m2.sum() + np.sum(bw * (mean - total_mean) ** 2))
    starts = np.empty(n, dtype=np.int64)
    lo, hi = -80.0, math.log2(max(total_m2, 1e-300)) + 1.0  # log2 tau: lo -> many runs, hi -> one
    best_count, best_tau = -1, 2.0**hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        count = _greedy_runs(bw, mean, m2, 2.0**mid, split, starts)
        if count > target:
            lo = mid
        else:
            hi = mid
            if count > best_count:
                best_count, best_tau = count, 2.0**mid
            if count >= target // 2 or hi - lo < 1e-3:
                break
    count = _greedy_runs(bw, mean, m2, best_tau, split, starts)
    return starts[:count].copy()


def _prefix(w: np.ndarray, s: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prefix sums (with a leading 0) of weight, weighted sum and weighted sum of squares."""
    z = np.zeros(1)
    return (np.concatenate([z, np.cumsum(w)]), np.concatenate([z, np.cumsum(s)]), np.concatenate([z, np.cumsum(q)]))


def _segment_means(pw: np.ndarray, ps: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Means of the segments ``[cuts[i], cuts[i+1])``."""
    return (ps[cuts[1:]] - ps[cuts[:-1]]) / (pw[cuts[1:]] - pw[cuts[:-1]])


def _optimal_cuts(pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, k: int) -> np.ndarray:
    """Segment boundaries ``0 = c0 < c1 < ... < ck = n`` of the optimal k-partition of n sorted points."""
    n = pw.size - 1
    k = min(k, n)
    if k * (n + 1) <= _DP_TABLE_MAX_CELLS:
        _, arg = _dp_tables(pw, ps, pq, k, keep_costs=False)
        return _backtrack(arg, k, n)
    return _hirschberg_cuts(pw, ps, pq, k)


def _dp_tables(pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, k: int, keep_costs: bool) -> tuple[np.ndarray, np.ndarray]:
    """All DP layers: ``cost[m, j]`` = best SSE of the first j points in m clusters and its argmin."""
    n = pw.size - 1
    arg = np.zeros((k + 1, n + 1), dtype=np.int32)
    costs = np.full((k + 1, n + 1) if keep_costs else (2, n + 1), np.inf)
    prev = np.full(n + 1, np.inf)
    prev[0] = 0.0
    if keep_costs:
        costs[0] = prev
    for m in range(1, k + 1):
        cur = np.full(n + 1, np.inf)
        _dp_layer(prev, cur, arg[m], pw, ps, pq, m)
        if keep_costs:
            costs[m] = cur
        prev = cur
    if not keep_costs:
        costs[1] = prev
    return costs, arg


def _backtrack(arg: np.ndarray, k: int, n: int) -> np.ndarray:
    cuts = np.empty(k + 1, dtype=np.int64)
    cuts[k] = n
    j = n
    for m in range(k, 0, -1):
        j = int(arg[m, j])
        cuts[m - 1] = j
    return cuts


def _last_row(pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, k: int) -> np.ndarray:
    """Only the last DP layer (O(n) memory)."""
    n = pw.size - 1
    arg = np.zeros(n + 1, dtype=np.int32)
    prev = np.full(n + 1, np.inf)
    prev[0] = 0.0
    for m in range(1, k + 1):
        cur = np.full(n + 1, np.inf)
        _dp_layer(prev, cur, arg, pw, ps, pq, m)
        prev = cur
    return prev


def _hirschberg_cuts(pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, k: int) -> np.ndarray:
    """Optimal cuts with O(n) memory: split k in halves where forward + backward costs are least."""
    n = pw.size - 1
    # Prefix sums of the reversed point sequence (costs do not depend on the direction).
    rw, rs, rq = pw[-1] - pw[::-1], ps[-1] - ps[::-1], pq[-1] - pq[::-1]
    cuts = [0, n]
    stack = [(0, n, k)]
    while stack:
        lo, hi, kk = stack.pop()
        if kk <= 1:
            continue
        sub = slice(lo, hi + 1)
        if kk * (hi - lo + 1) <= _DP_TABLE_MAX_CELLS:
            sub_cuts = _optimal_cuts(pw[sub] - pw[lo], ps[sub] - ps[lo], pq[sub] - pq[lo], kk)
            cuts.extend(int(c) + lo for c in sub_cuts[1:-1])
            continue
        k1 = kk // 2
        fwd = _last_row(pw[sub] - pw[lo], ps[sub] - ps[lo], pq[sub] - pq[lo], k1)
        rsub = slice(n - hi, n - lo + 1)
        bwd = _last_row(rw[rsub] - rw[n - hi], rs[rsub] - rs[n - hi], rq[rsub] - rq[n - hi], kk - k1)
        # fwd[t - lo]: [lo, t) in k1 clusters; bwd[hi - t]: [t, hi) in kk - k1 clusters.
        total = fwd + bwd[::-1]
        t = lo + int(np.argmin(total))
        cuts.append(t)
        stack.append((lo, t, k1))
        stack.append((t, hi, kk - k1))
    return np.array(sorted(cuts), dtype=np.int64)


def _pinned_cuts(gw: np.ndarray, gs: np.ndarray, gq: np.ndarray, split: int, k: int) -> tuple[np.ndarray, int]:
    """Optimal cuts for k-1 free segments plus one pinned at 0 (negatives before ``split``).

    The pinned segment is a run around zero costing ``sum w y^2``; each side is a DP whose segment next
    to zero is the pinned one. Both sides are solved for every number of free segments and the best
    split of ``k - 1`` between them is taken. Returns the ``k + 1`` cuts and the pinned segment index.
    """
    n = gw.size
    sides = []
    for ws, ss, qs in ((gw[:split], gs[:split], gq[:split]), (gw[split:][::-1], gs[split:][::-1], gq[split:][::-1])):
        pw, ps, pq = _prefix(ws, ss, qs)
        kk = min(k - 1, ws.size)
        costs, arg = _dp_tables(pw, ps, pq, kk, keep_costs=True)
        total = costs + (pq[-1] - pq)[None, :]  # + cost of the rest with centroid 0
        best_t = np.argmin(total, axis=1)
        sides.append((arg, total[np.arange(kk + 1), best_t], best_t))
    (narg, nbest, nt), (parg, pbest, pt) = sides
    options = [(nbest[a] + pbest[k - 1 - a], a) for a in range(k) if a < nbest.size and k - 1 - a < pbest.size]
    a = min(options)[1]
    b = k - 1 - a
    neg = _backtrack(narg, a, int(nt[a]))
    pos = n - _backtrack(parg, b, int(pt[b]))[::-1]
    return np.concatenate([neg, pos]), a


# --------------------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------------------


@njit(cache=True)
def _scan_stats(x, w, weighted):  # pragma: no cover - numba
    """min, max, total weight, weighted mean, any non-finite value, any bad weight."""
    lo = np.inf
    hi = -np.inf
    probe = 0.0
    sw = 0.0
    swx = 0.0
    wprobe = 0.0
    wmin = 0.0
    n = x.size
    if weighted:
        for i in range(n):
            v = np.float64(x[i])
            wi = w[i]
            probe += v * 0.0
            wprobe += wi * 0.0
            wmin = min(wmin, wi)
            lo = min(lo, v)
            hi = max(hi, v)
            sw += wi
            swx += wi * v
    else:
        for i in range(n):
            v = np.float64(x[i])
            probe += v * 0.0
            lo = min(lo, v)
            hi = max(hi, v)
            swx += v
        sw = float(n)
    bad_x = probe != probe
    bad_w = (wprobe != wprobe) or wmin < 0.0
    mean = swx / sw if sw > 0 else 0.0
    return lo, hi, sw, mean, bad_x, bad_w


@njit(cache=True, inline="always")
def _key(bits):  # pragma: no cover - numba
    """Monotone histogram key of y from its float32 bits (int32): sign, exponent, top mantissa bits.

    Branch-free (the sign of weights is random): negative values map to ``half - 1 - magnitude_key``.
    """
    return _HALF_KEYS + (((bits & 0x7FFFFFFF) >> (23 - _FINE_BITS)) ^ (bits >> 31))


@njit(cache=True)
def _histogram(x, w, weighted, center, scale, skip_zero, table, keys):  # pragma: no cover - numba
    """Accumulate weight, sum and sum of squares of y per key; list the keys (of positive weight)."""
    n = x.size
    ybuf = np.empty(_CHUNK)
    fbuf = np.empty(_CHUNK, dtype=np.float32)
    bits = fbuf.view(np.int32)
    nk = 0
    for base in range(0, n, _CHUNK):
        cnt = min(_CHUNK, n - base)
        for i in range(cnt):
            y = (np.float64(x[base + i]) - center) * scale
            ybuf[i] = y
            fbuf[i] = np.float32(y)
        for i in range(cnt):
            wt = 1.0
            if weighted:
                wt = w[base + i]
                if wt == 0.0:
                    continue
            if skip_zero and x[base + i] == 0:
                continue
            y = ybuf[i]
            kk = _key(bits[i])
            if table[kk, 0] == 0.0:
                keys[nk] = kk
                nk += 1
            table[kk, 0] += wt
            table[kk, 1] += wt * y
            table[kk, 2] += wt * y * y
    return nk


@njit(cache=True)
def _fill_label_table(bd_keys, tab):  # pragma: no cover - numba
    """tab[key] = (first label possible for the key) | (number of boundaries inside the key) << shift."""
    j = 0
    nb = bd_keys.size
    for key in range(tab.size):
        while j < nb and bd_keys[j] < key:
            j += 1
        h = j
        while h < nb and bd_keys[h] == key:
            h += 1
        tab[key] = j | ((h - j) << _SPAN_SHIFT)


@njit(cache=True)
def _assign(x, w, weighted, center, scale, tab, bd, cent, labels, acc):  # pragma: no cover - numba
    """Nearest-centroid labels via the key table (exact comparisons only in keys a boundary cuts).

    For elements of cut keys, adds w, w*d, w*d^2 (d = y - cent[label]) to acc[label].
    """
    n = x.size
    ybuf = np.empty(_CHUNK)
    fbuf = np.empty(_CHUNK, dtype=np.float32)
    bits = fbuf.view(np.int32)
    for base in range(0, n, _CHUNK):
        cnt = min(_CHUNK, n - base)
        for i in range(cnt):
            y = (np.float64(x[base + i]) - center) * scale
            ybuf[i] = y
            fbuf[i] = np.float32(y)
        for i in range(cnt):
            code = tab[_key(bits[i])]
            lab = code & _LABEL_MASK
            span = code >> _SPAN_SHIFT
            if span != 0:
                y = ybuf[i]
                top = lab + span
                while lab < top and y > bd[lab]:
                    lab += 1
                wt = w[base + i] if weighted else 1.0
                d = y - cent[lab]
                acc[lab, 0] += wt
                acc[lab, 1] += wt * d
                acc[lab, 2] += wt * d * d
            labels[base + i] = lab


@njit(cache=True)
def _accumulate(x, w, weighted, labels, cx, acc):  # pragma: no cover - numba
    """Per-cluster sums of w, w*d, w*d^2 with d = x - cx[label]."""
    for i in range(x.size):
        lab = labels[i]
        wt = w[i] if weighted else 1.0
        d = np.float64(x[i]) - cx[lab]
        acc[lab, 0] += wt
        acc[lab, 1] += wt * d
        acc[lab, 2] += wt * d * d


@njit(cache=True)
def _greedy_runs(bw, mean, m2, tau, split, starts):  # pragma: no cover - numba
    """Greedy left-to-right runs of bins whose merged scatter stays <= tau; returns the run count."""
    n = bw.size
    starts[0] = 0
    count = 1
    cw = bw[0]
    cmean = mean[0]
    cm2 = m2[0]
    for b in range(1, n):
        nw = cw + bw[b]
        d = mean[b] - cmean
        nm2 = cm2 + m2[b] + d * d * cw * bw[b] / nw
        if nm2 <= tau and b != split:
            cw = nw
            cmean += d * bw[b] / nw
            cm2 = nm2
        else:
            starts[count] = b
            count += 1
            cw = bw[b]
            cmean = mean[b]
            cm2 = m2[b]
    return count


@njit(cache=True)
def _dp_layer(prev, cur, arg, pw, ps, pq, m):  # pragma: no cover - numba
    """One DP layer by divide and conquer: cur[j] = min_{m-1 <= i < j} prev[i] + cost(i, j), m <= j <= n.

    cost(i, j) is the SSE of points i..j-1 about their mean; the argmin is monotone in j (the cost is
    concave Monge), so each layer needs O(n log n) cost evaluations.
    """
    n = pw.size - 1
    if m == 1:
        for j in range(1, n + 1):
            ds = ps[j]
            cur[j] = pq[j] - ds * ds / pw[j]
            arg[j] = 0
        return
    stack = np.empty((4 * 64, 4), dtype=np.int64)
    sp = 0
    stack[0, 0] = m
    stack[0, 1] = n
    stack[0, 2] = m - 1
    stack[0, 3] = n - 1
    sp = 1
    while sp > 0:
        sp -= 1
        jl = stack[sp, 0]
        jr = stack[sp, 1]
        il = stack[sp, 2]
        ir = stack[sp, 3]
        if jl > jr:
            continue
        mid = (jl + jr) >> 1
        top = min(ir, mid - 1)
        wm = pw[mid]
        sm = ps[mid]
        qm = pq[mid]
        best = np.inf
        bi = il
        for i in range(il, top + 1):
            ds = sm - ps[i]
            v = prev[i] + (qm - pq[i]) - ds * ds / (wm - pw[i])
            if v < best:
                best = v
                bi = i
        cur[mid] = best
        arg[mid] = bi
        stack[sp, 0] = jl
        stack[sp, 1] = mid - 1
        stack[sp, 2] = il
        stack[sp, 3] = bi
        sp += 1
        stack[sp, 0] = mid + 1
        stack[sp, 1] = jr
        stack[sp, 2] = bi
        stack[sp, 3] = ir
        sp += 1


@njit(cache=True)
def _band_layer(prev, plo, cur, clo, arg, pw, ps, pq, pinned):  # pragma: no cover - numba
    """One banded DP layer: cur[j - clo] = min_i prev[i - plo] + cost(i, j) over i in the previous window.

    cost(i, j) is the SSE of points i..j-1 about their mean (``pinned``: about 0, and may be empty).
    Divide and conquer over j, using that the argmin is monotone in j.
    """
    phi = plo + prev.size - 1
    chi = clo + cur.size - 1
    lag = 0 if pinned else 1
    stack = np.empty((4 * 64, 4), dtype=np.int64)
    stack[0, 0] = clo
    stack[0, 1] = chi
    stack[0, 2] = plo
    stack[0, 3] = phi
    sp = 1
    while sp > 0:
        sp -= 1
        jl = stack[sp, 0]
        jr = stack[sp, 1]
        il = stack[sp, 2]
        ir = stack[sp, 3]
        if jl > jr:
            continue
        mid = (jl + jr) >> 1
        top = min(ir, mid - lag)
        wm = pw[mid]
        sm = ps[mid]
        qm = pq[mid]
        best = np.inf
        bi = il
        for i in range(il, top + 1):
            v = prev[i - plo] + (qm - pq[i])
            if not pinned:
                ds = sm - ps[i]
                v -= ds * ds / (wm - pw[i])
            if v < best:
                best = v
                bi = i
        cur[mid - clo] = best
        arg[mid - clo] = bi
        stack[sp, 0] = jl
        stack[sp, 1] = mid - 1
        stack[sp, 2] = il
        stack[sp, 3] = bi
        sp += 1
        stack[sp, 0] = mid + 1
        stack[sp, 1] = jr
        stack[sp, 2] = bi
        stack[sp, 3] = ir
        sp += 1


@njit(cache=True)
def _lloyd_bins(bw, bs, blo, bhi, cent, fixed, max_iter, tol):  # pragma: no cover - numba
    """Weighted Lloyd on sorted bins; a bin cut by boundaries is split as if uniform on [lo, hi]."""
    k = cent.size
    c = cent.copy()
    bd = np.empty(max(k - 1, 0))
    cw = np.empty(k)
    cs = np.empty(k)
    for _ in range(max_iter):
        for j in range(k - 1):
            bd[j] = 0.5 * (c[j] + c[j + 1])
        cw[:] = 0.0
        cs[:] = 0.0
        j = 0
        for b in range(bw.size):
            lo = blo[b]
            hi = bhi[b]
            while j < k - 1 and bd[j] < lo:
                j += 1
            if j == k - 1 or hi <= bd[j]:
                cw[j] += bw[b]
                cs[j] += bs[b]
                continue
            a = lo
            width = hi - lo
            jj = j
            while jj < k - 1 and bd[jj] < hi:
                piece = bw[b] * (bd[jj] - a) / width
                cw[jj] += piece
                cs[jj] += piece * 0.5 * (a + bd[jj])
                a = bd[jj]
                jj += 1
            piece = bw[b] * (hi - a) / width
            cw[jj] += piece
            cs[jj] += piece * 0.5 * (a + hi)
        shift = 0.0
        for j in range(k):
            if j == fixed or cw[j] <= 0.0:
                continue
            nc = cs[j] / cw[j]
            shift = max(shift, abs(nc - c[j]))
            c[j] = nc
        if shift <= tol:
            break
    return c
