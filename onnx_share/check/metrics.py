"""How far two models' arrays are apart: per-output and per-layer error statistics, tolerances, top-1 agreement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from onnx_share.config import ValidationConfig
from onnx_share.report.data import LayerStats, OutputStats

RELATIVE_FLOOR = 1e-6


def output_stats(
    name: str,
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    config: ValidationConfig,
) -> OutputStats:
    """Error statistics of one output over all samples; NaNs in the same places count as equal.

    Integer and bool outputs must match exactly. Float outputs of rank 2 or 3 with at least two entries on
    the last axis ([batch, classes] or [batch, positions, classes]) also get top-1 agreement: the fraction
    of rows whose argmax over the last axis is the same in both models.
    """
    first = np.asarray(reference[0])
    if shape_mismatch(reference, candidate) is not None:
        return OutputStats(name, np.inf, np.inf, np.inf, np.inf, 0.0, False, list(first.shape), str(first.dtype))
    errors = _errors(reference, candidate, config, with_median=True)
    top1 = _top1_agreement(reference, candidate)
    passed = errors["passed"]
    if config.min_top1 is not None and top1 is not None:
        passed = passed and top1 >= config.min_top1
    return OutputStats(
        name=name,
        max_abs_error=errors["max_abs"],
        mean_abs_error=errors["mean_abs"],
        median_abs_error=errors["median_abs"],
        max_rel_error=errors["max_rel"],
        cosine_similarity=errors["cosine"],
        passed=bool(passed),
        shape=list(first.shape),
        dtype=str(first.dtype),
        exact=errors["exact"],
        top1_agreement=top1,
    )


def shape_mismatch(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> str | None:
    """How the shapes of the two models' arrays differ in the first sample where they do, else None."""
    for r, c in zip(reference, candidate, strict=True):
        if np.shape(r) != np.shape(c):
            return f"shapes differ: {list(np.shape(r))} vs {list(np.shape(c))}"
    return None


def layer_stats(
    index: int,
    name: str,
    op_type: str,
    node: str,
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    config: ValidationConfig,
) -> LayerStats:
    """One shared intermediate tensor compared like an output; skipped when shapes or kinds differ."""
    if not all(isinstance(a, np.ndarray) for a in [*reference, *candidate]):
        return LayerStats(index, name, op_type, node, skipped="not a tensor (sequence, map or optional)")
    first, other = np.asarray(reference[0]), np.asarray(candidate[0])
    row = LayerStats(index, name, op_type, node, list(first.shape), str(first.dtype))
    row.skipped = shape_mismatch(reference, candidate)
    if row.skipped is not None:
        return row
    if _is_float(first.dtype) != _is_float(other.dtype):
        row.skipped = f"dtypes differ: {first.dtype} vs {other.dtype}"
        return row
    errors = _errors(reference, candidate, config, with_median=False)
    row.max_abs_error = errors["max_abs"]
    row.mean_abs_error = errors["mean_abs"]
    row.max_rel_error = errors["max_rel"]
    row.cosine_similarity = errors["cosine"]
    row.exact = errors["exact"]
    row.passed = errors["passed"]
    return row


def _errors(
    reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], config: ValidationConfig, *, with_median: bool
) -> dict[str, Any]:
    if np.asarray(reference[0]).dtype.kind in "OUS":  # strings: equal or not
        same = all(np.array_equal(r, c) for r, c in zip(reference, candidate, strict=True))
        error = 0.0 if same else np.inf
        return {"max_abs": error, "mean_abs": error, "median_abs": error, "max_rel": error,
                "cosine": 1.0 if same else 0.0, "exact": True, "passed": same}
    exact = not _is_float(np.asarray(reference[0]).dtype)
    ref = np.concatenate([np.asarray(r, dtype=np.float64).ravel() for r in reference])
    new = np.concatenate([np.asarray(c, dtype=np.float64).ravel() for c in candidate])
    both_nan = np.isnan(ref) & np.isnan(new)
    error = np.where(both_nan, 0.0, np.abs(new - ref))
    error = np.nan_to_num(error, nan=np.inf)
    magnitude = np.abs(np.where(both_nan, 0.0, ref))
    ref_clean, new_clean = np.where(both_nan, 0.0, ref), np.where(both_nan, 0.0, new)
    norms = float(np.linalg.norm(ref_clean)) * float(np.linalg.norm(new_clean))
    if norms > 0:
        cosine = float(np.dot(ref_clean, new_clean)) / norms
    else:
        cosine = 1.0 if np.array_equal(ref_clean, new_clean) else 0.0
    if exact:
        passed = bool(np.array_equal(ref, new))
    else:
        passed = bool(np.isfinite(cosine) and cosine >= config.min_cosine)
        if config.atol is not None or config.rtol is not None:
            bound = (config.atol or 0.0) + (config.rtol or 0.0) * magnitude
            passed = passed and bool(np.all(error <= bound))
    empty = error.size == 0
    # Relative error is meaningless where the reference is (nearly) zero, as after a ReLU: measure it only where
    # |reference| is at least RELATIVE_FLOOR of the tensor's largest |reference|.
    floor = RELATIVE_FLOOR * (float(magnitude.max()) if not empty else 0.0)
    considered = magnitude >= max(floor, np.finfo(np.float64).tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = error[considered] / magnitude[considered]
    if not empty and not considered.any():
        relative = np.array([0.0 if not error.any() else np.inf])
    return {
        "max_abs": 0.0 if empty else float(error.max()),
        "mean_abs": 0.0 if empty else float(error.mean()),
        "median_abs": 0.0 if empty or not with_median else float(np.median(error)),
        "max_rel": 0.0 if relative.size == 0 else float(relative.max()),
        "cosine": cosine,
        "exact": exact,
        "passed": passed,
    }


def _top1_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> float | None:
    first = np.asarray(reference[0])
    if not _is_float(first.dtype) or first.ndim not in (2, 3) or first.shape[-1] < 2 or first.size == 0:
        return None
    agree = [np.argmax(np.asarray(r), axis=-1) == np.argmax(np.asarray(c), axis=-1)
             for r, c in zip(reference, candidate, strict=True)]
    return float(np.concatenate([a.ravel() for a in agree]).mean())


def _is_float(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating) or dtype.kind == "V"
