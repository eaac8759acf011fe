"""1-D weighted k-means over the values of a weight tensor: the (near-)optimal clustering, or seeded Lloyd.

The optimal 1-D k-means is a dynamic program over the sorted values (Wang & Song's Ckmeans.1d.dp): the
cost of a cluster is the SSE about its mean, which satisfies the quadrangle inequality, so a DP layer
takes O(u log u) by divide and conquer, and the argmin bound from the previous layer (Knuth) prunes most
of it. ``kmeans_1d_exact`` runs that DP on all ``u`` distinct values: exact, and slow on big tensors.

``kmeans_1d(init="optimal")`` stays within 1e-4 of the optimum (1e-5 or better in measurements) with two
passes over the data:

1. Histogram pass: each value gets a key from its float32 bits (sign, exponent, top ``m`` mantissa bits,
   so bins of relative width ``2**-m`` with ``m`` = 10..13 by size: fine near zero, and fine in value
   for outliers, which keep their own bins); per key the weight and the sums of ``d`` and ``d**2`` with
   ``d = x - key edge`` (exact means and within-bin scatter).
2. On the bins only: they are merged bottom-up (greedy Ward-like runs) into nested levels down to about
   8 groups per cluster. The exact DP runs on the coarsest level; every finer level re-solves the DP
   exactly with each cut restricted to a window around its coarser position, re-centred until stable.
   Last, each bin next to a cut is split into 8 slices (modelled as a uniform with the bin's variance)
   and the cuts are re-solved on the slices, so that boundaries can fall inside bins.
3. Label pass: a table maps each key to its cluster, with an exact comparison only for the few keys a
   boundary cuts; each centroid moves to the exact mean of its values and the SSE is exact.

Inputs of at most ``_SORT_PATH_MAX_N`` values, few distinct values, the seeded inits and data the bins
cannot resolve use the sorted-distinct-values path instead (the same DP machinery on exact points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["INIT_METHODS", "KMeansResult", "kmeans_1d", "kmeans_1d_exact"]

INIT_METHODS: tuple[str, ...] = ("optimal", "linear", "density", "random", "kmeans++")

# Histogram keys: sign, 8 exponent bits and the top m mantissa bits of float32(x), i.e. bins of relative
# width 2**-m. Finer bins cost time (more bins to solve on, a bigger table) and buy accuracy; measured
# worst relative SSE on realistic tensors: m=13 ~2e-6 up to 2M values, m=10..11 ~1e-5..3e-6 at 1e7.
_FINE_BITS_BY_N = ((1 << 21, 13), (1 << 23, 11), (1 << 62, 10))
# The DP runs on about this many merged groups per cluster (and at least _MIN_GROUPS).
_GROUPS_PER_CLUSTER = 8
_MIN_GROUPS = 256
# Levels of merged bins between the DP groups and the bins, each this many times finer.
_LEVEL_RATIO = 8
# Refinement from the DP groups: each cut is searched within this many cluster widths either side,
# re-centred until stable (one width was enough in every measured case; two leave a margin). On the
# finer levels, within _REFINE_RADIUS units of the level above.
_REFINE_CLUSTER_WIDTHS = 2
_REFINE_RADIUS = 8
# pin_zero: refine this many of the best splits of the free centroids between negatives and positives.
_PIN_CANDIDATES = 3
_REFINE_MAX_ROUNDS = 64
# Inputs up to this size use the sorted-distinct-values path (faster there: a sort is cheap, and the
# histogram's fixed costs are not).
_SORT_PATH_MAX_N = 1 << 17
# A bin cut by a boundary may hold at most this share of the lighter neighbouring cluster's weight;
# otherwise the histogram is too coarse for the data (a narrow mode in a few bins) and the sorted path
# is used. Realistic tensors stay far below it (a few % at 1e7 values, m=10, k=256).
_MAX_CUT_BIN_SHARE = 0.25
# Last refinement: bins of positive width are split into this many slices (modelled as uniform) and the
# cuts re-solved within _SUB_BIN_RADIUS bins, so that they can fall inside bins.
_SUB_BINS = 8
_SUB_BIN_RADIUS = 2
# Above this many DP table cells (k * n), the exact DP recovers the partition by Hirschberg splitting.
_DP_TABLE_MAX_CELLS = 1 << 26
_CHUNK = 1024
# Label table entries (int32): first possible label in the low bits, boundaries inside the key above.
_SPAN_SHIFT = 24
_LABEL_MASK = (1 << _SPAN_SHIFT) - 1
_FLAG_NONFINITE = 1
_FLAG_BAD_WEIGHT = 2


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
        max_iter: Lloyd iterations for the seeded inits (``"optimal"`` solves a DP, it does not iterate).
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
    x, w, k = _validate(values, k, sample_weight)
    if init == "optimal" and x.size > _SORT_PATH_MAX_N:
        result = _cluster_histogram(x, w, k, pin_zero)
        if result is not None:
            return result
    prep = _prepare(x, w, k, pin_zero)
    if prep.trivial is not None:
        return prep.trivial
    return _cluster_sorted(prep, init, seed, max_iter)


def kmeans_1d_exact(values: np.ndarray, k: int, sample_weight: np.ndarray | None = None) -> KMeansResult:
    """The exact optimal 1-D k-means: DP over all distinct values (slow; the reference for tests).

    Runs the O(k * u * log u) divide-and-conquer DP on the ``u`` sorted distinct values, with the
    partition recovered from an argmin table when it fits in memory and by Hirschberg splitting
    (twice the time, O(u) memory) otherwise. No histogram, no approximation.
    """
    prep = _prepare(*_validate(values, k, sample_weight), pin_zero=False)
    if prep.trivial is not None:
        return prep.trivial
    pts = _distinct_points(prep)
    if pts.values.size <= prep.k:
        return _own_centroids(prep, pts.values)
    pw, ps, pq = _prefix(pts.weights, pts.values * pts.weights, pts.values * pts.values * pts.weights)
    cuts = _optimal_cuts(pw, ps, pq, prep.k)
    cent_y = _segment_means(pw, ps, cuts)
    return _finish_from_centroids_y(prep, cent_y, pinned_idx=-1)


def _exact_sse(values: np.ndarray, k: int, sample_weight: np.ndarray | None = None) -> float:
    """The optimal SSE only (the exact DP's last layer, O(u) memory; for benchmarks on huge tensors)."""
    prep = _prepare(*_validate(values, k, sample_weight), pin_zero=False)
    if prep.trivial is not None:
        return prep.trivial.sse
    pts = _distinct_points(prep)
    if pts.values.size <= prep.k:
        return 0.0
    pw, ps, pq = _prefix(pts.weights, pts.values * pts.weights, pts.values * pts.values * pts.weights)
    return float(max(_last_row(pw, ps, pq, prep.k)[-1], 0.0)) / prep.scale**2


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


def _validate(
    values: np.ndarray, k: int, sample_weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Check k and the shapes; flatten values (float32/float64) and weights (float64)."""
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    x = _flatten(values)
    if x.size == 0:
        raise ValueError("cannot cluster an empty tensor")
    if sample_weight is None:
        return x, None, int(k)
    w = np.ascontiguousarray(np.asarray(sample_weight, dtype=np.float64)).reshape(-1)
    if w.size != x.size:
        raise ValueError(f"sample_weight has {w.size} elements but values has {x.size}")
    return x, w, int(k)


def _prepare(x: np.ndarray, w: np.ndarray | None, k: int, pin_zero: bool) -> _Prepared:
    """Validate the values, compute the centring/scaling of the sorted path, catch the trivial cases."""
    weighted = w is not None
    if w is None:
        w = np.empty(0, dtype=np.float64)
    lo, hi, total, mean, bad_x, bad_w = _scan_stats(x, w, weighted)
    _check_scan(bad_x, bad_w, total)
    center = 0.0 if pin_zero else float(min(max(mean, lo), hi))  # (the clamp undoes rounding of the mean)
    spread = max(hi - center, center - lo)
    scale = 1.0 if spread == 0.0 else math.ldexp(1.0, -math.frexp(spread)[1])
    prep = _Prepared(x, w, weighted, k, pin_zero, center, scale)
    if spread == 0.0:
        prep.trivial = _own_centroids(prep, np.array([0.0]))
    elif prep.k == 1 and not pin_zero:
        prep.trivial = _finish_from_centroids_y(prep, np.array([(mean - center) * scale]), pinned_idx=-1)
    elif prep.k == 1:
        prep.trivial = _finish_from_centroids_y(prep, np.array([0.0]), pinned_idx=0)
    return prep


def _check_scan(bad_x: bool, bad_w: bool, total: float) -> None:
    if bad_x:
        raise ValueError("values contain NaN or inf; clean the tensor before clustering it")
    if bad_w:
        raise ValueError("sample_weight must be finite and non-negative")
    if not total > 0.0:
        raise ValueError("sample_weight sums to zero: nothing to cluster")


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
        v, wv = pts.values, pts.weights
        cent, pinned = _optimal_on_bins(wv, v * wv, v, v, prep.k, prep.pin_zero)
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


def _cluster_histogram(
    x: np.ndarray, w: np.ndarray | None, k: int, pin_zero: bool
) -> KMeansResult | None:
    """The fast path; None when the histogram cannot resolve the data (the sorted path takes over)."""
    m = _fine_bits(x.size)
    weighted = w is not None
    w = w if weighted else np.empty(0)
    table = np.zeros((2 << (8 + m), 3))
    kmin, kmax, flags = _histogram(x, w, weighted, pin_zero, m, table, x.dtype == np.float32)
    if flags & _FLAG_BAD_WEIGHT:
        _check_scan(False, True, 1.0)
    if flags & _FLAG_NONFINITE:
        _check_scan(not np.all(np.isfinite(x)), False, 1.0)
        return None  # finite float64 values beyond the float32 range
    rows = table[kmin : kmax + 1]
    filled = np.flatnonzero(rows[:, 0] > 0)
    if filled.size < 2 * k or k >= _LABEL_MASK:
        return None  # few distinct values (or bins, or no weight): the sorted path is exact and cheap
    bkeys = filled + kmin
    rows = rows[filled]
    bw, bs, bq = (np.ascontiguousarray(c) for c in rows.T)
    lo, hi, ref = _key_range(bkeys, m)
    mean = ref + bs / bw  # the bins keep sums of x - ref (the key's edge nearest zero), for precision
    scatter = np.maximum(bq - bs * bs / bw, 0.0)
    center = 0.0 if pin_zero else float(np.sum(bw * mean) / np.sum(bw))
    mu = mean - center
    half_width = np.sqrt(3.0 * scatter / bw)  # a uniform with the bin's variance, within the key range
    ulo = np.minimum(np.maximum(mu - half_width, lo - center), mu)
    uhi = np.maximum(np.minimum(mu + half_width, hi - center), mu)
    cent_u, pinned = _optimal_on_bins(bw, bw * mu, ulo, uhi, k, pin_zero, bq=bw * mu * mu + scatter)
    if not _cuts_are_fine(bw, ulo, uhi, 0.5 * (cent_u[:-1] + cent_u[1:])):
        return None
    cent = cent_u + center
    if pinned >= 0:
        cent[pinned] = 0.0
    bd = 0.5 * (cent[:-1] + cent[1:])
    tab = np.empty(kmax - kmin + 1, dtype=np.int32)
    if _fill_label_table(_keys_of(bd, m), kmin, tab) >= 1 << (31 - _SPAN_SHIFT):
        return None  # too many boundaries inside one key for the table encoding
    labels = np.empty(x.size, dtype=_label_dtype(cent.size))
    acc = np.zeros((cent.size, 3))
    _assign(x, w, weighted, m, kmin, tab, bd, cent, labels, acc)
    code = tab[bkeys - kmin]
    whole = (code >> _SPAN_SHIFT) == 0  # bins no boundary cuts: their sums are exact per cluster
    lab = code[whole] & _LABEL_MASK
    return _histogram_result(cent, pinned, labels, acc, lab, bw[whole], mean[whole], scatter[whole])


def _key_range(keys: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per key: the smallest and largest float32 with that key, and the one of them nearest zero."""
    half = 1 << (8 + m)
    neg = keys < half
    mag = np.where(neg, half - 1 - keys, keys - half).astype(np.int32)
    shift = 23 - m
    near = (mag << shift).view(np.float32).astype(np.float64)  # nearer zero
    far = (((mag + 1) << shift) - 1).view(np.float32).astype(np.float64)
    return np.where(neg, -far, near), np.where(neg, -near, far), np.where(neg, -near, near)


def _histogram_result(
    cent: np.ndarray,
    pinned: int,
    labels: np.ndarray,
    acc: np.ndarray,
    lab: np.ndarray,
    bw: np.ndarray,
    mean: np.ndarray,
    scatter: np.ndarray,
) -> KMeansResult:
    """Means and SSE from whole bins (label ``lab``) plus the per-element sums ``acc`` of the cut bins.

    ``acc[j]`` holds sums of w, w*d, w*d^2 with ``d = x - cent[j]`` over the elements of cut bins.
    """
    k = cent.size
    w = np.bincount(lab, bw, k) + acc[:, 0]
    d1 = np.bincount(lab, bw * (mean - cent[lab]), k) + acc[:, 1]
    shift = np.where(w > 0, d1 / np.where(w > 0, w, 1.0), 0.0)
    if pinned >= 0:
        shift[pinned] = 0.0
    mu = cent + shift
    sse_bins = np.bincount(lab, scatter + bw * (mean - mu[lab]) ** 2, k)
    sse_cut = acc[:, 2] - 2.0 * shift * acc[:, 1] + shift * shift * acc[:, 0]
    sse = float(np.sum(sse_bins) + np.sum(np.maximum(sse_cut, 0.0)))
    if pinned >= 0:
        mu[pinned] = 0.0
    return _sorted_result(mu, labels, sse)


def _cuts_are_fine(bw: np.ndarray, blo: np.ndarray, bhi: np.ndarray, bd: np.ndarray) -> bool:
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


def _keys_of(v: np.ndarray, m: int) -> np.ndarray:
    """Histogram keys of values (the same map as the passes over the data)."""
    bits = np.ascontiguousarray(v, dtype=np.float64).astype(np.float32).view(np.int32).astype(np.int64)
    return (1 << (8 + m)) + (((bits & 0x7FFFFFFF) >> (23 - m)) ^ (bits >> 31))


def _fine_bits(n: int) -> int:
    """Mantissa bits of the histogram keys for n values: finer bins while n is small enough to afford."""
    for limit, bits in _FINE_BITS_BY_N:
        if n <= limit:
            return bits
    return _FINE_BITS_BY_N[-1][1]


# --------------------------------------------------------------------------------------------------
# DP and refinement on weighted bins (shared by both paths)
# --------------------------------------------------------------------------------------------------


def _optimal_on_bins(
    bw: np.ndarray,
    bs: np.ndarray,
    blo: np.ndarray,
    bhi: np.ndarray,
    k: int,
    pin_zero: bool,
    bq: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Optimal centroids (y units) for weighted bins; returns them and the pinned index (-1 if none).

    Bins are sorted, disjoint value ranges ``[blo, bhi]`` with weight ``bw``, weighted sum ``bs`` and
    weighted sum of squares ``bq`` (points: ``blo == bhi``). The bins are merged bottom-up into nested
    levels of runs, each ``_LEVEL_RATIO`` times coarser, down to about ``_GROUPS_PER_CLUSTER * k``
    groups. The exact DP runs on the coarsest level; each finer level then re-solves it with every cut
    restricted to a window around its position one level up (``_refine_cuts``). Finally bins of positive
    width are split into ``_SUB_BINS`` uniform slices and the cuts re-solved once more, so that they can
    fall inside bins.
    """
    if bq is None:
        bq = bs * blo  # points: w * v * v
    split = int(np.searchsorted(blo, 0.0, side="left")) if pin_zero else -1
    coarsest = max(_MIN_GROUPS, _GROUPS_PER_CLUSTER * k)
    levels = [(bw, bs, bq, split)]  # finest first
    all_edges = []
    while levels[-1][0].size > 2 * coarsest:
        w, s, q, sp = levels[-1]
        target = max(coarsest, w.size // _LEVEL_RATIO)
        starts = _merge_bins(w, s, q, target, sp)
        all_edges.append(np.append(starts, w.size))
        sums = tuple(np.add.reduceat(a, starts) for a in (w, s, q))
        levels.append((*sums, sp if sp < 0 else int(np.searchsorted(starts, sp))))
    w, s, q, sp = levels[-1]
    if pin_zero:  # the split of the free centroids between the signs is a discrete choice: try the best few
        candidates = [(a, cuts) for _, a, cuts in _pinned_cuts(w, s, q, sp, k)[:_PIN_CANDIDATES]]
    else:
        candidates = [(-1, _optimal_cuts(*_prefix(w, s, q), k))]
    best_cost = np.inf
    for pin_seg, coarse_cuts in candidates:
        cuts = coarse_cuts
        for depth in range(len(all_edges) - 1, -1, -1):
            w, s, q, sp = levels[depth]
            edges = all_edges[depth]
            first = depth == len(all_edges) - 1
            radius = max(2, math.ceil(_REFINE_CLUSTER_WIDTHS * (edges.size - 1) / k)) if first else _REFINE_RADIUS
            cuts = _refine_cuts(*_prefix(w, s, q), cuts, edges, pin_seg, sp, radius)
        cost = _partition_cost(*_prefix(bw, bs, bq), cuts, pin_seg) if len(candidates) > 1 else 0.0
        if cost < best_cost:
            best_cost, best_cuts, best_pin = cost, cuts, pin_seg
    cuts, pin_seg = best_cuts, best_pin
    if _SUB_BINS > 1 and not np.all(blo == bhi):
        near = np.zeros(bw.size + 1, dtype=np.int64)  # bins within _SUB_BIN_RADIUS of a cut get split
        np.add.at(near, np.clip(cuts - _SUB_BIN_RADIUS, 0, bw.size), 1)
        np.add.at(near, np.clip(cuts + _SUB_BIN_RADIUS, 0, bw.size), -1)
        split_here = (np.cumsum(near)[:-1] > 0) & (bhi > blo)
        bw, bs, bq, edges = _split_bins(bw, bs, blo, bhi, np.where(split_here, _SUB_BINS, 1))
        sp = int(edges[split]) if split >= 0 else -1
        cuts = _refine_cuts(*_prefix(bw, bs, bq), cuts, edges, pin_seg, sp, _SUB_BIN_RADIUS)
    pw, ps, _ = _prefix(bw, bs, bq)
    cent = _segment_means(pw, ps, cuts)
    if pin_seg >= 0:
        cent[pin_seg] = 0.0
    return cent, pin_seg


def _split_bins(
    bw: np.ndarray, bs: np.ndarray, blo: np.ndarray, bhi: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split bin i into ``count[i]`` equal slices of ``[blo, bhi]`` (the bin modelled as a uniform), so
    that cuts can fall inside bins. Returns the slices' weights, sums, sums of squares and the slice
    index where each bin starts (plus the total)."""
    edges = np.concatenate([[0], np.cumsum(count)])
    owner = np.repeat(np.arange(bw.size), count)
    j = np.arange(owner.size) - edges[owner]
    width = (bhi - blo)[owner] / count[owner]
    pos = blo[owner] + (j + 0.5) * width
    w = bw[owner] / count[owner]
    # keep each bin's exact sum: shift its slices by the gap between its mean and the uniform's mean
    pos += (bs / bw - 0.5 * (blo + bhi))[owner] * (count[owner] > 1)
    return w, w * pos, w * (pos * pos + width * width / 12.0), edges


def _refine_cuts(
    pw: np.ndarray,
    ps: np.ndarray,
    pq: np.ndarray,
    coarse_cuts: np.ndarray,
    edges: np.ndarray,
    pin_seg: int,
    split: int,
    radius: int,
) -> np.ndarray:
    """Optimal cuts on a finer level, each within ``radius`` coarse units of its current position.

    ``edges`` are the coarse units' boundaries in fine indices. Each round solves the DP exactly with
    every cut restricted to its window (which holds the current cuts, so the SSE never increases) and
    re-centres the windows on the result, until no cut moves: the result is optimal against every joint
    move of the cuts by up to ``radius`` units, which also lets cuts walk past the soft "all cuts drift
    together" mode that coarse quantisation leaves behind.
    """
    k = coarse_cuts.size - 1
    n = int(edges[-1])
    n_coarse = edges.size - 1
    hard_lo = np.zeros(k + 1, dtype=np.int64)
    hard_hi = np.full(k + 1, n, dtype=np.int64)
    if pin_seg >= 0:  # the pinned segment [cut pin_seg, cut pin_seg + 1) contains the sign change
        hard_hi[pin_seg] = split
        hard_lo[pin_seg + 1] = split
    cuts = edges[coarse_cuts]
    for _ in range(_REFINE_MAX_ROUNDS):
        g = np.searchsorted(edges, cuts, side="right") - 1  # coarse unit holding each cut
        wlo = np.maximum(edges[np.clip(g - radius, 0, n_coarse)], hard_lo)
        whi = np.minimum(edges[np.clip(g + radius + 1, 0, n_coarse)], hard_hi)
        wlo[0], whi[0], wlo[k], whi[k] = 0, 0, n, n
        new = _banded_cuts(pw, ps, pq, wlo, whi, pin_seg + 1)
        if np.array_equal(new, cuts):
            break
        cuts = new
        radius = max(2, radius // 4)  # later rounds only follow the cuts that still move
    return cuts


def _banded_cuts(
    pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, wlo: np.ndarray, whi: np.ndarray, pin_layer: int
) -> np.ndarray:
    """Optimal cuts with cut m restricted to ``[wlo[m], whi[m]]``; layer ``pin_layer`` costs sum w y^2."""
    cuts = np.empty(wlo.size, dtype=np.int64)
    _banded_dp(pw, ps, pq, wlo.astype(np.int64), whi.astype(np.int64), pin_layer, cuts)
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
    """Means of the segments ``[cuts[i], cuts[i+1])`` (0 for an empty one: only the pinned can be)."""
    w = pw[cuts[1:]] - pw[cuts[:-1]]
    return np.where(w > 0, ps[cuts[1:]] - ps[cuts[:-1]], 0.0) / np.where(w > 0, w, 1.0)


def _optimal_cuts(pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, k: int) -> np.ndarray:
    """Segment boundaries ``0 = c0 < c1 < ... < ck = n`` of the optimal k-partition of n sorted points."""
    n = pw.size - 1
    k = min(k, n)
    if k * (n + 1) <= _DP_TABLE_MAX_CELLS:
        _, arg = _dp_tables(pw, ps, pq, k, keep_costs=False)
        return _backtrack(arg, k, n)
    return _hirschberg_cuts(pw, ps, pq, k)


def _dp_tables(
    pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, k: int, keep_costs: bool
) -> tuple[np.ndarray, np.ndarray]:
    """All DP layers: ``cost[m, j]`` = best SSE of the first j points in m clusters and its argmin.

    Without ``keep_costs`` only the last layer's costs are returned (as row 1 of a 2-row array).
    """
    n = pw.size - 1
    arg = np.zeros((k + 1, n + 1), dtype=np.int32)
    costs = np.full((k + 1, n + 1) if keep_costs else (2, n + 1), np.inf)
    _dp_all_layers(pw, ps, pq, k, keep_costs, arg, costs)
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
    prev_arg = np.zeros(n + 1, dtype=np.int32)
    arg = np.zeros(n + 1, dtype=np.int32)
    prev = np.full(n + 1, np.inf)
    prev[0] = 0.0
    for m in range(1, k + 1):
        cur = np.full(n + 1, np.inf)
        _dp_layer(prev, cur, prev_arg, arg, pw, ps, pq, m)
        prev = cur
        prev_arg, arg = arg, prev_arg
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


def _pinned_cuts(
    gw: np.ndarray, gs: np.ndarray, gq: np.ndarray, split: int, k: int
) -> list[tuple[float, int, np.ndarray]]:
    """Optimal cuts for k-1 free segments plus one pinned at 0 (negatives before ``split``).

    The pinned segment is a run around zero costing ``sum w y^2``; each side is a DP whose segment next
    to zero is the pinned one, solved for every number of free segments. Returns, best first, for the
    ``_PIN_CANDIDATES`` best splits of the ``k - 1`` free segments between the signs: (SSE, pinned
    segment index = number of negative segments, the ``k + 1`` cuts).
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
    splits = [a for a in range(k) if a < nbest.size and k - 1 - a < pbest.size]
    costs = [float(nbest[a] + pbest[k - 1 - a]) for a in splits]
    options = []
    for i in np.argsort(costs, kind="stable")[:_PIN_CANDIDATES]:
        a = splits[i]
        b = k - 1 - a
        neg = _backtrack(narg, a, int(nt[a]))
        pos = n - _backtrack(parg, b, int(pt[b]))[::-1]
        options.append((costs[i], a, np.concatenate([neg, pos])))
    return options


def _partition_cost(pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, cuts: np.ndarray, pin_seg: int) -> float:
    """SSE of the segments between cuts (segment ``pin_seg`` about 0)."""
    w = pw[cuts[1:]] - pw[cuts[:-1]]
    s = ps[cuts[1:]] - ps[cuts[:-1]]
    q = pq[cuts[1:]] - pq[cuts[:-1]]
    cost = q - s * s / np.where(w > 0, w, 1.0)
    if pin_seg >= 0:
        cost[pin_seg] = q[pin_seg]
    return float(np.sum(cost))


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
def _key(bits, m):  # pragma: no cover - numba
    """Monotone histogram key of a float32 given as its int32 bits: sign, exponent, top m mantissa bits.

    Branch-free (the sign of weights is random): negative values map below ``2**(8+m)``, mirrored.
    """
    return (1 << (8 + m)) + (((bits & 0x7FFFFFFF) >> (23 - m)) ^ (bits >> 31))


@njit(cache=True)
def _histogram(x, w, weighted, skip_zero, m, table, exact32):  # pragma: no cover - numba
    """Per key: weight, and sums of w*d and w*d^2 with d = x - (the key's edge nearest zero).

    ``exact32``: x is float32 (d computed in float32, exactly). Returns (smallest key, largest key,
    flags) over all values (zeros and zero weights included):
    _FLAG_NONFINITE for a value that is not a finite float32, _FLAG_BAD_WEIGHT for a negative or
    non-finite weight. Vectorisable loops first, then one scatter loop.
    """
    n = x.size
    fbuf = np.empty(_CHUNK, dtype=np.float32)
    bits = fbuf.view(np.int32)
    rbuf = np.empty(_CHUNK, dtype=np.float32)
    rbits = rbuf.view(np.int32)
    dbuf = np.empty(_CHUNK)
    wbuf = np.ones(_CHUNK)
    kbuf = np.empty(_CHUNK, dtype=np.int64)
    edge_mask = np.int32(~((1 << (23 - m)) - 1))
    kmin = np.int64(1) << 62
    kmax = np.int64(-1)
    nonfinite = False
    bad_weight = False
    for base in range(0, n, _CHUNK):
        cnt = min(_CHUNK, n - base)
        for i in range(cnt):
            fbuf[i] = np.float32(x[base + i])
        for i in range(cnt):
            b = bits[i]
            rbits[i] = b & edge_mask
            nonfinite |= (b & 0x7F800000) == 0x7F800000
            kk = _key(b, m)
            kbuf[i] = kk
            kmin = min(kmin, kk)
            kmax = max(kmax, kk)
        if exact32:  # same sign and binade: the float32 difference is exact
            for i in range(cnt):
                dbuf[i] = np.float64(fbuf[i] - rbuf[i])
        else:
            for i in range(cnt):
                dbuf[i] = np.float64(x[base + i]) - np.float64(rbuf[i])
        if not (weighted or skip_zero):
            for i in range(cnt):
                kk = kbuf[i]
                d = dbuf[i]
                table[kk, 0] += 1.0
                table[kk, 1] += d
                table[kk, 2] += d * d
            continue
        for i in range(cnt):
            wt = 1.0
            if weighted:
                wt = w[base + i]
                bad_weight |= not (wt >= 0.0 and wt < np.inf)
            if skip_zero and x[base + i] == 0:
                wt = 0.0
            wbuf[i] = wt
        for i in range(cnt):
            kk = kbuf[i]
            wd = wbuf[i] * dbuf[i]
            table[kk, 0] += wbuf[i]
            table[kk, 1] += wd
            table[kk, 2] += wd * dbuf[i]
    flags = (_FLAG_NONFINITE if nonfinite else 0) | (_FLAG_BAD_WEIGHT if bad_weight else 0)
    return kmin, kmax, flags


@njit(cache=True)
def _fill_label_table(bd_keys, kmin, tab):  # pragma: no cover - numba
    """tab[key - kmin] = first label possible for the key | (boundaries inside the key) << _SPAN_SHIFT."""
    j = 0
    nb = bd_keys.size
    max_span = 0
    for i in range(tab.size):
        key = kmin + i
        while j < nb and bd_keys[j] < key:
            j += 1
        h = j
        while h < nb and bd_keys[h] == key:
            h += 1
        max_span = max(max_span, h - j)
        tab[i] = j | ((h - j) << _SPAN_SHIFT)
    return max_span


@njit(cache=True)
def _assign(x, w, weighted, m, kmin, tab, bd, cent, labels, acc):  # pragma: no cover - numba
    """Nearest-centroid labels via the key table (exact comparisons only in keys a boundary cuts).

    For elements of cut keys, adds w, w*d, w*d^2 (d = x - cent[label]) to acc[label].
    """
    n = x.size
    fbuf = np.empty(_CHUNK, dtype=np.float32)
    bits = fbuf.view(np.int32)
    cbuf = np.empty(_CHUNK, dtype=np.int32)
    for base in range(0, n, _CHUNK):
        cnt = min(_CHUNK, n - base)
        for i in range(cnt):
            fbuf[i] = np.float32(x[base + i])
        for i in range(cnt):
            cbuf[i] = tab[_key(bits[i], m) - kmin]
        for i in range(cnt):
            code = cbuf[i]
            lab = code & _LABEL_MASK
            span = code >> _SPAN_SHIFT
            if span != 0:
                xi = np.float64(x[base + i])
                top = lab + span
                while lab < top and xi > bd[lab]:
                    lab += 1
                wt = w[base + i] if weighted else 1.0
                d = xi - cent[lab]
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
def _dp_all_layers(pw, ps, pq, k, keep_costs, arg, costs):  # pragma: no cover - numba
    """Run layers 1..k of the DP (see _dp_layer) into ``arg`` and ``costs`` (all rows, or the last)."""
    n = pw.size - 1
    prev = np.full(n + 1, np.inf)
    prev[0] = 0.0
    if keep_costs:
        costs[0, :] = prev
    for m in range(1, k + 1):
        cur = np.full(n + 1, np.inf)
        _dp_layer(prev, cur, arg[m - 1], arg[m], pw, ps, pq, m)
        if keep_costs:
            costs[m, :] = cur
        prev = cur
    if not keep_costs:
        costs[1, :] = prev


@njit(cache=True)
def _dp_layer(prev, cur, prev_arg, arg, pw, ps, pq, m):  # pragma: no cover - numba
    """One DP layer by divide and conquer: cur[j] = min_{m-1 <= i < j} prev[i] + cost(i, j), m <= j <= n.

    cost(i, j) is the SSE of points i..j-1 about their mean. It satisfies the quadrangle inequality, so
    the (leftmost) argmin is monotone in j, giving O(n log n) cost evaluations per layer, and is at
    least the previous layer's argmin at the same j (more clusters: a shorter last one), which prunes
    most of the search once m is large.
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
        start = max(il, prev_arg[mid]) if m > 2 else il
        bi = start
        for i in range(start, top + 1):
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
def _banded_dp(pw, ps, pq, wlo, whi, pin_layer, cuts):  # pragma: no cover - numba
    """All layers of the banded DP (see _band_layer) and the backtrack into ``cuts``."""
    k = wlo.size - 1
    off = np.empty(k + 2, dtype=np.int64)
    off[0] = 0
    for m in range(k + 1):
        off[m + 1] = off[m] + whi[m] - wlo[m] + 1
    val = np.full(off[k + 1], np.inf)
    arg = np.zeros(off[k + 1], dtype=np.int64)
    val[0] = 0.0
    for m in range(1, k + 1):
        _band_layer(val[off[m - 1] : off[m]], wlo[m - 1], val[off[m] : off[m + 1]], wlo[m],
                    arg[off[m] : off[m + 1]], pw, ps, pq, m == pin_layer)
    cuts[k] = wlo[k]
    for m in range(k, 0, -1):
        cuts[m - 1] = arg[off[m] + cuts[m] - wlo[m]]


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
