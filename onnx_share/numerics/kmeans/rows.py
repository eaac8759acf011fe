"""Many small clusterings in one call: ``kmeans_1d(row, k)`` for every row of a [G, M] array, in numba.

A codebook per channel or group is thousands of clusterings of a few hundred to a few thousand values each,
where the Python around the kernels of the sorted path (``prepare``, ``refine.optimal_cuts``, ``finish``: ~1 ms
a call) costs more than their work and holds the GIL. ``cluster_rows`` runs that same sorted path, step for step
and in the same order of floating-point operations, for all rows in one kernel that releases the GIL: each row's
result equals ``kmeans_1d(row, k)`` (default ``init="optimal"``, no pinned zero) up to the order of additions
inside one prefix sum, which is the same too. Rows that pin zero or are too long for the sorted path are left to
``kmeans_1d``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from onnx_share.numerics.kmeans import dp, prepare, refine


def cluster_rows(x: np.ndarray, w: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster each row of ``x`` [G, M] (float32 or float64, finite) into at most ``k`` centroids.

    ``w``: non-negative weights [G, M] with a positive sum per row, or None. Returns centroids [G, k] (float64,
    sorted; a row with ``m < k`` distinct values repeats its last centroid), labels [G, M] (uint8 for
    ``k <= 256``, else int32) and the SSE per row.
    """
    weighted = w is not None
    cent = np.empty((x.shape[0], k))
    labels = np.empty(x.shape, dtype=np.uint8 if k <= 256 else np.int32)
    sse = np.empty(x.shape[0])
    _cluster_rows(x, w if weighted else np.empty((0, 0)), weighted, k, cent, labels, sse)
    return cent, labels, sse


@njit(cache=True, nogil=True)
def _cluster_rows(x, w, weighted, k, cent_out, labels_out, sse_out):  # pragma: no cover - numba
    """``_cluster_row`` for every row."""
    empty = np.empty(0)
    for g in range(x.shape[0]):
        _cluster_row(x[g], w[g] if weighted else empty, weighted, k, cent_out[g], labels_out[g], sse_out[g:g + 1])


@njit(cache=True, nogil=True)
def _cluster_row(x, w, weighted, k, cent_out, labels_out, sse_out):  # pragma: no cover - numba
    """``prepare.prepare`` + ``sorted_values.cluster_sorted`` (optimal init) + ``finish`` for one row."""
    lo, hi, _, mean, _, _ = prepare._scan_stats(x, w, weighted)  # the caller checked the values and weights
    center = min(max(mean, lo), hi)
    spread = max(hi - center, center - lo)
    scale = 1.0 if spread == 0.0 else math.ldexp(1.0, -math.frexp(spread)[1])
    if spread == 0.0:
        cent_y = np.zeros(1)
    elif k == 1:
        cent_y = np.array([(mean - center) * scale])
    else:
        values, weights = _distinct(x, w, weighted, center, scale)
        if values.size <= k:
            cent_y = values
        else:
            cuts, pw, ps = _optimal_cuts(weights, values * weights, values * values * weights, k)
            cent_y = _segment_means(pw, ps, cuts)
    _finish(x, w, weighted, center, scale, cent_y, cent_out, labels_out, sse_out)


@njit(cache=True, nogil=True)
def _segment_means(pw, ps, cuts):  # pragma: no cover - numba
    """``dp.segment_means``: the segments' means (0 for an empty one)."""
    out = np.empty(cuts.size - 1)
    for m in range(out.size):
        w = pw[cuts[m + 1]] - pw[cuts[m]]
        out[m] = ((ps[cuts[m + 1]] - ps[cuts[m]]) if w > 0 else 0.0) / (w if w > 0 else 1.0)
    return out


