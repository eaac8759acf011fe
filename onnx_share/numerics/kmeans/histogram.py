"""The histogram path of ``kmeans_1d(init="optimal")``: two passes over the data (rarely three), no sort.

1. Histogram pass: each value gets a key from its float32 bits (sign, exponent, top ``m`` mantissa bits,
   so bins of relative width ``2**-m`` with ``m`` = 11..13 by size: fine near zero, and fine in value
   for outliers, which keep their own bins); per key the weight and the sums of ``d`` and ``d**2`` with
   ``d = x - key edge`` (exact means and within-bin scatter). Keys span ``_BINADES`` binades below the
   largest magnitude; smaller magnitudes share the bin next to zero of their sign.
2. On the bins: ``refine.optimal_cuts``, the bins as items (their sums are exact; cuts fall between bins).
3. Label pass: a table maps each key to the cluster of its bins, but the elements of the bins next to a
   cut are gathered instead and summed into sub-bins (the next mantissa bits: ``2**-_SUB_BIN_BITS`` of
   their value). The DP re-solves every cut among those sub-bins, within its bins (the other bins stay
   whole), and the gathered elements are labelled by the nearest new centroid. Each centroid is the
   exact mean of its values and the SSE is exact.
4. Only where a boundary between the new centroids left its bins (~1% of tensors): a second label pass
   with the table of the new boundaries, exact comparisons in the keys they cut.

``cluster_histogram`` returns None when the bins cannot resolve the data (few distinct values, float64
values beyond the float32 range, a cut bin too heavy next to its clusters); the sorted path takes over.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from onnx_share.numerics.kmeans import dp
from onnx_share.numerics.kmeans.api import KMeansResult
from onnx_share.numerics.kmeans.finish import label_dtype, result_from_sums
from onnx_share.numerics.kmeans.prepare import check_scan
from onnx_share.numerics.kmeans.refine import Partition, optimal_cuts, solve_in_windows

# Histogram keys: sign, 8 exponent bits and the top m mantissa bits of float32(x), i.e. bins of relative
# width 2**-m, by input size. Finer bins cost time (more bins to solve on, a bigger table, which the
# histogram pass scatters into) and buy accuracy; coarser ones put more values next to each cut.
_FINE_BITS_BY_N = ((1 << 21, 13), (1 << 62, 11))
# Keys cover this many binades below the largest magnitude (the bin next to zero is narrower than
# 2**-_BINADES of it); the histogram table has 2 * (_BINADES + 1) * 2**m rows.
_BINADES = 20
# The cuts are re-solved on the values of the bins next to them, summed in sub-bins of relative width
# 2**-_SUB_BIN_BITS (the bins' m mantissa bits and the next ones): at least _NEAR_BINS bins either side,
# and all within _NEAR_SHARE of the distance between the centroids either side. Wider: more values to
# sum, fewer tensors with a boundary between the new centroids outside them, which costs a second label
# pass (these: ~1% of the accuracy benchmark's tensors; 2 bins alone: ~8%).
_NEAR_BINS = 2
_NEAR_SHARE = 0.01
_SUB_BIN_BITS = 17
# ... and at most about this many sub-bins in all (fewer bits where many bins are near cuts: near zero,
# where the bins are narrow next to the clusters).
_MAX_SUB_BINS = 1 << 16
# A multi-valued bin cut by a boundary may hold at most this share of the lighter neighbouring cluster's
# weight; otherwise the histogram is too coarse for the data (a narrow mode in a few bins) and the sorted
# path is used. Realistic tensors stay far below it (a few % at 1e7 values in bins of 2**-10, k=256).
_MAX_CUT_BIN_SHARE = 0.25
_CHUNK = 1024
# Label table entries (int32): first possible label in the low bits, boundaries inside the key above.
_SPAN_SHIFT = 24
_LABEL_MASK = (1 << _SPAN_SHIFT) - 1
_FLAG_NONFINITE = 1
_FLAG_BAD_WEIGHT = 2


def histogram(x: np.ndarray, w: np.ndarray | None, pin_zero: bool) -> Histogram | None:
    """The histogram pass over the values; None when the bins cannot hold them (use the sorted path).

    ``x``: flat float32 or float64 values; ``w``: flat float64 weights or None. Raises ``ValueError``
    for non-finite values or bad weights.
    """
    weighted = w is not None
    w = w if weighted else np.empty(0)
    with np.errstate(over="ignore"):  # float64 beyond the float32 range: inf, flagged below
        bits = (x if x.dtype == np.float32 else x.astype(np.float32)).view(np.int32)
    keys = _key_space(bits)
    table = np.zeros((keys.size, 3))
    seen = np.zeros(keys.size if keys.size > x.size else 0, dtype=np.bool_)  # worth it where rows outnumber x
    kmin, kmax, flags = _histogram(bits, x, w, weighted, pin_zero, *keys, table, seen)
    if flags & _FLAG_BAD_WEIGHT:
        check_scan(False, True, 1.0)
    if flags & _FLAG_NONFINITE:
        check_scan(not np.all(np.isfinite(x)), False, 1.0)
        return None  # finite float64 values beyond the float32 range
    bins = _Bins(*_bins(table, seen, kmin, kmax, *keys))
    center = 0.0 if pin_zero or bins.keys.size == 0 else float(np.sum(bins.w * bins.mean) / np.sum(bins.w))
    split = int(np.searchsorted(bins.keys, keys.top - keys.floor + 1)) if pin_zero else -1  # first positive
    return Histogram(bits, x, w, weighted, pin_zero, keys, kmin, kmax, bins, center, split)


def cluster_histogram(h: Histogram, k: int) -> KMeansResult | None:
    """Cluster into ``k`` from the histogram; None when its bins cannot resolve the data (use the sorted path)."""
    bins = h.bins
    if bins.keys.size < 2 * k or k >= _LABEL_MASK:
        return None  # few distinct values (or bins, or no weight): the sorted path is exact and cheap
    part = optimal_cuts(bins.w, *_moments(bins.w, bins.mean, bins.scatter, h.center), k, h.split)
    if not _cuts_are_fine(h.keys, bins, part, h.center):
        return None
    return _label(h.bits, h.x, h.w, h.weighted, h.pin_zero, h.keys, h.kmin, h.kmax, bins, part, h.split, h.center)


def _label(
    bits: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    weighted: bool,
    pin_zero: bool,
    keys: _KeySpace,
    kmin: int,
    kmax: int,
    bins: _Bins,
    part: Partition,
    split: int,
    center: float,
) -> KMeansResult | None:
    """The label pass and the result from the bins' cuts ``part`` (in units about ``center``).

    Every key gets its bins' cluster, but the elements of the bins near a cut are gathered and summed into
    sub-bins; the cuts are re-solved on those, and the gathered elements labelled by the new centroids (all
    elements again where a boundary between them left its bins). None: too many boundaries in one key.
    """
    lo_b, hi_b = _cut_windows(bins, part, center)
    near = _near_bins(lo_b, hi_b, bins.keys.size)
    win_lo = np.where(lo_b > 0, bins.keys[np.minimum(lo_b, bins.keys.size - 1)], kmin)
    win_hi = np.where(hi_b < bins.keys.size, bins.keys[np.minimum(hi_b, bins.keys.size - 1)] - 1, kmax)
    tab = np.empty(kmax - kmin + 1, dtype=np.int32)
    _segment_table(bins.keys, part.cuts, win_lo, win_hi, near, kmin, tab)
    labels = np.empty(x.size, dtype=label_dtype(part.cuts.size - 1))
    cap = x.size if weighted or pin_zero else round(float(np.sum(bins.w[near])))  # unweighted: the count
    n_near = int(np.sum(near))
    sub_bits = max(min(_SUB_BIN_BITS - keys.m, int(np.log2(max(_MAX_SUB_BINS // max(n_near, 1), 1)))), 0)
    sub_sums = np.zeros((n_near << sub_bits, 3))
    gathered = np.empty(cap, dtype=np.int64)
    values = np.empty(cap)
    start = np.empty(cap, dtype=np.int32)  # a first guess of each gathered label: its bin's cluster
    near_seg = (np.searchsorted(part.cuts, np.flatnonzero(near), side="right") - 1).astype(np.int32)
    count = _label_or_gather(bits, x, w, weighted, pin_zero, *keys, kmin, tab, labels, gathered, values, start,
                             near_seg, sub_bits, center, sub_sums)
    cent = _centroids_on_sub_bins(sub_sums, sub_bits, near, part, lo_b, hi_b, split) + center
    if part.pin_seg >= 0:
        cent[part.pin_seg] = 0.0
    bd = 0.5 * (cent[:-1] + cent[1:])
    acc = np.zeros((cent.size, 3))
    kb = _keys_of(bd, *keys)
    if np.all((win_lo <= kb) & (kb <= win_hi)):  # the other keys' clusters stand: label the gathered
        _relabel(values[:count], start[:count], w, weighted, pin_zero, gathered[:count], bd, cent, labels, acc)
    else:  # a boundary left its window: label every element again
        tab = np.empty(kmax - kmin + 1, dtype=np.int32)
        if _fill_label_table(kb, kmin, tab) >= 1 << (31 - _SPAN_SHIFT):
            return None  # too many boundaries inside one key for the table encoding
        _assign(bits, x, w, weighted, *keys, kmin, tab, bd, cent, labels, acc)
    _add_whole_bins(tab, kmin, bins.keys, bins.w, bins.mean, bins.scatter, cent, acc)
    return result_from_sums(cent, labels, acc, part.pin_seg)


class _KeySpace(NamedTuple):
    """Histogram keys of one tensor: ``m`` mantissa bits; magnitude keys clamped to ``[floor, top]``."""

    m: int
    floor: int
    top: int

    @property
    def size(self) -> int:
        """Number of keys: both signs of every magnitude key kept."""
        return 2 * (self.top - self.floor + 1)


class _Bins(NamedTuple):
    """The keys of positive weight, sorted, with their weight, mean and scatter (sum of w (x - mean)^2)."""

    keys: np.ndarray
    w: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray


class Histogram(NamedTuple):
    """One tensor's histogram pass: what every clustering of it on the bins (:func:`cluster_histogram`) reads."""

    bits: np.ndarray
    x: np.ndarray
    w: np.ndarray
    weighted: bool
    pin_zero: bool
    keys: _KeySpace
    kmin: int
    kmax: int
    bins: _Bins
    center: float
    split: int


