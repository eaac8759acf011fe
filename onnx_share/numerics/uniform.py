"""Uniform (linear) quantization grids: scale and zero point per tensor, per axis or per block."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UniformGrid:
    """Integers on an evenly spaced grid: ``value ≈ (quantized - zero_point) * scale``.

    ``scale``/``zero_point`` have the shapes ``DequantizeLinear`` expects: a scalar (per tensor), ``[C]``
    (per axis) or the input's shape with ``ceil(n / block_size)`` along the blocked axis.
    """

    quantized: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray | None
    axis: int | None
    block_size: int | None

    def dequantize(self, dtype: np.dtype | type = np.float64) -> np.ndarray:
        """The values the grid stands for (what ``DequantizeLinear`` computes), computed in ``dtype``."""
        shape, axis, block = self.quantized.shape, self.axis, self.block_size
        values = self.quantized.astype(dtype)
        if self.zero_point is not None:
            values -= _expand(self.zero_point.astype(dtype), shape, axis, block)
        values *= _expand(self.scale.astype(dtype), shape, axis, block)
        return values

    def per_element(self) -> tuple[np.ndarray, np.ndarray]:
        """Each element's scale and zero point (0 for a symmetric grid), float64 in the grid's shape."""
        shape = self.quantized.shape
        scale = np.broadcast_to(_expand(self.scale.astype(np.float64), shape, self.axis, self.block_size), shape)
        zero = 0.0 if self.zero_point is None else _expand(self.zero_point.astype(np.float64), shape, self.axis,
                                                            self.block_size)
        return np.ascontiguousarray(scale), np.ascontiguousarray(np.broadcast_to(zero, shape))

    def with_values(self, values: np.ndarray) -> UniformGrid:
        """This grid's scales and zero points holding ``values`` (each already one of the grid's points)."""
        scale, zero_point = self.per_element()
        quantized = (np.rint(values / scale) + zero_point).astype(np.int16)
        return UniformGrid(quantized, self.scale, self.zero_point, self.axis, self.block_size)


def integer_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """The integers a grid uses: symmetric ``[-(2^(b-1)-1), 2^(b-1)-1]`` (signed, zero point 0), else unsigned."""
    if symmetric:
        limit = 2 ** (bits - 1) - 1
        return -limit, limit
    return 0, 2**bits - 1


# Clipping ratios tried per group when fitting a grid of 4 bits or fewer: shrinking the range below the largest
# magnitude trades clipping error on a few outliers for finer steps everywhere else.
CLIP_RATIOS = tuple(np.round(np.linspace(1.0, 0.5, 11), 2))


def quantize_uniform(
    values: np.ndarray,
    bits: int,
    *,
    symmetric: bool = True,
    axis: int | None = None,
    block_size: int | None = None,
    scale_dtype: np.dtype | type = np.float32,
    clip_search: bool = True,
    sample_weight: np.ndarray | None = None,
) -> UniformGrid:
    """Fit a ``bits``-bit grid to ``values`` per tensor (``axis`` None), per ``axis``, or per block.

    The grid spans each group's range (always including 0); with ``clip_search`` and ``bits <= 4`` each
    group keeps the clipping ratio from ``CLIP_RATIOS`` with the smallest squared error. Scales are rounded
    to ``scale_dtype`` before the values are rounded to the grid (round half to even, so rounding adds no
    bias), so dequantizing with the stored scale reproduces ``dequantize()`` exactly. An all-zero group gets
    scale 1. ``sample_weight`` (the shape of ``values``) weighs each element's squared error in the clipping
    search.
    """
    if block_size is not None and axis is None:
        raise ValueError("block_size needs an axis")
    data = np.asarray(values)
    # float32 holds float16/bfloat16/float32 weights exactly; the working copies stay at that width.
    data = np.asarray(data, np.float32 if data.dtype.kind == "f" and data.dtype.itemsize <= 4 else np.float64)
    if axis is not None:
        axis %= data.ndim
    low = np.minimum(_reduce(data, np.minimum, axis, block_size), 0.0)
    high = np.maximum(_reduce(data, np.maximum, axis, block_size), 0.0)
    best: UniformGrid | None = None
    best_error = np.full(low.shape, np.inf)
    for ratio in CLIP_RATIOS if clip_search and bits <= 4 else (1.0,):
        grid = _fit(data, bits, symmetric, axis, block_size, scale_dtype, low * ratio, high * ratio)
        if best is None:
            best, best_error = grid, _group_error(data, grid, sample_weight)
            continue
        error = _group_error(data, grid, sample_weight)
        better = error < best_error
        if better.any():
            best_error = np.where(better, error, best_error)
            best = _pick(best, grid, better)
    assert best is not None
    return best


def _fit(
    data: np.ndarray,
    bits: int,
    symmetric: bool,
    axis: int | None,
    block_size: int | None,
    scale_dtype: np.dtype | type,
    low: np.ndarray,
    high: np.ndarray,
) -> UniformGrid:
    qmin, qmax = integer_range(bits, symmetric)
    scale = np.maximum(np.abs(low), high) / qmax if symmetric else (high - low) / (qmax - qmin)
    scale = np.where(scale > 0, scale, 1.0).astype(scale_dtype)
    # A scale too small for its dtype (float16 scales of tiny weights) rounds to 0: take the smallest positive one.
    scale = np.where(scale > 0, scale, np.finfo(scale.dtype).smallest_subnormal).astype(scale_dtype)
    zero_point = None
    steps = data / _expand(scale.astype(data.dtype), data.shape, axis, block_size)
    np.rint(steps, out=steps)
    if not symmetric:
        zero_point = np.clip(np.rint(-low / scale.astype(np.float64)), qmin, qmax).astype(np.int64)
        steps += _expand(zero_point.astype(data.dtype), data.shape, axis, block_size)
    quantized = np.clip(steps, qmin, qmax).astype(np.int16)  # every 2/4/8-bit integer fits
    return UniformGrid(quantized, scale, zero_point, axis, block_size)


def _group_error(data: np.ndarray, grid: UniformGrid, weight: np.ndarray | None) -> np.ndarray:
    """Squared error (weighted by ``weight`` when given) per scale group (the shape of ``grid.scale``), at
    ``data``'s width."""
    diff = grid.dequantize(data.dtype)
    diff -= data
    np.square(diff, out=diff)
    if weight is not None:
        diff *= weight
    return _reduce(diff, np.add, grid.axis, grid.block_size).astype(np.float64)


