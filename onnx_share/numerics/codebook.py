"""Codebooks: k-means centroids per tensor, channel or group of channels, and one index per weight.

W (moved channel-first and flattened per codebook to [G, M]) becomes centroids [G, k] and indices [G, M] with
``centroids[g, indices[g, m]]`` the decoded weight; :meth:`Codebook.decode` is the inverse of
:func:`fit_codebook`. Plain numpy: no graph code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnx_share.numerics.kmeans import kmeans_1d, kmeans_rows

# Exact zeros get a centroid of their own when at least this fraction of a codebook's weights is zero.
PIN_ZERO_FRACTION = 0.1

# Elements per block when measuring the error, so no float64 copy of a whole large tensor is made.
ERROR_BLOCK_ELEMENTS = 1 << 20


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

    def measure(self, rows: np.ndarray) -> tuple[float, int]:
        """‖W − Ŵ‖ / ‖W‖ against ``rows`` (W as laid out by :func:`channel_rows`) and Ŵ's count of exact
        zeros, accumulated in float64 over blocks of about ``ERROR_BLOCK_ELEMENTS`` elements."""
        error = reference = 0.0
        zeros = 0
        width = rows.shape[1]
        rows_per_block = max(1, ERROR_BLOCK_ELEMENTS // max(width, 1))
        for g in range(0, rows.shape[0], rows_per_block):
            table = self.centroids[g : g + rows_per_block]
            for start in range(0, width, ERROR_BLOCK_ELEMENTS):
                stop = start + ERROR_BLOCK_ELEMENTS
                original = rows[g : g + rows_per_block, start:stop].astype(np.float64)
                decoded = np.take_along_axis(table, self.indices[g : g + rows_per_block, start:stop], axis=1)
                error += float(np.sum((original - decoded) ** 2))
                reference += float(np.sum(original**2))
                zeros += int(np.count_nonzero(decoded == 0))
        return (float(np.sqrt(error / reference)) if reference > 0 else 0.0), zeros


def channel_rows(values: np.ndarray, axis: int | None, group_size: int | None) -> np.ndarray:
    """W as [G, M]: one row per codebook (a view of W per tensor; channel-first copy otherwise)."""
    if axis is None:
        return values.reshape(1, -1)
    channels = values.shape[axis]
    return np.moveaxis(values, axis, 0).reshape(channels // (group_size or 1), -1)


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
    groups = None if granularity == "tensor" else channels_per_codebook(values.shape[axis], granularity, group_size)
    rows = channel_rows(values, None if granularity == "tensor" else axis, groups)
    weights = None if sample_weight is None else channel_rows(sample_weight, None if granularity == "tensor" else axis,
                                                              groups)
    pins = _pins_zero(rows, pin_zero)
    if init == "optimal":
        fitted = kmeans_rows(rows, k, sample_weight=weights, pin_zero=pins)
        centroids, indices = fitted.centroids, fitted.labels.astype(np.uint8, copy=False)
    else:
        centroids = np.empty((rows.shape[0], k), dtype=np.float64)
        indices = np.empty(rows.shape, dtype=np.uint8)
        for g, row in enumerate(rows):
            result = kmeans_1d(row, k, init=init, seed=seed, pin_zero=bool(pins[g]),
                               sample_weight=None if weights is None else weights[g])
            centroids[g, : len(result.centroids)] = result.centroids
            centroids[g, len(result.centroids) :] = result.centroids[-1]
            indices[g] = result.labels
    centroids = centroids.astype(values.dtype).astype(np.float64)
    return Codebook(centroids, indices, None if granularity == "tensor" else axis, granularity, groups)


def with_values(codebook: Codebook, values: np.ndarray) -> Codebook:
    """``codebook``'s centroids indexing ``values`` (W's layout, each value one of its codebook's centroids)."""
    rows = channel_rows(values, codebook.axis, codebook.group_size)
    indices = np.empty(rows.shape, np.uint8)
    for g, row in enumerate(rows):
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