def _key_space(bits: np.ndarray) -> _KeySpace:
    """The keys of the float32s of ``bits`` (int32): ``m`` by their number, from ``_BINADES`` binades below
    their largest magnitude up to it."""
    m = _fine_bits(bits.size)
    top = _largest_magnitude(bits) >> (23 - m)
    return _KeySpace(m, max(((top >> m) - _BINADES) << m, 0), top)


def _fine_bits(n: int) -> int:
    """Mantissa bits of the histogram keys for n values: finer bins while n is small enough to afford."""
    for limit, bits in _FINE_BITS_BY_N:
        if n <= limit:
            return bits
    return _FINE_BITS_BY_N[-1][1]


def _keys_of(v: np.ndarray, m: int, floor: int, top: int) -> np.ndarray:
    """Histogram keys of values (the same map as ``_key`` in the passes over the data)."""
    bits = np.ascontiguousarray(v, dtype=np.float64).astype(np.float32).view(np.int32).astype(np.int64)
    mag = np.clip((bits & 0x7FFFFFFF) >> (23 - m), floor, top) - floor
    return (top - floor + 1) + (mag ^ (bits >> 31))


def _cut_windows(bins: _Bins, part: Partition, center: float) -> tuple[np.ndarray, np.ndarray]:
    """Per inner cut, the bins ``[lo, hi)`` whose values it is re-solved among.

    At least ``_NEAR_BINS`` bins either side of it, and all bins within ``_NEAR_SHARE`` of the distance
    between the two centroids next to it (bins near zero are narrow next to the clusters there).
    """
    nb = bins.keys.size
    c = part.cuts[1:-1]
    cent = part.centroids() + center
    at = 0.5 * (bins.mean[np.clip(c - 1, 0, nb - 1)] + bins.mean[np.clip(c, 0, nb - 1)])
    reach = _NEAR_SHARE * (cent[1:] - cent[:-1])
    lo = np.maximum(np.minimum(c - _NEAR_BINS, np.searchsorted(bins.mean, at - reach)), 0)
    hi = np.minimum(np.maximum(c + _NEAR_BINS, np.searchsorted(bins.mean, at + reach)), nb)
    return lo, hi


