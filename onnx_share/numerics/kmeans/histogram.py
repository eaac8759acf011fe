"""The histogram path of ``kmeans_1d(init="optimal")``: two passes over the data, no sort.

1. Histogram pass: each value gets a key from its float32 bits (sign, exponent, top ``m`` mantissa bits,
   so bins of relative width ``2**-m`` with ``m`` = 10..13 by size: fine near zero, and fine in value
   for outliers, which keep their own bins); per key the weight and the sums of ``d`` and ``d**2`` with
   ``d = x - key edge`` (exact means and within-bin scatter).
2. On the bins only: ``refine.optimal_on_bins``, each bin modelled as a uniform with its variance.
3. Label pass: a table maps each key to its cluster, with an exact comparison only for the few keys a
   boundary cuts; each centroid moves to the exact mean of its values and the SSE is exact.

``cluster_histogram`` returns None when the bins cannot resolve the data (few distinct values, float64
values beyond the float32 range, a cut bin too heavy next to its clusters); the sorted path takes over.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from onnx_share.numerics.kmeans.api import KMeansResult
from onnx_share.numerics.kmeans.finish import label_dtype, sorted_result
from onnx_share.numerics.kmeans.prepare import check_scan
from onnx_share.numerics.kmeans.refine import optimal_on_bins

# Histogram keys: sign, 8 exponent bits and the top m mantissa bits of float32(x), i.e. bins of relative
# width 2**-m, by input size. Finer bins cost time (more bins to solve on, a bigger table) and buy accuracy.
_FINE_BITS_BY_N = ((1 << 21, 13), (1 << 23, 11), (1 << 62, 10))
# A bin cut by a boundary may hold at most this share of the lighter neighbouring cluster's weight;
# otherwise the histogram is too coarse for the data (a narrow mode in a few bins) and the sorted path
# is used. Realistic tensors stay far below it (a few % at 1e7 values, m=10, k=256).
_MAX_CUT_BIN_SHARE = 0.25
_CHUNK = 1024
# Label table entries (int32): first possible label in the low bits, boundaries inside the key above.
_SPAN_SHIFT = 24
_LABEL_MASK = (1 << _SPAN_SHIFT) - 1
_FLAG_NONFINITE = 1
_FLAG_BAD_WEIGHT = 2


def cluster_histogram(x: np.ndarray, w: np.ndarray | None, k: int, pin_zero: bool) -> KMeansResult | None:
    """Cluster from the float-bit histogram; None when it cannot resolve the data (use the sorted path).

    ``x``: flat float32 or float64 values; ``w``: flat float64 weights or None. Raises ``ValueError``
    for non-finite values or bad weights.
    """
    m = _fine_bits(x.size)
    weighted = w is not None
    w = w if weighted else np.empty(0)
    table = np.zeros((2 << (8 + m), 3))
    kmin, kmax, flags = _histogram(x, w, weighted, pin_zero, m, table, x.dtype == np.float32)
    if flags & _FLAG_BAD_WEIGHT:
        check_scan(False, True, 1.0)
    if flags & _FLAG_NONFINITE:
        check_scan(not np.all(np.isfinite(x)), False, 1.0)
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
    cent_u, pinned = optimal_on_bins(bw, bw * mu, ulo, uhi, k, pin_zero, bq=bw * mu * mu + scatter)
    if not _cuts_are_fine(bw, ulo, uhi, 0.5 * (cent_u[:-1] + cent_u[1:])):
        return None
    cent = cent_u + center
    if pinned >= 0:
        cent[pinned] = 0.0
    bd = 0.5 * (cent[:-1] + cent[1:])
    tab = np.empty(kmax - kmin + 1, dtype=np.int32)
    if _fill_label_table(_keys_of(bd, m), kmin, tab) >= 1 << (31 - _SPAN_SHIFT):
        return None  # too many boundaries inside one key for the table encoding
    labels = np.empty(x.size, dtype=label_dtype(cent.size))
    acc = np.zeros((cent.size, 3))
    _assign(x, w, weighted, m, kmin, tab, bd, cent, labels, acc)
    code = tab[bkeys - kmin]
    whole = (code >> _SPAN_SHIFT) == 0  # bins no boundary cuts: their sums are exact per cluster
    lab = code[whole] & _LABEL_MASK
    return _histogram_result(cent, pinned, labels, acc, lab, bw[whole], mean[whole], scatter[whole])


def _fine_bits(n: int) -> int:
    """Mantissa bits of the histogram keys for n values: finer bins while n is small enough to afford."""
    for limit, bits in _FINE_BITS_BY_N:
        if n <= limit:
            return bits
    return _FINE_BITS_BY_N[-1][1]


def _key_range(keys: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per key: the smallest and largest float32 with that key, and the one of them nearest zero."""
    half = 1 << (8 + m)
    neg = keys < half
    mag = np.where(neg, half - 1 - keys, keys - half).astype(np.int32)
    shift = 23 - m
    near = (mag << shift).view(np.float32).astype(np.float64)  # nearer zero
    far = (((mag + 1) << shift) - 1).view(np.float32).astype(np.float64)
    return np.where(neg, -far, near), np.where(neg, -near, far), np.where(neg, -near, near)


def _keys_of(v: np.ndarray, m: int) -> np.ndarray:
    """Histogram keys of values (the same map as the passes over the data)."""
    return _key(np.ascontiguousarray(v, dtype=np.float64).astype(np.float32).view(np.int32).astype(np.int64), m)


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
    return sorted_result(mu, labels, sse)


# --------------------------------------------------------------------------------------------------
# numba kernels: the two passes over the data
# --------------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _key(bits, m):  # pragma: no cover - numba
    """Monotone histogram key of a float32 given as its int32 bits: sign, exponent, top m mantissa bits.

    Also takes an array of the bits (as int64). Branch-free (the sign of weights is random): negative
    values map below ``2**(8+m)``, mirrored.
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
