"""Uniform grids: shapes DequantizeLinear expects, exact dequantization, ranges, clipping search."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onnx_share.numerics.uniform import integer_range, quantize_uniform

LAYOUTS = [
    ({}, ()),
    ({"axis": 1}, (40,)),
    ({"axis": 0, "block_size": 64}, (3, 40)),  # 150 rows -> ceil(150 / 64) blocks
]


@pytest.mark.parametrize(("layout", "scale_shape"), LAYOUTS)
@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_grid_shapes_ranges_and_exact_dequantization(
    layout: dict, scale_shape: tuple, bits: int, symmetric: bool
) -> None:
    values = np.random.default_rng(bits).standard_t(3, size=(150, 40)) * 0.05
    grid = quantize_uniform(values, bits, symmetric=symmetric, **layout)
    assert grid.scale.shape == scale_shape and grid.scale.dtype == np.float32
    qmin, qmax = integer_range(bits, symmetric)
    assert grid.quantized.min() >= qmin and grid.quantized.max() <= qmax
    assert (grid.zero_point is None) == symmetric
    # What DequantizeLinear computes from the stored integers and float32 scale:
    scale = grid.scale.astype(np.float64)
    if "block_size" in layout:
        scale = np.repeat(scale, 64, axis=0)[:150]
    elif "axis" in layout:
        scale = scale[None, :]
    zero = 0 if grid.zero_point is None else grid.zero_point
    if grid.zero_point is not None and "block_size" in layout:
        zero = np.repeat(grid.zero_point, 64, axis=0)[:150]
    elif grid.zero_point is not None and "axis" in layout:
        zero = grid.zero_point[None, :]
    np.testing.assert_array_equal(grid.dequantize(), (grid.quantized - zero) * scale)


@pytest.mark.parametrize("bits", [2, 4])
def test_clip_search_is_never_worse_than_min_max(bits: int) -> None:
    values = np.random.default_rng(1).standard_t(2.5, size=(256, 64))
    for layout, _ in LAYOUTS:
        plain = quantize_uniform(values, bits, clip_search=False, **layout)
        searched = quantize_uniform(values, bits, **layout)
        assert np.sum((searched.dequantize() - values) ** 2) <= np.sum((plain.dequantize() - values) ** 2)


def test_eight_bits_error_bound_and_zero_exact() -> None:
    values = np.random.default_rng(2).normal(size=(64, 64))
    values[::7] = 0.0
    grid = quantize_uniform(values, 8, axis=0)
    step = grid.scale.astype(np.float64)[:, None]
    assert np.all(np.abs(grid.dequantize() - values) <= step / 2 + 1e-12)
    assert np.all(grid.dequantize()[::7] == 0.0)


def test_all_zero_group_gets_unit_scale() -> None:
    values = np.zeros((4, 8))
    values[1] = 1.0
    grid = quantize_uniform(values, 4, axis=0)
    assert grid.scale[0] == 1.0 and np.all(grid.dequantize()[0] == 0.0)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 300), st.sampled_from([2, 4, 8]), st.booleans())
def test_rounding_adds_no_bias(seed: int, bits: int, symmetric: bool) -> None:
    """Errors of values spread evenly between grid points average out (round half to even, no truncation)."""
    values = np.random.default_rng(seed).uniform(-1, 1, size=20_000)
    grid = quantize_uniform(values, bits, symmetric=symmetric, clip_search=False)
    step = float(grid.scale)
    assert abs(float(np.mean(grid.dequantize() - values))) < 0.02 * step