def _key_edges(keys: np.ndarray, space: _KeySpace) -> tuple[np.ndarray, np.ndarray]:
    """The value range ``[lo, hi]`` of each key: its smallest and largest float32 (the floor key's from 0)."""
    half = space.top - space.floor + 1
    positive = keys >= half
    mag = np.where(positive, keys - half, half - 1 - keys)
    shift = 23 - space.m
    near = np.where(mag == 0, 0.0, ((mag + space.floor) << shift).astype(np.int32).view(np.float32))
    far = ((((mag + space.floor + 1) << shift) - 1).astype(np.int32).view(np.float32)).astype(np.float64)
    return np.where(positive, near, -far), np.where(positive, far, -near)


def _cuts_are_fine(space: _KeySpace, bins: _Bins, part: Partition, center: float) -> bool:
    """True when no bin of several values cut by a boundary between the bins' clusters is heavy next to them.

    A boundary (between two centroids) cuts the bin whose key range holds it; that bin may hold at most
    ``_MAX_CUT_BIN_SHARE`` of the lighter of the two clusters.
    """
    cent = part.centroids() + center
    bd = 0.5 * (cent[:-1] + cent[1:])
    j = np.searchsorted(bins.mean, bd)  # bins j - 1 and j are the ones that may hold the boundary
    cand = np.concatenate([np.maximum(j - 1, 0), np.minimum(j, bins.keys.size - 1)])
    lo, hi = _key_edges(bins.keys[cand], space)
    cut = (lo < np.tile(bd, 2)) & (np.tile(bd, 2) < hi) & (bins.scatter[cand] > 0)
    cw = np.diff(part.sums[0][part.cuts])  # the clusters' weights
    lighter = np.tile(np.minimum(cw[:-1], cw[1:]), 2)
    return bool(np.all(bins.w[cand][cut] <= _MAX_CUT_BIN_SHARE * lighter[cut]))


