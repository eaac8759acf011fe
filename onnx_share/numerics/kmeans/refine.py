"""Near-optimal cuts of weighted sorted bins (or points) into k segments: the DP on a coarse level, refined.

``optimal_on_bins`` merges the bins bottom-up (greedy runs of bounded scatter) into nested levels, each
``_LEVEL_RATIO`` times coarser, down to about ``_GROUPS_PER_CLUSTER`` groups per cluster. The exact DP
runs on the coarsest level; each finer level re-solves the DP exactly with every cut restricted to a
window around its position one level up, re-centred until stable (``_refine_cuts``). On the first finer
level the cuts are also settled (``_settle_cuts``; see there why). Last, bins of positive width next to a
cut are split into ``_SUB_BINS`` uniform slices and the cuts re-solved on the slices, so that they can
fall inside bins. Both the histogram path (bins) and the sorted path (points: zero-width bins) use it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from onnx_share.numerics.kmeans import dp

# The DP runs on about this many merged groups per cluster (and at least _MIN_GROUPS).
_GROUPS_PER_CLUSTER = 8
_MIN_GROUPS = 256
# Levels of merged bins between the DP groups and the bins, each this many times finer.
_LEVEL_RATIO = 8
# Refinement from the DP groups: each cut is searched within this many cluster widths either side,
# re-centred until stable. On the finer levels, within _REFINE_RADIUS units of the level above.
_REFINE_CLUSTER_WIDTHS = 2
_REFINE_RADIUS = 8
_REFINE_MAX_ROUNDS = 64
# Settling on the first finer level: each cut may move anywhere between its neighbours this many cuts away.
_SETTLE_REACH = 2
# Last refinement: bins of positive width are split into this many slices (modelled as uniform) and the
# cuts re-solved within _SUB_BIN_RADIUS bins, so that they can fall inside bins.
_SUB_BINS = 8
_SUB_BIN_RADIUS = 2


def optimal_on_bins(
    bw: np.ndarray,
    bs: np.ndarray,
    blo: np.ndarray,
    bhi: np.ndarray,
    k: int,
    pin_zero: bool,
    bq: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Near-optimal centroids for weighted bins; returns them and the pinned index (-1 if none).

    Bins are sorted, disjoint value ranges ``[blo, bhi]`` with weight ``bw``, weighted sum ``bs`` and
    weighted sum of squares ``bq`` (points: ``blo == bhi`` and ``bq`` may be left out). With
    ``pin_zero`` one centroid is exactly 0 and its segment holds the sign change. Up to
    ``2 * _GROUPS_PER_CLUSTER * k`` bins (at least ``2 * _MIN_GROUPS``) the DP is exact on the bins.
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
        candidates = [(a, cuts) for _, a, cuts in dp.pinned_cuts(w, s, q, sp, k)]
    else:
        candidates = [(-1, dp.optimal_cuts(*dp.prefix_sums(w, s, q), k))]
    best_cost = np.inf
    for pin_seg, coarse_cuts in candidates:
        cuts = coarse_cuts
        for depth in range(len(all_edges) - 1, -1, -1):
            w, s, q, sp = levels[depth]
            edges = all_edges[depth]
            first = depth == len(all_edges) - 1
            radius = max(2, math.ceil(_REFINE_CLUSTER_WIDTHS * (edges.size - 1) / k)) if first else _REFINE_RADIUS
            sums = dp.prefix_sums(w, s, q)
            cuts = _refine_cuts(*sums, cuts, edges, pin_seg, sp, radius)
            if first:
                cuts = _settle_cuts(*sums, cuts, pin_seg, sp)
        cost = dp.partition_cost(*dp.prefix_sums(bw, bs, bq), cuts, pin_seg) if len(candidates) > 1 else 0.0
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
        cuts = _refine_cuts(*dp.prefix_sums(bw, bs, bq), cuts, edges, pin_seg, sp, _SUB_BIN_RADIUS)
    pw, ps, _ = dp.prefix_sums(bw, bs, bq)
    cent = dp.segment_means(pw, ps, cuts)
    if pin_seg >= 0:
        cent[pin_seg] = 0.0
    return cent, pin_seg


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
    re-centres the windows on the result, narrower, until no cut moves: the result is optimal against
    every joint move of the cuts by a couple of units.
    """
    n_coarse = edges.size - 1
    cuts = edges[coarse_cuts]
    for _ in range(_REFINE_MAX_ROUNDS):
        g = np.searchsorted(edges, cuts, side="right") - 1  # coarse unit holding each cut
        lo = edges[np.clip(g - radius, 0, n_coarse)]
        hi = edges[np.clip(g + radius + 1, 0, n_coarse)]
        new = _solve_in_windows(pw, ps, pq, lo, hi, pin_seg, split)
        if np.array_equal(new, cuts):
            break
        cuts = new
        radius = max(2, radius // 4)  # later rounds only follow the cuts that still move
    return cuts


def _settle_cuts(
    pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, cuts: np.ndarray, pin_seg: int, split: int
) -> np.ndarray:
    """Re-solve with each cut anywhere between its neighbours ``_SETTLE_REACH`` cuts away, until none moves.

    The coarsest DP is exact on its groups, but their quantisation (about 8 groups per cluster, ~1%
    excess SSE) outweighs what it costs to give one region of the values a cluster too few and another
    a cluster too many (about ``3 / k**2`` of the SSE for k clusters). So the coarse solution can carry
    such a misallocation, which shifts every cut between the two regions by up to a cluster width: more
    than the refinement windows follow once they narrow (a laplace tensor of 1e6 values, k=256, was left
    ~1e-4 above the optimum). Windows spanning the neighbouring cuts let every cut move by a cluster;
    this returns the current cuts unchanged when no such move improves them. Finer levels can carry the
    same effect, smaller (up to ~2e-5 measured); settling them too would cost 1.3-2x the time.
    """
    k = cuts.size - 1
    idx = np.arange(k + 1)
    for _ in range(_REFINE_MAX_ROUNDS):
        lo = cuts[np.maximum(idx - _SETTLE_REACH, 0)]
        hi = cuts[np.minimum(idx + _SETTLE_REACH, k)]
        new = _solve_in_windows(pw, ps, pq, lo, hi, pin_seg, split)
        if np.array_equal(new, cuts):
            break
        cuts = new
    return cuts


def _solve_in_windows(
    pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, lo: np.ndarray, hi: np.ndarray, pin_seg: int, split: int
) -> np.ndarray:
    """Optimal cuts with cut m in ``[lo[m], hi[m]]``, the end cuts fixed and the pinned segment on the sign change.

    The pinned segment ``[cut pin_seg, cut pin_seg + 1)`` must contain index ``split``.
    """
    k = lo.size - 1
    n = pw.size - 1
    lo = lo.astype(np.int64)
    hi = hi.astype(np.int64)
    if pin_seg >= 0:
        hi[pin_seg] = min(hi[pin_seg], split)
        lo[pin_seg + 1] = max(lo[pin_seg + 1], split)
    lo[0], hi[0], lo[k], hi[k] = 0, 0, n, n
    return dp.banded_cuts(pw, ps, pq, lo, hi, pin_seg + 1)


def _split_bins(
    bw: np.ndarray, bs: np.ndarray, blo: np.ndarray, bhi: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split bin i into ``count[i]`` equal slices of ``[blo, bhi]`` (the bin modelled as a uniform).

    Returns the slices' weights, sums, sums of squares and the slice index where each bin starts (plus
    the total).
    """
    edges = np.concatenate([[0], np.cumsum(count)])
    owner = np.repeat(np.arange(bw.size), count)
    j = np.arange(owner.size) - edges[owner]
    width = (bhi - blo)[owner] / count[owner]
    pos = blo[owner] + (j + 0.5) * width
    w = bw[owner] / count[owner]
    # keep each bin's exact sum: shift its slices by the gap between its mean and the uniform's mean
    pos += (bs / bw - 0.5 * (blo + bhi))[owner] * (count[owner] > 1)
    return w, w * pos, w * (pos * pos + width * width / 12.0), edges


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
