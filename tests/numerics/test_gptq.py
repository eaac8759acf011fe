"""GPTQ rounding onto a fixed codebook or grid: fewer activation-space errors than nearest rounding, values that
stay on the codebook or grid, and the activation error against its definition."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from onnx_share.numerics.codebook import codebook_ids, fit_codebook, with_values
from onnx_share.numerics.gptq import CodebookRounder, GridRounder, activation_error, gptq_round, refit_centroids
from onnx_share.numerics.uniform import integer_range, quantize_uniform


def correlated_inputs(rng: np.random.Generator, rows: int, features: int) -> np.ndarray:
    """Activations whose features are correlated and of unequal scale, as real layer inputs are."""
    mixing = rng.standard_normal((features, features)) * rng.uniform(0.1, 2.0, features)
    return rng.standard_normal((rows, features)) @ mixing


def layer_error(x: np.ndarray, w: np.ndarray, decoded: np.ndarray) -> float:
    return float(np.linalg.norm(x @ (w - decoded)) / np.linalg.norm(x @ w))


@pytest.mark.parametrize("seed", range(5))
def test_gptq_codebook_beats_nearest_centroid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = correlated_inputs(rng, 512, 48)
    w = rng.standard_normal((48, 24))
    codebook = fit_codebook(w, 8)
    rounder = CodebookRounder(codebook.centroids, codebook_ids(codebook, w.shape)[None])
    nearest = codebook.decode(w.shape)
    compensated = gptq_round(w[None], (x.T @ x)[None], rounder)[0]
    assert np.isin(compensated, codebook.centroids).all()
    assert layer_error(x, w, compensated) < layer_error(x, w, nearest)


@pytest.mark.parametrize(("seed", "symmetric"), list(itertools.product(range(3), (True, False))))
def test_gptq_grid_beats_nearest_rounding(seed: int, symmetric: bool) -> None:
    rng = np.random.default_rng(seed)
    x = correlated_inputs(rng, 512, 64)
    w = rng.standard_normal((64, 16))
    grid = quantize_uniform(w, 4, symmetric=symmetric, axis=0, block_size=32)
    scale, zero_point = grid.per_element()
    qmin, qmax = integer_range(4, symmetric)
    compensated = gptq_round(w[None], (x.T @ x)[None], GridRounder(scale[None], zero_point[None], qmin, qmax))[0]
    on_grid = grid.with_values(compensated)
    assert np.array_equal(on_grid.dequantize(), compensated)  # every value is a point of the grid
    assert on_grid.quantized.min() >= qmin and on_grid.quantized.max() <= qmax
    assert layer_error(x, w, compensated) < layer_error(x, w, grid.dequantize())


def test_dead_features_are_rounded_to_nearest() -> None:
    rng = np.random.default_rng(0)
    x = correlated_inputs(rng, 256, 16)
    x[:, 3] = 0.0  # an input that never fires
    w = rng.standard_normal((16, 8))
    codebook = fit_codebook(w, 4)
    rounder = CodebookRounder(codebook.centroids, codebook_ids(codebook, w.shape)[None])
    compensated = gptq_round(w[None], (x.T @ x)[None], rounder)[0]
    assert np.array_equal(compensated[3], codebook.decode(w.shape)[3])


def test_activation_error_matches_its_definition() -> None:
    rng = np.random.default_rng(1)
    x = correlated_inputs(rng, 300, 12)
    w = rng.standard_normal((12, 5))
    decoded = w + 0.05 * rng.standard_normal(w.shape)
    gram = x.T @ x
    measured = activation_error(w[None], decoded[None], gram[None], np.diag(gram)[None])
    assert measured == pytest.approx(layer_error(x, w, decoded), rel=1e-9)
    diagonal_only = activation_error(w[None], decoded[None], None, np.diag(gram)[None])
    expected = np.sqrt(np.sum(np.diag(gram)[:, None] * (w - decoded) ** 2) / np.sum(np.diag(gram)[:, None] * w**2))
    assert diagonal_only == pytest.approx(expected, rel=1e-12)


def test_weighted_codebook_is_optimal_under_the_weights() -> None:
    """Activation-weighted k-means (one codebook per row) reaches the brute-force optimum of the weighted SSE."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((2, 9))
    weights = rng.uniform(0.01, 5.0, (2, 9))
    codebook = fit_codebook(w, 3, axis=0, granularity="channel", sample_weight=weights)
    decoded = codebook.decode(w.shape)
    for row in range(2):
        order = np.argsort(w[row])
        values, mass = w[row][order], weights[row][order]
        best = np.inf
        for cuts in itertools.combinations(range(1, 9), 2):
            sse = 0.0
            for part in np.split(np.arange(9), cuts):
                mean = np.average(values[part], weights=mass[part])
                sse += float(np.sum(mass[part] * (values[part] - mean) ** 2))
            best = min(best, sse)
        achieved = float(np.sum(weights[row] * (w[row] - decoded[row]) ** 2))
        assert achieved == pytest.approx(best, rel=1e-6)


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_refit_centroids_lowers_the_layer_error_for_the_same_assignment(granularity: str) -> None:
    rng = np.random.default_rng(9)
    x = correlated_inputs(rng, 400, 32)
    w = rng.standard_normal((32, 12))
    codebook = fit_codebook(w, 4, axis=1, granularity=granularity)
    ids = codebook_ids(codebook, w.shape)
    compensated = gptq_round(w[None], (x.T @ x)[None], CodebookRounder(codebook.centroids, ids[None]))[0]
    assigned = with_values(codebook, compensated)
    assignment = assigned.in_layout(assigned.indices, w.shape)
    raw = refit_centroids(w[None], (x.T @ x)[None], ids[None], assignment[None], assigned.centroids)
    refit = assigned.with_centroids(raw, np.float64)
    assert layer_error(x, w, refit.decode(w.shape)) < layer_error(x, w, assigned.decode(w.shape))
    # the same assignment over the new values: sorting the centroids moved the indices with them
    expected = assigned.in_layout(np.take_along_axis(raw, assigned.indices.astype(np.int64), axis=1), w.shape)
    np.testing.assert_allclose(refit.decode(w.shape), expected, rtol=1e-12)


def test_a_zero_scale_rounds_to_zero_instead_of_raising() -> None:
    """An all-zero channel gets scale 0: numpy's division gives inf, clipped, times 0 (numba must not raise)."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((1, 20, 5))
    x = rng.standard_normal((100, 20))
    scale = np.full((1, 20, 5), 0.1, np.float32)
    scale[0, :, 2] = 0.0
    rounded = gptq_round(w, (x.T @ x)[None], GridRounder(scale, np.zeros((1, 20, 5)), -8, 7))
    assert np.all(rounded[0, :, 2] == 0.0) and np.all(np.isfinite(rounded))
