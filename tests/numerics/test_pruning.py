"""Magnitude-pruning numerics: exact fraction, threshold and global masks on numpy, and the sparse size."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from onnx_share.numerics import pruning


@pytest.mark.parametrize(("size", "fraction", "zeros"), [(10, 0.3, 3), (7, 0.5, 4), (100, 0.0, 0), (100, 1.0, 100),
                                                         (3, 0.34, 2), (1000, 0.999, 999)])
def test_zeros_for_fraction(size: int, fraction: float, zeros: int) -> None:
    assert pruning.zeros_for_fraction(size, fraction) == zeros


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.77, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_fraction_mask_is_exact(fraction: float, dtype: type, rng: np.random.Generator) -> None:
    w = rng.normal(size=(37, 29)).astype(dtype)
    mask = pruning.fraction_mask(w, fraction)
    assert mask.shape == w.shape and mask.sum() == pruning.zeros_for_fraction(w.size, fraction)
    magnitudes = np.abs(w.astype(np.float64))
    assert magnitudes[mask].max() <= magnitudes[~mask].min()
    pruned = pruning.apply_mask(w, mask)
    assert pruned.dtype == w.dtype and pruning.sparsity(pruned) == pytest.approx(mask.mean())
    np.testing.assert_array_equal(pruned[~mask], w[~mask])


def test_ties_are_cut_by_position_and_existing_zeros_count() -> None:
    w = np.array([[0.5, -0.5, 0.0, 0.5], [0.5, 2.0, -0.5, 0.0]], dtype=np.float32)
    mask = pruning.fraction_mask(w, 0.5)  # 2 zeros already, then the first two of six tied 0.5s
    np.testing.assert_array_equal(mask, [[True, True, True, False], [False, False, False, True]])
    np.testing.assert_array_equal(pruning.fraction_mask(w, 0.5), mask)


def test_threshold_mask_zeroes_at_or_below() -> None:
    w = np.array([0.1, -0.2, 0.3, -0.05, 0.2], dtype=np.float32)
    np.testing.assert_array_equal(pruning.threshold_mask(w, 0.2), [True, True, False, True, True])
    np.testing.assert_array_equal(pruning.threshold_mask(w, 0.0), [False] * 5)
    np.testing.assert_array_equal(pruning.threshold_mask(w.astype(np.float16), 1e6), [True] * 5)
    with pytest.raises(ValueError, match="threshold"):
        pruning.threshold_mask(w, -1.0)


def test_global_masks_share_one_cut(rng: np.random.Generator) -> None:
    tensors = [rng.normal(size=(50, 40)).astype(np.float32) * 0.1, rng.normal(size=(300,)).astype(np.float16),
               rng.normal(size=(20, 20)).astype(np.float32) * 3.0]
    masks = pruning.global_fraction_masks(tensors, 0.6)
    total = sum(t.size for t in tensors)
    assert sum(int(m.sum()) for m in masks) == pruning.zeros_for_fraction(total, 0.6)
    pruned_max = max(np.abs(t.astype(np.float64))[m].max() for t, m in zip(tensors, masks, strict=True) if m.any())
    kept_min = min(np.abs(t.astype(np.float64))[~m].min() for t, m in zip(tensors, masks, strict=True))
    assert pruned_max <= kept_min
    fractions = [m.mean() for m in masks]
    assert fractions[0] > fractions[1] > fractions[2]  # small weights go first, whichever tensor holds them
    tied = [np.full(4, 0.5, np.float32), np.full(4, 0.5, np.float32)]
    assert [int(m.sum()) for m in pruning.global_fraction_masks(tied, 0.75)] == [4, 2]


def test_sparse_size() -> None:
    assert pruning.sparse_nbytes(10, 4) == 120