@njit(cache=True, nogil=True)
def _distinct(x, w, weighted, center, scale):  # pragma: no cover - numba
    """Sorted distinct working values of positive weight and their total weights (``prepare.distinct_points``:
    a stable sort, so equal values add their weights in element order, as ``np.bincount`` does)."""
    n = 0
    y = np.empty(x.size)
    wk = np.empty(x.size)
    for i in range(x.size):
        if weighted and not w[i] > 0:
            continue
        y[n] = (np.float64(x[i]) - center) * scale
        wk[n] = w[i] if weighted else 1.0
        n += 1
    y = y[:n]
    order = np.argsort(y, kind="mergesort")
    values = np.empty(n)
    weights = np.empty(n)
    u = -1
    for j in range(n):
        v = y[order[j]]
        if u < 0 or v != values[u]:
            u += 1
            values[u] = v
            weights[u] = 0.0
        weights[u] += wk[order[j]]
    return values[: u + 1], weights[: u + 1]


@njit(cache=True, nogil=True)
def _level_sums(w, s, q):  # pragma: no cover - numba
    out = np.empty((3, w.size + 1))
    dp._prefix_sums(w, s, q, out)
    return out


@njit(cache=True, nogil=True)
def _optimal_cuts(w, s, q, k):  # pragma: no cover - numba
    """``refine.optimal_cuts`` without a pinned segment: the DP on the coarsest merged level, refined level by
    level (and settled) down to the items. Returns the cuts and the items' prefix sums of w and s."""
    groups = max(refine._MIN_GROUPS, refine._GROUPS_PER_CLUSTER * k)
    dp_groups = max(refine._MIN_GROUPS, refine._DP_GROUPS_PER_CLUSTER * k)
    ws = [w]
    ss = [s]
    qs = [q]
    edges = [np.zeros(0, dtype=np.int64)]  # edges[d]: level d's units in level d - 1's indices
    while ws[-1].size > 2 * groups:
        _merge(ws, ss, qs, edges, max(groups, ws[-1].size // refine._LEVEL_RATIO))
    if len(ws) > 1 and ws[-1].size > dp_groups:
        _merge(ws, ss, qs, edges, dp_groups)
    depth_top = len(ws) - 1
    settled = 0 if len(ws) < 3 or ws[1].size < refine._SETTLE_GROUPS_PER_CLUSTER * k else 1
    top = _level_sums(ws[depth_top], ss[depth_top], qs[depth_top])
    n_top = ws[depth_top].size
    kk = min(k, n_top)
    arg = np.zeros((kk + 1, n_top + 1), dtype=np.int32)
    costs = np.full((2, n_top + 1), np.inf)
    dp._dp_all_layers(top[0], top[1], top[2], kk, False, arg, costs)
    cuts = np.empty(kk + 1, dtype=np.int64)
    cuts[kk] = n_top
    j = n_top
    for m in range(kk, 0, -1):
        j = arg[m, j]
        cuts[m - 1] = j
    sums = top
    for depth in range(depth_top - 1, -1, -1):
        sums = _level_sums(ws[depth], ss[depth], qs[depth])
        edge = edges[depth + 1]
        if depth == depth_top - 1:
            radius = max(2, math.ceil(refine._REFINE_CLUSTER_WIDTHS * (edge.size - 1) / k))
        else:
            radius = refine._REFINE_RADIUS
        cuts = _refine(sums, cuts, edge, radius)
        if depth >= settled:
            cuts = _settle(sums, cuts)
    return cuts, sums[0], sums[1]


@njit(cache=True, nogil=True)
def _merge(ws, ss, qs, edges, target):  # pragma: no cover - numba
    """Append the next coarser level (``refine._Level.merged`` without a split)."""
    w = ws[-1]
    n = w.size
    if n <= target:
        starts = np.arange(n)
    else:
        buffer = np.empty(n, dtype=np.int64)
        count = refine._greedy_starts(w, ss[-1], qs[-1], target, -1, buffer)
        starts = buffer[:count].copy()
    out = np.empty((3, starts.size))
    refine._run_sums(w, ss[-1], qs[-1], starts, out)
    ws.append(out[0].copy())
    ss.append(out[1].copy())
    qs.append(out[2].copy())
    edge = np.empty(starts.size + 1, dtype=np.int64)
    edge[:-1] = starts
    edge[-1] = n
    edges.append(edge)


@njit(cache=True, nogil=True)
def _solve(sums, lo, hi):  # pragma: no cover - numba
    """``refine.solve_in_windows`` without a pinned segment."""
    k = lo.size - 1
    n = sums.shape[1] - 1
    lo[0] = 0
    hi[0] = 0
    lo[k] = n
    hi[k] = n
    cuts = np.empty(k + 1, dtype=np.int64)
    dp._banded_dp(sums[0], sums[1], sums[2], lo, hi, 0, cuts)
    return cuts


@njit(cache=True, nogil=True)
def _refine(sums, coarse_cuts, edges, radius):  # pragma: no cover - numba
    """``refine._refine_cuts`` without a pinned segment."""
    n_coarse = edges.size - 1
    cuts = edges[coarse_cuts]
    for _ in range(refine._REFINE_MAX_ROUNDS):
        g = np.searchsorted(edges, cuts, side="right") - 1
        lo = edges[np.minimum(np.maximum(g - radius, 0), n_coarse)]
        hi = edges[np.minimum(np.maximum(g + radius + 1, 0), n_coarse)]
        new = _solve(sums, lo, hi)
        if np.array_equal(new, cuts):
            break
        cuts = new
        radius = max(2, radius // 4)
    return cuts


@njit(cache=True, nogil=True)
def _settle(sums, cuts):  # pragma: no cover - numba
    """``refine._settle_cuts`` without a pinned segment."""
    k = cuts.size - 1
    reach = refine._SETTLE_REACH
    for _ in range(refine._REFINE_MAX_ROUNDS):
        lo = np.empty(k + 1, dtype=np.int64)
        hi = np.empty(k + 1, dtype=np.int64)
        for m in range(k + 1):
            lo[m] = cuts[max(m - reach, 0)]
            hi[m] = cuts[min(m + reach, k)]
        new = _solve(sums, lo, hi)
        if np.array_equal(new, cuts):
            break
        cuts = new
    return cuts


@njit(cache=True, nogil=True)
def _finish(x, w, weighted, center, scale, cent_y, cent_out, labels_out, sse_out):  # pragma: no cover - numba
    """``finish.finish_from_centroids`` (no pinned centroid): nearest-centroid labels, centroids moved to their
    means, the SSE; centroids padded to ``cent_out``'s length with the last."""
    m = cent_y.size
    bd = 0.5 * (cent_y[:-1] + cent_y[1:])
    cx = center + cent_y / scale
    acc = np.zeros((m, 3))
    for i in range(x.size):
        y = (np.float64(x[i]) - center) * scale
        lab = np.searchsorted(bd, y, side="left")
        labels_out[i] = lab
        wt = w[i] if weighted else 1.0
        d = np.float64(x[i]) - cx[lab]
        acc[lab, 0] += wt
        acc[lab, 1] += wt * d
        acc[lab, 2] += wt * d * d
    cent = np.empty(m)
    sse = 0.0
    for j in range(m):
        if acc[j, 0] > 0:
            shift = acc[j, 1] / acc[j, 0]
            sse += max(acc[j, 2] - acc[j, 1] * shift, 0.0)
        else:
            shift = 0.0
        cent[j] = cx[j] + shift
    sse_out[0] = max(sse, 0.0)
    order = np.argsort(cent, kind="mergesort")
    ordered = True
    for j in range(m - 1):
        ordered &= cent[j] <= cent[j + 1]
    if not ordered:  # rounding swapped centroids equal within an ulp: relabel (``finish.sorted_result``)
        rank = np.empty(m, dtype=np.int64)
        for j in range(m):
            rank[order[j]] = j
        for i in range(x.size):
            labels_out[i] = rank[labels_out[i]]
        cent = cent[order]
    for j in range(cent_out.size):
        cent_out[j] = cent[min(j, m - 1)]