def _centroids_on_sub_bins(
    sub_sums: np.ndarray, sub_bits: int, near: np.ndarray, part: Partition, lo_b: np.ndarray, hi_b: np.ndarray,
    split: int
) -> np.ndarray:
    """The centroids (in the bins' units) of the cuts re-solved among the sub-bins of the bins near them.

    ``sub_sums``: per sub-bin (``2**sub_bits`` per bin flagged ``near``, in order) the sums of w, w*d and
    w*d^2. Cut m may fall between any two sub-bins of the bins ``[lo_b, hi_b)`` around it, the DP
    solving all cuts jointly on prefix sums that are exact at every such position.
    """
    nb = near.size
    filled = np.flatnonzero(sub_sums[:, 0] > 0)
    if filled.size == 0:  # no inner cut (k = 1)
        return part.centroids()
    g = np.empty(filled.size + nb + 2, dtype=np.int64)
    edge_pos = np.full(nb + 1, -1, dtype=np.int64)
    item = sub_sums[filled]
    sums, g = _positions(near, *part.sums, *(np.ascontiguousarray(c) for c in item.T),
                         np.flatnonzero(near)[filled >> sub_bits], g, edge_pos)
    lo = np.concatenate([[0], edge_pos[lo_b], [g.size - 1]])
    hi = np.concatenate([[0], edge_pos[hi_b], [g.size - 1]])
    split_at = int(np.searchsorted(g, 2 * split)) if split >= 0 else -1
    cuts = solve_in_windows(*sums, lo, hi, part.pin_seg, split_at)
    return dp.segment_means(sums[0], sums[1], cuts)


# --------------------------------------------------------------------------------------------------
# numba kernels: the passes over the data, and the bins
# --------------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _key(bits, m, floor, top):  # pragma: no cover - numba
    """Monotone histogram key of a float32 given as its int32 bits: sign, exponent, top m mantissa bits.

    The magnitude key (exponent and top m mantissa bits) is clamped to ``[floor, top]``; keys run from 0
    to ``2 * (top - floor + 1) - 1``. Branch-free (the sign of weights is random): negative values map
    below ``top - floor + 1``, mirrored.
    """
    mag = min(max((bits & 0x7FFFFFFF) >> (23 - m), floor), top) - floor
    return (top - floor + 1) + (mag ^ (bits >> 31))


@njit(cache=True, nogil=True)
def _largest_magnitude(bits):  # pragma: no cover - numba
    """The largest of the int32 bits with the sign bit cleared: the largest magnitude's bits (NaN above inf)."""
    top = 0
    for i in range(bits.size):
        top = max(top, bits[i] & 0x7FFFFFFF)
    return top


