"""Codebooks: k-means centroids per tensor, channel or group of channels, and one index per weight.

W (moved channel-first and flattened per codebook to [G, M]) becomes centroids [G, k] and indices [G, M] with
``centroids[g, indices[g, m]]`` the decoded weight; :meth:`Codebook.decode` is the inverse of
:func:`fit_codebook`. Plain numpy: no graph code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnx_share.numerics.kmeans import KMeansResult, kmeans_1d, kmeans_1d_many, kmeans_rows
from onnx_share.numerics.metrics import BLOCK_ELEMENTS

# Exact zeros get a centroid of their own when at least this fraction of a codebook's weights is zero.
PIN_ZERO_FRACTION = 0.1


@dataclass(frozen=True)
class Codebook:
    """Centroids [G, k] (G = 1 per tensor) and indices [G, M] over W moved channel-first."""

    centroids: np.ndarray
    indices: np.ndarray
    axis: int | None
    granularity: str
    group_size: int | None

    def decode(self, shape: tuple[int, ...]) -> np.ndarray:
        """The float64 tensor the codebook graph computes, in W's layout."""
        return self.in_layout(np.take_along_axis(self.centroids, self.indices.astype(np.int64), axis=1), shape)

    def in_layout(self, rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """``rows`` [G, M] (laid out as :func:`channel_rows` lays out W) in W's layout ``shape``."""
        if self.axis is None:
            return rows.reshape(shape)
        moved = (shape[self.axis], *shape[: self.axis], *shape[self.axis + 1 :])
        return np.moveaxis(rows.reshape(moved), 0, self.axis)

    def with_centroids(self, centroids: np.ndarray, dtype: np.dtype) -> Codebook:
        """This assignment over new ``centroids`` [G, k], rounded to ``dtype`` and sorted (indices follow)."""
        rounded = centroids.astype(dtype).astype(np.float64)
        order = np.argsort(rounded, axis=1, kind="stable")
        rank = np.argsort(order, axis=1)
        indices = np.take_along_axis(rank, self.indices.astype(np.int64), axis=1).astype(self.indices.dtype)
        return Codebook(np.take_along_axis(rounded, order, axis=1), indices, self.axis, self.granularity,
                        self.group_size)

    def measure(self, values: np.ndarray) -> tuple[float, int]:
        """‖W − Ŵ‖ / ‖W‖ against ``values`` (W in its layout) and Ŵ's count of exact zeros, accumulated in float64
        over blocks of codebooks of about ``BLOCK_ELEMENTS`` elements (no copy of the whole of W)."""
        error = reference = 0.0
        zeros = 0
        for start, stop in row_blocks(self.indices.shape):
            original = channel_rows(values, self.axis, self.group_size, start, stop).astype(np.float64)
            decoded = np.take_along_axis(self.centroids[start:stop], self.indices[start:stop], axis=1)
            error += float(np.sum((original - decoded) ** 2))
            reference += float(np.sum(original**2))
            zeros += int(np.count_nonzero(decoded == 0))
        return (float(np.sqrt(error / reference)) if reference > 0 else 0.0), zeros


def channel_rows(
    values: np.ndarray, axis: int | None, group_size: int | None, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """W as [G, M], one row per codebook, or rows ``[start, stop)`` of it (a view of W per tensor; a channel-first
    copy of just those rows otherwise)."""
    if axis is None:
        return values.reshape(1, -1)[start:stop]
    group = group_size or 1
    moved = np.moveaxis(values, axis, 0)
    stop = moved.shape[0] // group if stop is None else stop
    return moved[start * group : stop * group].reshape(stop - start, -1)


def row_blocks(shape: tuple[int, int]) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of whole rows of a [G, M] layout, about ``BLOCK_ELEMENTS`` elements each
    (one row at least)."""
    rows, width = shape
    step = max(1, BLOCK_ELEMENTS // max(width, 1))
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


def fit_codebook(
    values: np.ndarray,
    k: int,
    axis: int | None = None,
    *,
    granularity: str = "tensor",
    group_size: int = 1,
    init: str = "optimal",
    pin_zero: bool | None = None,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
) -> Codebook:
    """k-means codebook(s) of ``k`` entries for ``values``: one per tensor (``axis`` None or ``granularity``
    ``tensor``), per output channel along ``axis``, or per group of at most ``group_size`` channels (the largest
    divisor of the channel count not above it).

    Centroids are rounded to ``values``' dtype, as the codebook initializer stores them. ``sample_weight`` (the
    shape of ``values``) weighs each value's squared error.
    """
    granularity = "tensor" if axis is None else granularity
    axis = None if granularity == "tensor" else axis
    groups = None if axis is None else channels_per_codebook(values.shape[axis], granularity, group_size)
    count = 1 if axis is None else values.shape[axis] // (groups or 1)
    centroids = np.empty((count, k), dtype=np.float64)
    indices = np.empty((count, values.size // count), dtype=np.uint8)
    for start, stop in row_blocks(indices.shape) if count > 1 else [(0, 1)]:  # W's rows copied a block at a time
        rows = channel_rows(values, axis, groups, start, stop)
        weights = None if sample_weight is None else channel_rows(sample_weight, axis, groups, start, stop)
        _fit_rows(rows, k, weights, _pins_zero(rows, pin_zero), init, seed, centroids[start:stop],
                  indices[start:stop])
    centroids = centroids.astype(values.dtype).astype(np.float64)
    return Codebook(centroids, indices, axis, granularity, groups)


def _fit_rows(rows: np.ndarray, k: int, weights: np.ndarray | None, pins: np.ndarray, init: str, seed: int,
              centroids: np.ndarray, indices: np.ndarray) -> None:
    """Cluster each row into ``centroids`` (padded with the last) and ``indices``: all rows at once for the optimal
    init (:func:`~onnx_share.numerics.kmeans.kmeans_rows`), row by row for the seeded ones."""
    if init == "optimal":
        fitted = kmeans_rows(rows, k, sample_weight=weights, pin_zero=pins)
        centroids[:], indices[:] = fitted.centroids, fitted.labels
        return
    for g, row in enumerate(rows):
        result = kmeans_1d(row, k, init=init, seed=seed, pin_zero=bool(pins[g]),
                           sample_weight=None if weights is None else weights[g])
        _padded(result, centroids[g])
        indices[g] = result.labels


def fit_codebooks_per_tensor(
    values: np.ndarray, ks: list[int], *, pin_zero: bool | None = None, sample_weight: np.ndarray | None = None
) -> list[Codebook]:
    """``[fit_codebook(values, k, pin_zero=pin_zero, sample_weight=sample_weight) for k in ks]``: a codebook per
    tensor of each size (optimal init), the same ones, from one k-means run
    (:func:`~onnx_share.numerics.kmeans.kmeans_1d_many`)."""
    pin = bool(_pins_zero(values.reshape(1, -1), pin_zero)[0])
    books = []
    for k, result in zip(ks, kmeans_1d_many(values, ks, sample_weight=sample_weight, pin_zero=pin), strict=True):
        centroids = np.empty((1, k))
        _padded(result, centroids[0])
        books.append(Codebook(centroids.astype(values.dtype).astype(np.float64),
                              result.labels.reshape(1, -1).astype(np.uint8), None, "tensor", None))
    return books


def _padded(result: KMeansResult, out: np.ndarray) -> None:
    """``result``'s centroids into ``out`` [k], padded with the last where it found fewer than k."""
    out[: result.centroids.size] = result.centroids
    out[result.centroids.size :] = result.centroids[-1]


def with_values(codebook: Codebook, values: np.ndarray) -> Codebook:
    """``codebook``'s centroids indexing ``values`` (W's layout, each value one of its codebook's centroids)."""
    indices = np.empty(codebook.indices.shape, np.uint8)
    for start, stop in row_blocks(indices.shape):
        for g, row in enumerate(channel_rows(values, codebook.axis, codebook.group_size, start, stop), start):
            indices[g] = np.searchsorted(codebook.centroids[g], row)
    return Codebook(codebook.centroids, indices, codebook.axis, codebook.granularity, codebook.group_size)


def codebook_ids(codebook: Codebook, shape: tuple[int, ...]) -> np.ndarray:
    """The codebook (row of ``centroids``) each element of W (``shape``) uses."""
    if codebook.axis is None:
        return np.zeros(shape, np.int64)
    view = [1] * len(shape)
    view[codebook.axis] = -1
    ids = np.arange(shape[codebook.axis]) // (codebook.group_size or 1)
    return np.broadcast_to(ids.reshape(view), shape)


def channels_per_codebook(channels: int, granularity: str, group_size: int) -> int:
    """Output channels sharing one codebook: 1 per channel; per group the largest divisor of ``channels`` not
    above ``group_size`` (groups must tile the channels exactly)."""
    if granularity == "channel":
        return 1
    return max(d for d in range(1, min(channels, group_size) + 1) if channels % d == 0)


def _pins_zero(rows: np.ndarray, requested: bool | None) -> np.ndarray:
    """Per row of ``rows`` [G, M], ``pin_zero`` as asked, or (None) whether at least ``PIN_ZERO_FRACTION`` of the
    row's values are exactly zero."""
    if requested is not None:
        return np.full(rows.shape[0], requested)
    return np.count_nonzero(rows == 0, axis=1) >= PIN_ZERO_FRACTION * rows.shape[1]
