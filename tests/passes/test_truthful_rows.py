"""Report rows tell the truth: the error is original → final whatever ran before, weights holding NaN/Inf are
left alone with a reason, and no tensor is written in a form bigger than it was stored in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import DIGITS_DIR, make_model, tensor_info

from onnx_share.api import optimize
from onnx_share.check.weight_diff import WeightDiff
from onnx_share.io.proto import ProtoModel

DIGITS = DIGITS_DIR / "digits_cnn.onnx"


def test_error_after_prune_is_measured_from_the_original_weight(tmp_path: Path) -> None:
    result = optimize(DIGITS, {"default": {"bits": 4}, "prune": {"fraction": 0.5}})
    path = result.save(tmp_path / "out.onnx")
    diff = WeightDiff(ProtoModel.read(DIGITS), ProtoModel.read(path))
    independent = {row.name: row.relative_error for row in diff.rows()}
    for row in result.report.compressed:
        assert row.relative_error == pytest.approx(independent[row.name], rel=1e-6, abs=1e-9)
    assert min(row.relative_error for row in result.report.compressed) > 0.1  # half the weights are gone


@pytest.mark.parametrize("scheme", ["codebook", "uniform"])
def test_weights_with_nan_or_inf_are_left_alone_with_a_reason(scheme: str, rng: np.random.Generator) -> None:
    weight = rng.standard_normal((64, 64)).astype(np.float32)
    weight[3, 5] = np.nan
    model = make_model(
        [onnx.helper.make_node("MatMul", ["x", "W"], ["y"])],
        [tensor_info("x", onnx.TensorProto.FLOAT, [1, 64])],
        [tensor_info("y", onnx.TensorProto.FLOAT, [1, 64])],
        {"W": weight},
    )
    result = optimize(model, {"default": {"scheme": scheme, "bits": 4}, "min_elements": 16})
    (row,) = [t for t in result.report.tensors if t.name == "W"]
    assert row.scheme is None and row.skipped == "holds NaN or infinite values"


def test_no_tensor_is_written_bigger_than_it_was(tmp_path: Path) -> None:
    result = optimize(DIGITS, {"default": {"bits": 8, "granularity": "channel"}})
    result.save(tmp_path / "out.onnx")
    for row in result.report.compressed:
        assert row.bytes_after < row.bytes_before
    refused = [t for t in result.report.tensors if t.skipped and "would not be smaller" in t.skipped]
    assert refused, "per-channel 8-bit codebooks of small conv kernels cost more than the float kernel"
    assert result.report.file_bytes_after < result.report.file_bytes_before