@njit(cache=True, nogil=True)
def _histogram(bits, x, w, weighted, skip_zero, m, floor, top, table, seen):  # pragma: no cover - numba
    """Per key: weight, and sums of w*d and w*d^2 with d = x - (the key's edge nearest zero: 0 for the key
    of magnitudes up to ``floor``); ``seen`` (unless empty) flags the keys of positive weight.

    ``bits``: the int32 bits of float32(x). d is computed in float32, exactly, when x is float32 (same
    sign and binade). Returns (smallest key, largest key, flags) over all values (zeros and zero
    weights included): _FLAG_NONFINITE for a value that is not a finite float32, _FLAG_BAD_WEIGHT for a
    negative or non-finite weight. Vectorisable loops first, then one scatter loop.
    """
    n = x.size
    rbuf = np.empty(_CHUNK, dtype=np.float32)
    rbits = rbuf.view(np.int32)
    dbuf = np.empty(_CHUNK)
    wbuf = np.ones(_CHUNK)
    kbuf = np.empty(_CHUNK, dtype=np.int64)
    edge_mask = np.int32(~((1 << (23 - m)) - 1))
    sign_mask = np.int32(-0x80000000)
    kmin = np.int64(1) << 62
    kmax = np.int64(-1)
    nonfinite = False
    bad_weight = False
    track = seen.size > 0
    for base in range(0, n, _CHUNK):
        cnt = min(_CHUNK, n - base)
        for i in range(cnt):
            b = bits[base + i]
            rbits[i] = b & (edge_mask if (b & 0x7FFFFFFF) >> (23 - m) > floor else sign_mask)
            nonfinite |= (b & 0x7F800000) == 0x7F800000
            kk = _key(b, m, floor, top)
            kbuf[i] = kk
            kmin = min(kmin, kk)
            kmax = max(kmax, kk)
        for i in range(cnt):  # float32 - float32 for float32 x: exact
            dbuf[i] = np.float64(x[base + i] - rbuf[i])
        if not (weighted or skip_zero):
            for i in range(cnt):
                kk = kbuf[i]
                d = dbuf[i]
                if track:
                    seen[kk] = True
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
            if track:
                seen[kk] |= wbuf[i] > 0.0
            table[kk, 0] += wbuf[i]
            table[kk, 1] += wd
            table[kk, 2] += wd * dbuf[i]
    flags = (_FLAG_NONFINITE if nonfinite else 0) | (_FLAG_BAD_WEIGHT if bad_weight else 0)
    return kmin, kmax, flags


@njit(cache=True, nogil=True)
def _fill_label_table(bd_keys, kmin, tab):  # pragma: no cover - numba
    """tab[key - kmin] = first label possible for the key | (boundaries inside the key) << _SPAN_SHIFT.

    ``bd_keys``: the boundaries' keys (sorted). Returns the most boundaries inside one key.
    """
    nb = bd_keys.size
    size = tab.size
    pos = 0  # table entries below pos are filled
    max_span = 0
    j = 0
    while j < nb:
        key = bd_keys[j]
        h = j
        while h < nb and bd_keys[h] == key:
            h += 1
        end = min(max(key - kmin, pos), size)
        tab[pos:end] = j  # keys between the boundaries: label j, no comparison
        if 0 <= key - kmin < size:
            tab[key - kmin] = j | ((h - j) << _SPAN_SHIFT)
            max_span = max(max_span, h - j)
            end = key - kmin + 1
        pos = end
        j = h
    tab[pos:] = nb
    return max_span


@njit(cache=True, nogil=True)
def _assign(bits, x, w, weighted, m, floor, top, kmin, tab, bd, cent, labels, acc):  # pragma: no cover - numba
    """Nearest-centroid labels via the key table (exact comparisons only in keys a boundary cuts).

    ``bits``: the int32 bits of float32(x). For elements of cut keys, adds w, w*d, w*d^2
    (d = x - cent[label]) to acc[label].
    """
    for i in range(x.size):
        code = tab[_key(bits[i], m, floor, top) - kmin]
        lab = code & _LABEL_MASK
        span = code >> _SPAN_SHIFT
        if span != 0:
            xi = np.float64(x[i])
            last = lab + span
            while lab < last and xi > bd[lab]:
                lab += 1
            wt = w[i] if weighted else 1.0
            d = xi - cent[lab]
            acc[lab, 0] += wt
            acc[lab, 1] += wt * d
            acc[lab, 2] += wt * d * d
        labels[i] = lab


