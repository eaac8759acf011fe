"""Near-optimal cuts of weighted sorted items (bins or points) into k segments: the DP on a coarse level, refined.

``optimal_cuts`` merges the items bottom-up (greedy runs of bounded scatter) into nested levels, each
``_LEVEL_RATIO`` times coarser, down to about ``_GROUPS_PER_CLUSTER`` groups per cluster, and for large k
one more level of about ``_DP_GROUPS_PER_CLUSTER``. The exact DP runs on the coarsest level; each finer
level re-solves the DP exactly with every cut restricted to a window around its position one level up,
re-centred until stable (``_refine_cuts``). On every finer level but the finest the cuts are also
settled (``_settle_cuts``; see there why), and on the finest too where it is the only one or the level
above it is coarse. Both the histogram path (bins, whose cuts it then re-solves on the values near them)
and the sorted path (points) use it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from onnx_share.numerics.kmeans import dp

# The refinement starts from about this many merged groups per cluster (and at least _MIN_GROUPS).
_GROUPS_PER_CLUSTER = 8
_MIN_GROUPS = 256
# The DP costs O(k * groups * log(groups)): for large k it runs on one more level, of about this many
# groups per cluster (at least _MIN_GROUPS), where the items were merged and their coarsest level has more.
_DP_GROUPS_PER_CLUSTER = 3
# Levels of merged items between the DP groups and the items, each this many times finer.
_LEVEL_RATIO = 8
# Refinement from the DP groups: each cut is searched within this many cluster widths either side,
# re-centred until stable. On the finer levels, within _REFINE_RADIUS units of the level above.
_REFINE_CLUSTER_WIDTHS = 2
_REFINE_RADIUS = 8
_REFINE_MAX_ROUNDS = 64
# Settling: each cut may move anywhere between its neighbours this many cuts away; on every finer level but
# the finest, and on the finest too where it is the only one or the level above it has under
# _SETTLE_GROUPS_PER_CLUSTER groups per cluster.
_SETTLE_REACH = 2
_SETTLE_GROUPS_PER_CLUSTER = 16


class Partition(NamedTuple):
    """Cuts of n items into segments, the pinned segment (-1 if none) and the items' prefix sums."""

    cuts: np.ndarray
    pin_seg: int
    sums: tuple[np.ndarray, np.ndarray, np.ndarray]

    def centroids(self) -> np.ndarray:
        """The segments' means (in the items' units), the pinned one exactly 0."""
        cent = dp.segment_means(self.sums[0], self.sums[1], self.cuts)
        if self.pin_seg >= 0:
            cent[self.pin_seg] = 0.0
        return cent


