"""The exact DP of 1-D k-means on weighted sorted items (points or bins), given as prefix sums.

A partition of ``n`` sorted items into segments is given by its cuts ``0 = c0 < c1 < ... < ck = n``;
segment ``m`` is items ``[c(m-1), c(m))`` and costs its SSE about its mean (or about 0 when pinned).
Every solver here runs the same layer step, ``_dnc_layer``: one DP layer by divide and conquer, which is
valid because the segment cost satisfies the quadrangle inequality (the argmin is monotone in the end
index). On top of it:

* ``optimal_cuts``: the full DP, with an argmin table, or Hirschberg splitting when the table is too big;
* ``last_row``: only the optimal costs of the last layer (O(n) memory);
* ``banded_cuts``: the DP with each cut restricted to a window (the refinement of ``refine``);
* ``pinned_cuts``: the DP with one segment pinned at 0, between the negative and the positive items.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Above this many DP table cells (k * n), the exact DP recovers the partition by Hirschberg splitting.
DP_TABLE_MAX_CELLS = 1 << 26
# pin_zero: the DP returns this many of the best splits of the free segments between the signs.
PIN_CANDIDATES = 3


def prefix_sums(w: np.ndarray, s: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prefix sums (with a leading 0) of weight, weighted sum and weighted sum of squares."""
    out = np.empty((3, w.size + 1))
    _prefix_sums(w, s, q, out)
    return out[0], out[1], out[2]


