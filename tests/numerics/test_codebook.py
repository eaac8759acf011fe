"""Codebooks per tensor, channel and group: fitted a block of rows at a time, on any number of threads."""

from __future__ import annotations

import numpy as np
import pytest

from onnx_share.numerics.codebook import channel_rows, fit_codebook
from onnx_share.numerics.kmeans import kmeans_1d


@pytest.mark.parametrize(("granularity", "group_size", "axis"), [("channel", 1, 1), ("group", 4, 0), ("tensor", 1, 1)])
def test_any_number_of_workers_fits_the_same_codebook(granularity: str, group_size: int, axis: int) -> None:
    """Blocks of codebooks fitted side by side land in their own places: 1 and 3 workers give the same bytes, and
    each codebook is kmeans_1d of its row of W (moved channel-first)."""
    rng = np.random.default_rng(0)
    w = (rng.standard_t(3, (96, 3000)) * 0.02).astype(np.float32)  # channel and group: 2 blocks of rows each
    one = fit_codebook(w, 16, axis, granularity=granularity, group_size=group_size, workers=1)
    three = fit_codebook(w, 16, axis, granularity=granularity, group_size=group_size, workers=3)
    np.testing.assert_array_equal(one.centroids, three.centroids)
    np.testing.assert_array_equal(one.indices, three.indices)
    rows = channel_rows(w, one.axis, one.group_size)
    for g in (0, rows.shape[0] - 1):
        expected = kmeans_1d(rows[g], 16)
        np.testing.assert_array_equal(one.indices[g], expected.labels)
        np.testing.assert_array_equal(one.centroids[g], expected.centroids.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(one.decode(w.shape), w, atol=float(np.abs(w).max()))