def _pick(current: UniformGrid, candidate: UniformGrid, better: np.ndarray) -> UniformGrid:
    """``current`` with the groups flagged in ``better`` taken from ``candidate``."""
    shape, axis, block = current.quantized.shape, current.axis, current.block_size
    take = _expand(better, shape, axis, block) if better.ndim else better
    quantized = np.where(take, candidate.quantized, current.quantized)
    scale = np.where(better, candidate.scale, current.scale).astype(current.scale.dtype)
    zero_point = None
    if current.zero_point is not None and candidate.zero_point is not None:
        zero_point = np.where(better, candidate.zero_point, current.zero_point)
    return UniformGrid(quantized, scale, zero_point, axis, block)


def _reduce(data: np.ndarray, ufunc: np.ufunc, axis: int | None, block_size: int | None) -> np.ndarray:
    if axis is None:
        return np.asarray(ufunc.reduce(data, axis=None))
    if block_size is None:
        return ufunc.reduce(data, axis=tuple(i for i in range(data.ndim) if i != axis))
    return ufunc.reduceat(data, np.arange(0, data.shape[axis], block_size), axis=axis)


def _expand(param: np.ndarray, shape: tuple[int, ...], axis: int | None, block_size: int | None) -> np.ndarray:
    """Broadcast a per-tensor, per-axis or per-block parameter to the quantized tensor's ``shape``."""
    if axis is None:
        return param
    if block_size is None:
        view = [1] * len(shape)
        view[axis] = -1
        return param.reshape(view)
    return np.repeat(param, block_size, axis=axis).take(np.arange(shape[axis]), axis=axis)
