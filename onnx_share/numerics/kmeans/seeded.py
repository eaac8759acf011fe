"""The seeded inits (``"linear"``, ``"density"``, ``"random"``, ``"kmeans++"``) and plain weighted Lloyd.

Kept for experiments and comparisons: ``kmeans_1d(init="optimal")`` does not use them. Everything runs on
the sorted distinct values with their weights (O(k log u) per Lloyd step via prefix sums).
"""

from __future__ import annotations

import numpy as np

from onnx_share.numerics.kmeans.prepare import Points


def seeded_lloyd(pts: Points, k: int, pin_zero: bool, init: str, seed: int, max_iter: int) -> tuple[np.ndarray, int]:
    """Seed the free centroids with ``init`` and run plain weighted Lloyd on the distinct values.

    Returns the sorted centroids (y units) and the index of the one pinned at 0 (-1 if none).
    """
    k_free = k - 1 if pin_zero else k
    u, wu = pts.values, pts.weights
    rng = np.random.default_rng(seed)
    fixed = np.array([0.0]) if pin_zero else np.empty(0)
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
    cent = _fill_empty(u, wu, np.unique(np.concatenate([seeds, fixed])), k)
    cent = _lloyd_points(pts, cent, pin_zero, max_iter)
    pinned = int(np.searchsorted(cent, 0.0)) if pin_zero else -1
    return cent, pinned


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


def _lloyd_points(pts: Points, cent: np.ndarray, pin_zero: bool, max_iter: int) -> np.ndarray:
    """Plain weighted Lloyd on sorted distinct values.

    A centroid left without points moves to the value with the largest weighted error.
    """
    k = cent.size
    u, wu = pts.values, pts.weights
    pw, ps, _ = pts.prefix_sums()
    for _ in range(max_iter):
        new = _lloyd_step(u, pw, ps, cent, pin_zero)
        if new.size < k:
            new = _fill_empty(u, wu, new, k)
        if np.array_equal(new, cent):
            break
        cent = new
    return cent


def _lloyd_step(u: np.ndarray, pw: np.ndarray, ps: np.ndarray, cent: np.ndarray, pin_zero: bool) -> np.ndarray:
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
