"""bfloat16 weights behind a Cast run in onnxruntime after either scheme; the onnxruntime target check flags a
bfloat16 DequantizeLinear, which has no CPU kernel; a bfloat16 graph input is not validated, with a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import pytest
from helpers import bfloat16_matmul_model, run, tensor_info

from onnx_share.api import optimize
from onnx_share.check.feeds import NotValidated, input_metadata, synthesize_feeds
from onnx_share.config import ValidationConfig
from onnx_share.targets.checks import check_model


@pytest.mark.parametrize("scheme", ["codebook", "uniform"])
def test_bfloat16_weights_run_in_onnxruntime(scheme: str, tmp_path: Path, rng: np.random.Generator) -> None:
    model = bfloat16_matmul_model(rng)
    result = optimize(model, {"default": {"scheme": scheme, "bits": 8}, "min_elements": 16})
    assert [t.name for t in result.report.compressed] == ["W"]
    path = result.save(tmp_path / "out.onnx")
    x = rng.standard_normal((1, 64)).astype(np.float32)
    expected, got = run(model, {"x": x})[0], run(path, {"x": x})[0]
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()
    assert not [f for f in check_model(path, "onnxruntime") if f.severity == "error"]


def test_the_onnxruntime_check_flags_a_bfloat16_dequantize(tmp_path: Path) -> None:
    graph = oh.make_graph(
        [oh.make_node("DequantizeLinear", ["q", "s"], ["w"]), oh.make_node("Cast", ["w"], ["y"], to=1)], "g", [],
        [tensor_info("y", onnx.TensorProto.FLOAT, [4])],
        initializer=[onh.from_array(np.array([1, 2, 3, 4], np.int8), "q"),
                     oh.make_tensor("s", onnx.TensorProto.BFLOAT16, [], [0.5])],
    )
    path = tmp_path / "dq.onnx"
    onnx.save_model(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 21)], ir_version=10), path)
    assert [f.rule for f in check_model(path, "onnxruntime") if f.severity == "error"] == ["bfloat16-dequantize"]


def test_a_bfloat16_input_is_not_validated() -> None:
    graph = oh.make_graph([oh.make_node("Cast", ["x"], ["y"], to=1)], "g",
                          [tensor_info("x", onnx.TensorProto.BFLOAT16, [2])], [tensor_info("y", 1, [2])])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 21)], ir_version=10)
    with pytest.raises(NotValidated, match="'x' is bfloat16"):
        synthesize_feeds(model, input_metadata(model, {}), ValidationConfig())
