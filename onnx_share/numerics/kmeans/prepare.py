"""Input checks and preparation: flattened values, weights, the working coordinates and the trivial cases.

The sorted path works in ``y = (x - center) * scale`` (|y| < 1, ``scale`` a power of two): ``prepare``
turns validated values into a ``Prepared`` input, and answers the trivial cases (a constant tensor,
``k == 1``) on the spot. ``distinct_points`` gives the sorted distinct values the DP runs on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from onnx_share.numerics.kmeans import dp
from onnx_share.numerics.kmeans.api import KMeansResult
from onnx_share.numerics.kmeans.finish import finish_from_centroids


@dataclass
class Prepared:
    """Validated, flattened input and the affine map ``y = (x - center) * scale`` used internally."""

    x: np.ndarray  # flat float32 or float64
    w: np.ndarray  # flat float64 weights (empty when unweighted)
    weighted: bool
    k: int
    pin_zero: bool
    center: float
    scale: float
    trivial: KMeansResult | None = None

    def y(self) -> np.ndarray:
        """The working coordinates ``y = (x - center) * scale`` (|y| < 1), as a float64 array."""
        return (self.x.astype(np.float64) - self.center) * self.scale


@dataclass
class Points:
    """Sorted distinct values (in y units) of positive weight, with their total weights."""

    values: np.ndarray
    weights: np.ndarray

    def prefix_sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prefix sums of weight, weighted value and weighted square (what the DP solvers take)."""
        v, w = self.values, self.weights
        return dp.prefix_sums(w, v * w, v * v * w)


def validate(values: np.ndarray, sample_weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Check the shapes; flatten values (float32/float64) and weights (float64)."""
    x = flatten(values)
    if x.size == 0:
        raise ValueError("cannot cluster an empty tensor")
    if sample_weight is None:
        return x, None
    w = np.ascontiguousarray(np.asarray(sample_weight, dtype=np.float64)).reshape(-1)
    if w.size != x.size:
        raise ValueError(f"sample_weight has {w.size} elements but values has {x.size}")
    return x, w


def checked_k(k: object) -> int:
    """``k`` as an int; raises unless it is an integer >= 1."""
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def prepare(x: np.ndarray, w: np.ndarray | None, k: int, pin_zero: bool) -> Prepared:
    """Scan the values (finite? weights valid?), choose the centring/scaling, catch the trivial cases."""
    weighted = w is not None
    if w is None:
        w = np.empty(0, dtype=np.float64)
    lo, hi, total, mean, bad_x, bad_w = _scan_stats(x, w, weighted)
    check_scan(bad_x, bad_w, total)
    center = 0.0 if pin_zero else float(min(max(mean, lo), hi))  # (the clamp undoes rounding of the mean)
    spread = max(hi - center, center - lo)
    scale = 1.0 if spread == 0.0 else math.ldexp(1.0, -math.frexp(spread)[1])
    prep = Prepared(x, w, weighted, k, pin_zero, center, scale)
    if spread == 0.0:
        prep.trivial = own_centroids(prep, np.array([0.0]))
    elif prep.k == 1 and not pin_zero:
        prep.trivial = finish_from_centroids(prep, np.array([(mean - center) * scale]), pinned_idx=-1)
    elif prep.k == 1:
        prep.trivial = finish_from_centroids(prep, np.array([0.0]), pinned_idx=0)
    return prep


def check_scan(bad_x: bool, bad_w: bool, total: float) -> None:
    """Raise the input error a scan found: non-finite values, bad weights, or no weight at all."""
    if bad_x:
        raise ValueError("values contain NaN or inf; clean the tensor before clustering it")
    if bad_w:
        raise ValueError("sample_weight must be finite and non-negative")
    if not total > 0.0:
        raise ValueError("sample_weight sums to zero: nothing to cluster")


def distinct_points(prep: Prepared) -> Points:
    """Sorted distinct values of positive weight (zeros left out when pin_zero), with total weights."""
    y = prep.y()
    keep = np.ones(y.size, dtype=bool) if not prep.weighted else prep.w > 0
    if prep.pin_zero:
        keep &= prep.x != 0
    yk = y[keep]
    values, inverse = np.unique(yk, return_inverse=True)
    if prep.weighted:
        weights = np.bincount(inverse, weights=prep.w[keep], minlength=values.size)
    else:
        weights = np.bincount(inverse, minlength=values.size).astype(np.float64)
    return Points(values, weights)


def own_centroids(prep: Prepared, values_y: np.ndarray) -> KMeansResult:
    """Each distinct value its own centroid (plus 0.0 when pinned): exact, SSE 0 up to rounding."""
    cent = np.unique(values_y)
    pinned = -1
    if prep.pin_zero:
        cent = np.unique(np.concatenate([cent, [0.0]]))
        pinned = int(np.searchsorted(cent, 0.0))
    return finish_from_centroids(prep, cent, pinned)


def flatten(values: np.ndarray) -> np.ndarray:
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


@njit(cache=True, nogil=True)
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