@njit(cache=True, nogil=True)
def _bins(table, seen, kmin, kmax, m, floor, top):  # pragma: no cover - numba
    """The fields of ``_Bins``: the keys of positive weight (flagged by ``seen``, or when it is empty by
    the table) with their weight, mean and scatter."""
    filled = seen
    if filled.size == 0:  # not tracked: from the table's weights
        filled = np.zeros(table.shape[0], dtype=np.bool_)
        for kk in range(kmin, kmax + 1):
            filled[kk] = table[kk, 0] > 0
    count = 0
    for kk in range(kmin, kmax + 1):
        count += filled[kk]
    keys = np.empty(count + 1, dtype=np.int64)
    b = 0
    for kk in range(kmin, kmax + 1):  # branch-free: the filled keys are a random ~10-40% of the range
        keys[b] = kk
        b += filled[kk]
    keys = keys[:count]
    bw = np.empty(count)
    mean = np.empty(count)
    scatter = np.empty(count)
    half = top - floor + 1
    one = 1 << m
    unit = np.empty(256)  # spacing of the keys' edges in each binade (the subnormals' like the first's)
    for e in range(256):
        unit[e] = 2.0 ** (max(e, 1) - 127 - m)
    for b in range(count):
        kk = keys[b]
        mag = kk - half if kk >= half else half - 1 - kk
        e = (mag + floor) >> m  # the float32 exponent field, and the top mantissa bits with the implicit 1
        frac = ((mag + floor) & (one - 1)) + (one if e > 0 else 0)
        near = frac * unit[e] if mag > 0 else 0.0  # the key's edge nearer zero (0 for the floor key)
        wt = table[kk, 0]
        s = table[kk, 1]
        bw[b] = wt
        mean[b] = (near if kk >= half else -near) + s / wt
        scatter[b] = max(table[kk, 2] - s * s / wt, 0.0)
    return keys, bw, mean, scatter


@njit(cache=True, nogil=True)
def _moments(bw, mean, scatter, center):  # pragma: no cover - numba
    """Per bin the sums of w * mu and w * mu**2 (with its scatter), mu = mean - center."""
    s = np.empty(bw.size)
    q = np.empty(bw.size)
    for b in range(bw.size):
        mu = mean[b] - center
        s[b] = bw[b] * mu
        q[b] = s[b] * mu + scatter[b]
    return s, q


@njit(cache=True, nogil=True)
def _add_whole_bins(tab, kmin, keys, bw, mean, scatter, cent, acc):  # pragma: no cover - numba
    """Add each bin that the table gives one cluster to its sums of w, w*d, w*d^2 (d = x - cent[label]).

    The others (a boundary inside the key, or -1: near a cut) had their elements summed one by one.
    """
    for b in range(keys.size):
        code = tab[keys[b] - kmin]
        if code >> _SPAN_SHIFT != 0:
            continue
        lab = code & _LABEL_MASK
        d = mean[b] - cent[lab]
        acc[lab, 0] += bw[b]
        acc[lab, 1] += bw[b] * d
        acc[lab, 2] += scatter[b] + bw[b] * d * d


@njit(cache=True, nogil=True)
def _segment_table(bkeys, cuts, win_lo, win_hi, near, kmin, tab):  # pragma: no cover - numba
    """tab[key - kmin] = the cluster of the bins' partition that the key falls in (the lower one between
    two clusters' bins); for the keys of the windows ``[win_lo, win_hi]`` around the inner cuts, -2 - the
    rank of its bin among the ``near`` ones, or -1 for a key of no bin."""
    start = 0
    for j in range(1, cuts.size - 1):  # cluster j - 1 up to the key below bin cuts[j]
        end = bkeys[cuts[j]] - kmin
        tab[start:end] = j - 1
        start = end
    tab[start:] = cuts.size - 2
    for j in range(win_lo.size):
        tab[win_lo[j] - kmin : win_hi[j] - kmin + 1] = -1
    rank = 0
    for b in range(bkeys.size):
        if near[b]:
            tab[bkeys[b] - kmin] = -2 - rank
            rank += 1