def optimal_cuts(w: np.ndarray, s: np.ndarray, q: np.ndarray, k: int, split: int) -> Partition:
    """Near-optimal cuts of weighted sorted items into k segments.

    Items are sorted, disjoint (points or bins) with weight ``w``, weighted sum ``s`` and weighted sum of
    squares ``q`` about any fixed origin. ``split >= 0``: one segment is pinned at 0 (costs ``sum q``)
    and holds the sign change, the items from ``split`` on being positive. Up to
    ``2 * _GROUPS_PER_CLUSTER * k`` items (at least ``2 * _MIN_GROUPS``) the DP is exact on the items.
    """
    groups = max(_MIN_GROUPS, _GROUPS_PER_CLUSTER * k)
    dp_groups = max(_MIN_GROUPS, _DP_GROUPS_PER_CLUSTER * k)
    levels = [_Level(w, s, q, split)]  # finest first
    while levels[-1].size > 2 * groups:
        levels.append(levels[-1].merged(max(groups, levels[-1].size // _LEVEL_RATIO)))
    if len(levels) > 1 and levels[-1].size > dp_groups:
        levels.append(levels[-1].merged(dp_groups))
    settled = 0 if len(levels) < 3 or levels[1].size < _SETTLE_GROUPS_PER_CLUSTER * k else 1
    top = levels[-1]
    if split >= 0:  # the split of the free centroids between the signs is a discrete choice: try the best few
        candidates = [(a, cuts) for _, a, cuts in dp.pinned_cuts(top.w, top.s, top.q, top.split, k)]
    else:
        candidates = [(-1, dp.optimal_cuts(*top.sums(), k))]
    best_cost = np.inf
    for pin_seg, coarse_cuts in candidates:
        cuts = coarse_cuts
        for depth in range(len(levels) - 2, -1, -1):
            level, edges = levels[depth], levels[depth + 1].edges
            first = depth == len(levels) - 2
            radius = max(2, math.ceil(_REFINE_CLUSTER_WIDTHS * (edges.size - 1) / k)) if first else _REFINE_RADIUS
            cuts = _refine_cuts(*level.sums(), cuts, edges, pin_seg, level.split, radius)
            if depth >= settled:
                cuts = _settle_cuts(*level.sums(), cuts, pin_seg, level.split)
        cost = dp.partition_cost(*levels[0].sums(), cuts, pin_seg) if len(candidates) > 1 else 0.0
        if cost < best_cost:
            best_cost, best_cuts, best_pin = cost, cuts, pin_seg
    return Partition(best_cuts, best_pin, levels[0].sums())


class _Level:
    """One level of merged items: weights, sums, sums of squares, the pinned split and the edges of its
    units in the level below (on merged levels), with its prefix sums computed once."""

    def __init__(self, w: np.ndarray, s: np.ndarray, q: np.ndarray, split: int, edges: np.ndarray | None = None):
        self.w, self.s, self.q, self.split = w, s, q, split
        self.edges = edges
        self._sums: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def size(self) -> int:
        """Number of items (units) on this level."""
        return self.w.size

    def sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prefix sums of w, s and q (what the DP solvers take)."""
        if self._sums is None:
            self._sums = dp.prefix_sums(self.w, self.s, self.q)
        return self._sums

    def merged(self, target: int) -> _Level:
        """The next coarser level: at most ``target`` greedy runs of this level's items (``_merge_runs``)."""
        starts = _merge_runs(self, target)
        out = np.empty((3, starts.size))
        _run_sums(self.w, self.s, self.q, starts, out)
        split = self.split if self.split < 0 else int(np.searchsorted(starts, self.split))
        return _Level(out[0], out[1], out[2], split, np.append(starts, self.size))


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
        new = solve_in_windows(pw, ps, pq, lo, hi, pin_seg, split)
        if np.array_equal(new, cuts):
            break
        cuts = new
        radius = max(2, radius // 4)  # later rounds only follow the cuts that still move
    return cuts


def _settle_cuts(
    pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, cuts: np.ndarray, pin_seg: int, split: int
) -> np.ndarray:
    """Re-solve with each cut anywhere between its neighbours ``_SETTLE_REACH`` cuts away, until none moves.

    The coarsest DP is exact on its groups, but their quantisation (3 to 8 groups per cluster, ~1%
    excess SSE or more) outweighs what it costs to give one region of the values a cluster too few and
    another a cluster too many (about ``3 / k**2`` of the SSE for k clusters). So the coarse solution can
    carry such a misallocation, which shifts every cut between the two regions by up to a cluster width:
    more than the refinement windows follow once they narrow (a laplace tensor of 1e6 values, k=256, was
    left ~1e-4 above the optimum). Windows spanning the neighbouring cuts let every cut move by a
    cluster; this returns the current cuts unchanged when no such move improves them. A level's own
    quantisation can still decide a near tie between two allocations wrongly (settled on one level of
    ~23 groups per cluster only, a laplace tensor with outliers, 2e5 values, k=64, was left 5.9e-5 above
    the optimum), hence settling on every level but the finest, which costs the most and decides least.
    """
    k = cuts.size - 1
    idx = np.arange(k + 1)
    for _ in range(_REFINE_MAX_ROUNDS):
        lo = cuts[np.maximum(idx - _SETTLE_REACH, 0)]
        hi = cuts[np.minimum(idx + _SETTLE_REACH, k)]
        new = solve_in_windows(pw, ps, pq, lo, hi, pin_seg, split)
        if np.array_equal(new, cuts):
            break
        cuts = new
    return cuts


def solve_in_windows(
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


def _merge_runs(level: _Level, target: int) -> np.ndarray:
    """Start indices of at most ``target`` runs of a level's items, merged greedily while their scatter <= tau.

    ``tau`` is searched (``_greedy_starts``) so that the run count lands in [target/2, target]. A run
    starts at the level's split (the sign change when zero is pinned).
    """
    if level.size <= target:
        return np.arange(level.size)
    starts = np.empty(level.size, dtype=np.int64)
    count = _greedy_starts(level.w, level.s, level.q, target, level.split, starts)
    return starts[:count].copy()


@njit(cache=True, nogil=True)
def _greedy_starts(w, s, q, target, split, starts):  # pragma: no cover - numba
    """Greedy runs (into ``starts``) for a tau whose run count lands in [target/2, target]; returns the count.

    Bisection on log2(tau) between 2**-80 (many runs) and twice the total scatter (one run), each step
    first trying the tau that a density of the data's shape predicts: runs of scatter tau over a smooth
    density number about ``c * tau**(-1/3)``, fitted through the last count (usually 2 passes).
    """
    total_w = 0.0
    total_s = 0.0
    total_q = 0.0
    for b in range(w.size):
        total_w += w[b]
        total_s += s[b]
        total_q += q[b]
    log_total = math.log2(max(total_q - total_s * total_s / total_w, 1e-300))
    lo = -80.0
    hi = log_total + 1.0
    goal = math.log2(0.6 * target)
    guess = log_total - 3.0 * goal  # the total's scatter split evenly over the runs of a uniform density
    best_count = -1
    best = hi
    last = np.nan
    for _ in range(60):
        x = guess if lo < guess < hi else 0.5 * (lo + hi)
        count = _greedy_runs(w, s, q, 2.0**x, split, starts)
        last = x
        if count > target:
            lo = x
        else:
            hi = x
            if count > best_count:
                best_count = count
                best = x
            if count >= target // 2 or hi - lo < 1e-3:
                break
        guess = x + 3.0 * (math.log2(count) - goal)
    if best != last:
        best_count = _greedy_runs(w, s, q, 2.0**best, split, starts)
    return best_count


@njit(cache=True, nogil=True)
def _greedy_runs(w, s, q, tau, split, starts):  # pragma: no cover - numba
    """Greedy left-to-right runs of items whose merged scatter stays <= tau; returns the run count.

    The scatter of a run, ``sum q - (sum s)**2 / sum w``, is compared times ``sum w``: no division in
    the loop.
    """
    starts[0] = 0
    count = 1
    sw = w[0]
    ss = s[0]
    sq = q[0]
    for b in range(1, w.size):
        nw = sw + w[b]
        ns = ss + s[b]
        nq = sq + q[b]
        if nq * nw - ns * ns <= tau * nw and b != split:
            sw = nw
            ss = ns
            sq = nq
        else:
            starts[count] = b
            count += 1
            sw = w[b]
            ss = s[b]
            sq = q[b]
    return count


@njit(cache=True, nogil=True)
def _run_sums(w, s, q, starts, out):  # pragma: no cover - numba
    """out[0..2, r] = sums of w, s and q over run r (items ``starts[r]`` up to the next start)."""
    n = w.size
    for r in range(starts.size):
        end = starts[r + 1] if r + 1 < starts.size else n
        sw = 0.0
        ss = 0.0
        sq = 0.0
        for b in range(starts[r], end):
            sw += w[b]
            ss += s[b]
            sq += q[b]
        out[0, r] = sw
        out[1, r] = ss
        out[2, r] = sq