def segment_means(pw: np.ndarray, ps: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Means of the segments ``[cuts[i], cuts[i+1])`` (0 for an empty one: only the pinned can be)."""
    w = pw[cuts[1:]] - pw[cuts[:-1]]
    return np.where(w > 0, ps[cuts[1:]] - ps[cuts[:-1]], 0.0) / np.where(w > 0, w, 1.0)


def partition_cost(pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, cuts: np.ndarray, pin_seg: int) -> float:
    """SSE of the segments between cuts (segment ``pin_seg`` about 0)."""
    w = pw[cuts[1:]] - pw[cuts[:-1]]
    s = ps[cuts[1:]] - ps[cuts[:-1]]
    q = pq[cuts[1:]] - pq[cuts[:-1]]
    cost = q - s * s / np.where(w > 0, w, 1.0)
    if pin_seg >= 0:
        cost[pin_seg] = q[pin_seg]
    return float(np.sum(cost))


def optimal_cuts(
    pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, k: int, max_table_cells: int = DP_TABLE_MAX_CELLS
) -> np.ndarray:
    """Cuts of the optimal partition of n items into ``min(k, n)`` segments.

    With an argmin table when it has at most ``max_table_cells`` cells, else by Hirschberg splitting
    (twice the time, O(n) memory).
    """
    n = pw.size - 1
    k = min(k, n)
    if k * (n + 1) <= max_table_cells:
        _, arg = dp_tables(pw, ps, pq, k, keep_costs=False)
        return _backtrack(arg, k, n)
    return _hirschberg_cuts(pw, ps, pq, k, max_table_cells)


def dp_tables(
    pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, k: int, keep_costs: bool
) -> tuple[np.ndarray, np.ndarray]:
    """All DP layers: ``cost[m, j]`` = best SSE of the first j items in m segments and its argmin.

    Without ``keep_costs`` only the last layer's costs are returned (as row 1 of a 2-row array), and layer
    m is solved only for the ``j <= n - (k - m)`` that a partition of all n items into k segments can pass.
    """
    n = pw.size - 1
    arg = np.zeros((k + 1, n + 1), dtype=np.int32)
    costs = np.full((k + 1, n + 1) if keep_costs else (2, n + 1), np.inf)
    _dp_all_layers(pw, ps, pq, k, keep_costs, arg, costs)
    return costs, arg


def last_row(pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, k: int) -> np.ndarray:
    """Only the last DP layer: best SSE of the first j items in k segments, for every j (O(n) memory)."""
    n = pw.size - 1
    prev_arg = np.zeros(n + 1, dtype=np.int32)
    arg = np.zeros(n + 1, dtype=np.int32)
    prev = np.full(n + 1, np.inf)
    prev[0] = 0.0
    for m in range(1, k + 1):
        cur = np.full(n + 1, np.inf)
        _full_layer(prev, cur, prev_arg, arg, pw, ps, pq, m, n)
        prev = cur
        prev_arg, arg = arg, prev_arg
    return prev


def banded_cuts(
    pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, wlo: np.ndarray, whi: np.ndarray, pin_layer: int
) -> np.ndarray:
    """Optimal cuts with cut m restricted to ``[wlo[m], whi[m]]``; segment ``pin_layer`` costs ``sum w y^2``.

    ``wlo`` and ``whi`` must be non-decreasing, with ``wlo[0] = whi[0] = 0`` and ``wlo[k] = whi[k] = n``.
    """
    cuts = np.empty(wlo.size, dtype=np.int64)
    _banded_dp(pw, ps, pq, wlo.astype(np.int64), whi.astype(np.int64), pin_layer, cuts)
    return cuts


def pinned_cuts(
    gw: np.ndarray, gs: np.ndarray, gq: np.ndarray, split: int, k: int
) -> list[tuple[float, int, np.ndarray]]:
    """Optimal cuts for k-1 free segments plus one pinned at 0 (negative items before ``split``).

    The pinned segment is a run around zero costing ``sum w y^2``; each side is a DP whose segment next
    to zero is the pinned one, solved for every number of free segments. Returns, best first, for the
    ``PIN_CANDIDATES`` best splits of the ``k - 1`` free segments between the signs: (SSE, pinned
    segment index = number of negative segments, the ``k + 1`` cuts).
    """
    n = gw.size
    sides = []
    for ws, ss, qs in ((gw[:split], gs[:split], gq[:split]), (gw[split:][::-1], gs[split:][::-1], gq[split:][::-1])):
        pw, ps, pq = prefix_sums(ws, ss, qs)
        kk = min(k - 1, ws.size)
        costs, arg = dp_tables(pw, ps, pq, kk, keep_costs=True)
        total = costs + (pq[-1] - pq)[None, :]  # + cost of the rest with centroid 0
        best_t = np.argmin(total, axis=1)
        sides.append((arg, total[np.arange(kk + 1), best_t], best_t))
    (narg, nbest, nt), (parg, pbest, pt) = sides
    splits = [a for a in range(k) if a < nbest.size and k - 1 - a < pbest.size]
    costs = [float(nbest[a] + pbest[k - 1 - a]) for a in splits]
    options = []
    for i in np.argsort(costs, kind="stable")[:PIN_CANDIDATES]:
        a = splits[i]
        b = k - 1 - a
        neg = _backtrack(narg, a, int(nt[a]))
        pos = n - _backtrack(parg, b, int(pt[b]))[::-1]
        options.append((costs[i], a, np.concatenate([neg, pos])))
    return options


def _backtrack(arg: np.ndarray, k: int, n: int) -> np.ndarray:
    """Cuts of the best partition of the first n items into k segments, from the argmin table."""
    cuts = np.empty(k + 1, dtype=np.int64)
    cuts[k] = n
    j = n
    for m in range(k, 0, -1):
        j = int(arg[m, j])
        cuts[m - 1] = j
    return cuts


def _hirschberg_cuts(pw: np.ndarray, ps: np.ndarray, pq: np.ndarray, k: int, max_table_cells: int) -> np.ndarray:
    """Optimal cuts with O(n) memory: split k in halves where forward + backward costs are least."""
    n = pw.size - 1
    # Prefix sums of the reversed item sequence (costs do not depend on the direction).
    rw, rs, rq = pw[-1] - pw[::-1], ps[-1] - ps[::-1], pq[-1] - pq[::-1]
    cuts = [0, n]
    stack = [(0, n, k)]
    while stack:
        lo, hi, kk = stack.pop()
        if kk <= 1:
            continue
        sub = slice(lo, hi + 1)
        if kk * (hi - lo + 1) <= max_table_cells:
            sub_cuts = optimal_cuts(pw[sub] - pw[lo], ps[sub] - ps[lo], pq[sub] - pq[lo], kk)
            cuts.extend(int(c) + lo for c in sub_cuts[1:-1])
            continue
        k1 = kk // 2
        fwd = last_row(pw[sub] - pw[lo], ps[sub] - ps[lo], pq[sub] - pq[lo], k1)
        rsub = slice(n - hi, n - lo + 1)
        bwd = last_row(rw[rsub] - rw[n - hi], rs[rsub] - rs[n - hi], rq[rsub] - rq[n - hi], kk - k1)
        # fwd[t - lo]: [lo, t) in k1 segments; bwd[hi - t]: [t, hi) in kk - k1 segments.
        total = fwd + bwd[::-1]
        t = lo + int(np.argmin(total))
        cuts.append(t)
        stack.append((lo, t, k1))
        stack.append((t, hi, kk - k1))
    return np.array(sorted(cuts), dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _prefix_sums(w, s, q, out):  # pragma: no cover - numba
    """out[0..2] = prefix sums of w, s and q, each with a leading 0 (one pass instead of three)."""
    out[0, 0] = 0.0
    out[1, 0] = 0.0
    out[2, 0] = 0.0
    for i in range(w.size):
        out[0, i + 1] = out[0, i] + w[i]
        out[1, i + 1] = out[1, i] + s[i]
        out[2, i + 1] = out[2, i] + q[i]


@njit(cache=True, nogil=True)
def _dp_all_layers(pw, ps, pq, k, keep_costs, arg, costs):  # pragma: no cover - numba
    """Run layers 1..k of the full DP into ``arg`` and ``costs`` (all rows, or the last as row 1).

    Without ``keep_costs``, layer m ends at ``j = n - (k - m)`` (the rest of a layer is never used).
    """
    n = pw.size - 1
    prev = np.full(n + 1, np.inf)
    prev[0] = 0.0
    if keep_costs:
        costs[0, :] = prev
    for m in range(1, k + 1):
        cur = np.full(n + 1, np.inf)
        _full_layer(prev, cur, arg[m - 1], arg[m], pw, ps, pq, m, n if keep_costs else n - (k - m))
        if keep_costs:
            costs[m, :] = cur
        prev = cur
    if not keep_costs:
        costs[1, :] = prev


@njit(cache=True, nogil=True)
def _full_layer(prev, cur, prev_arg, arg, pw, ps, pq, m, jhi):  # pragma: no cover - numba
    """Layer m of the full DP: cur[j] = min_{m-1 <= i < j} prev[i] + cost(i, j) for m <= j <= jhi.

    The argmin is at least the previous layer's at the same j (more segments: a shorter last one),
    which prunes most of the search once m is large. Layer 1 has a single choice (i = 0).
    """
    if m == 1:
        for j in range(1, jhi + 1):
            ds = ps[j]
            cur[j] = pq[j] - ds * ds / pw[j]
            arg[j] = 0
        return
    _dnc_layer(prev, 0, cur, 0, arg, m, jhi, m - 1, jhi - 1, pw, ps, pq, False, prev_arg)


@njit(cache=True, nogil=True)
def _banded_dp(pw, ps, pq, wlo, whi, pin_layer, cuts):  # pragma: no cover - numba
    """All layers of the windowed DP (cut m within [wlo[m], whi[m]]) and the backtrack into ``cuts``."""
    k = wlo.size - 1
    off = np.empty(k + 2, dtype=np.int64)
    off[0] = 0
    for m in range(k + 1):
        off[m + 1] = off[m] + whi[m] - wlo[m] + 1
    val = np.full(off[k + 1], np.inf)
    arg = np.zeros(off[k + 1], dtype=np.int64)
    val[0] = 0.0
    no_bound = np.empty(0, dtype=np.int64)
    for m in range(1, k + 1):
        _dnc_layer(val[off[m - 1] : off[m]], wlo[m - 1], val[off[m] : off[m + 1]], wlo[m], arg[off[m] : off[m + 1]],
                  wlo[m], whi[m], wlo[m - 1], whi[m - 1], pw, ps, pq, m == pin_layer, no_bound)
    cuts[k] = wlo[k]
    for m in range(k, 0, -1):
        cuts[m - 1] = arg[off[m] + cuts[m] - wlo[m]]


@njit(cache=True, nogil=True)
def _dnc_layer(prev, plo, cur, clo, arg, jlo, jhi, ilo, ihi, pw, ps, pq, pinned, lower):  # pragma: no cover - numba
    """One DP layer by divide and conquer over the end index j, the only loop that searches a layer.

    For ``jlo <= j <= jhi``: ``cur[j - clo] = min_i prev[i - plo] + cost(i, j)`` over ``ilo <= i <= ihi``
    (and ``i < j``, or ``i <= j`` when ``pinned``), with the argmin in ``arg[j - clo]``. ``cost(i, j)`` is
    the SSE of items i..j-1 about their mean, or about 0 when ``pinned`` (then the segment may be empty).
    The cost satisfies the quadrangle inequality, so the (leftmost) argmin is monotone in j: each j
    searches only between its neighbours' argmins, O((n + range) log n) cost evaluations. ``lower``
    (indexed by ``j - clo``, or empty) is a known lower bound of the argmin.
    """
    lag = 0 if pinned else 1
    bounded = lower.size > 0
    stack = np.empty((4 * 64, 4), dtype=np.int64)
    stack[0, 0] = jlo
    stack[0, 1] = jhi
    stack[0, 2] = ilo
    stack[0, 3] = ihi
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
        start = max(il, lower[mid - clo]) if bounded else il
        bi = start
        for i in range(start, top + 1):
            v = prev[i - plo] + (qm - pq[i])
            weight = wm - pw[i]
            if not pinned and weight > 0:  # weights far below the prefix sum can vanish from it: no mean to take
                ds = sm - ps[i]
                v -= ds * ds / weight
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