@njit(cache=True, nogil=True)
def _label_or_gather(
    bits, x, w, weighted, skip_zero, m, floor, top, kmin, tab, labels, gathered, values, start, near_seg, sub_bits,
    center, sub_sums
):  # pragma: no cover - numba
    """Label each element by its key's cluster, or, for the keys near a cut (< 0), add its index, value
    and bin's cluster (``near_seg`` by the bin's rank; 0 for a key of no bin) to ``gathered``, ``values``
    and ``start``, and, in a bin (<= -2), its w, w*d, w*d^2 (d = x - center) to its sub-bin's sums.

    ``bits``: of float32(x). A bin's sub-bins split it by the next ``sub_bits`` mantissa bits, in value
    order (magnitudes below the floor key's edge in the first). Returns the number gathered.
    """
    mask = (1 << sub_bits) - 1
    shift = 23 - m - sub_bits
    lo = floor << sub_bits
    hi = (top << sub_bits) | mask
    c = 0
    for i in range(bits.size):
        b = bits[i]
        code = tab[_key(b, m, floor, top) - kmin]
        if code >= 0:
            labels[i] = code
            continue
        xi = np.float64(x[i])
        gathered[c] = i
        values[c] = xi
        start[c] = near_seg[-2 - code] if code <= -2 else 0
        c += 1
        wt = w[i] if weighted else 1.0
        if code == -1 or not wt > 0.0 or (skip_zero and xi == 0.0):
            continue
        low = min(max((b & 0x7FFFFFFF) >> shift, lo), hi) & mask
        slot = ((-2 - code) << sub_bits) + (low if b >= 0 else mask - low)
        d = xi - center
        sub_sums[slot, 0] += wt
        sub_sums[slot, 1] += wt * d
        sub_sums[slot, 2] += wt * d * d
    return c


@njit(cache=True, nogil=True)
def _relabel(values, start, w, weighted, skip_zero, gathered, bd, cent, labels, acc):  # pragma: no cover - numba
    """Label the gathered elements (``values``, at indices ``gathered``) by the nearest centroid (ties to
    the lower), searching from the labels ``start``, and add their w, w*d, w*d^2 (d = x - cent[label]) to
    their cluster's sums (not the zeros when ``skip_zero``)."""
    for j in range(gathered.size):
        i = gathered[j]
        xi = values[j]
        lab = start[j]  # the number of boundaries below xi: at most a few away from its bin's cluster
        while lab > 0 and xi <= bd[lab - 1]:
            lab -= 1
        while lab < bd.size and xi > bd[lab]:
            lab += 1
        labels[i] = lab
        wt = w[i] if weighted else 1.0
        if skip_zero and xi == 0.0:
            continue
        d = xi - cent[lab]
        acc[lab, 0] += wt
        acc[lab, 1] += wt * d
        acc[lab, 2] += wt * d * d


@njit(cache=True, nogil=True)
def _near_bins(lo, hi, n_bins):  # pragma: no cover - numba
    """Flags of the bins in any of the windows ``[lo[j], hi[j])``."""
    near = np.zeros(n_bins, dtype=np.bool_)
    for j in range(lo.size):
        near[lo[j] : hi[j]] = True
    return near


@njit(cache=True, nogil=True)
def _positions(near, pw0, ps0, pq0, w, s, q, b_of, g, edge_pos):  # pragma: no cover - numba
    """Prefix sums of w, w*v, w*v^2 at every position a re-solved cut may take, in order.

    The positions: 0, n, and in each run of ``near`` bins its edges and the places between two of its
    items (sums ``w, s, q``, sorted, in bins ``b_of``), from the bins' prefix sums ``pw0, ps0, pq0``.
    Fills ``g`` (returned trimmed) with each position's place among the bins (2 * b at the edge before
    bin b, 2 * b + 1 inside it) and ``edge_pos[b]`` with the position of edge b (or -1).
    """
    n_bins = near.size
    n_items = w.size
    out = np.empty((3, g.size))
    c = 0
    p = 0
    for b in range(n_bins + 1):
        at_edge = b == 0 or b == n_bins or near[b] or near[b - 1]
        if at_edge:
            out[0, c] = pw0[b]
            out[1, c] = ps0[b]
            out[2, c] = pq0[b]
            g[c] = 2 * b
            edge_pos[b] = c
            c += 1
        if b == n_bins or not near[b]:
            continue
        aw = pw0[b]
        a_s = ps0[b]
        aq = pq0[b]
        while p < n_items and b_of[p] == b:
            aw += w[p]
            a_s += s[p]
            aq += q[p]
            p += 1
            if p < n_items and b_of[p] == b:  # between two items of the bin
                out[0, c] = aw
                out[1, c] = a_s
                out[2, c] = aq
                g[c] = 2 * b + 1
                c += 1
    return (out[0, :c], out[1, :c], out[2, :c]), g[:c]
