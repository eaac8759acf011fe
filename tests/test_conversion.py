"""Converting the opset instead of refusing: onnx's version converter, kept only when onnxruntime gives the same
outputs on the validation inputs; otherwise the model keeps its opset and the report says why."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnx_ir as ir
import pytest
from helpers import run, tensor_info

import onnx_share.api
from onnx_share.api import optimize
from onnx_share.io.load import default_opset


def _opset11_model(rng: np.random.Generator) -> onnx.ModelProto:
    """MatMul then Softmax at opset 11, where Softmax's meaning (axis coercion) changed in opset 13."""
    weight = rng.standard_normal((64, 32)).astype(np.float32)
    graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", "W"], ["h"]), oh.make_node("Softmax", ["h"], ["y"], axis=1)], "g",
        [tensor_info("x", onnx.TensorProto.FLOAT, [2, 3, 64])], [tensor_info("y", onnx.TensorProto.FLOAT, [2, 3, 32])],
        initializer=[onh.from_array(weight, "W")],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 11)], ir_version=6)


def test_a_blocked_opset_is_converted_when_outputs_agree(rng: np.random.Generator) -> None:
    model = _opset11_model(rng)
    result = optimize(model, {"default": {"bits": 4}, "min_elements": 16})
    conversion = result.report.conversion
    assert conversion is not None and conversion.kept and (conversion.from_opset, conversion.to_opset) == (11, 21)
    assert conversion.max_relative_difference <= 1e-5 and "synthesized" in conversion.inputs
    assert default_opset(result.model) == 21
    # the converter infers the shape of every value; the file carries only those the original declared (none)
    assert "h" not in {info.name for info in ir.to_proto(result.model).graph.value_info}
    (row,) = result.report.compressed
    assert row.storage == "UINT4"
    x = rng.standard_normal((2, 3, 64)).astype(np.float32)
    expected, got = run(model, {"x": x})[0], run(ir.to_proto(result.model), {"x": x})[0]
    # opset-11 Softmax(axis=1) normalizes over the flattened axes 1..: still so after the conversion
    np.testing.assert_allclose(got.reshape(2, -1).sum(axis=1), [1.0, 1.0], rtol=1e-5)
    np.testing.assert_allclose(expected.reshape(2, -1).sum(axis=1), [1.0, 1.0], rtol=1e-5)


def test_a_conversion_that_changes_results_is_not_kept(rng: np.random.Generator,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    model = _opset11_model(rng)
    real = onnx_share.api.convert_opset

    def wrong(proto: onnx.ModelProto, target: int) -> onnx.ModelProto:
        converted = real(proto, target)
        weight = converted.graph.initializer[0]
        weight.CopyFrom(onh.from_array(onh.to_array(weight) * np.float32(1.5), weight.name))
        return converted

    monkeypatch.setattr(onnx_share.api, "convert_opset", wrong)
    result = optimize(model, {"default": {"bits": 4}, "min_elements": 16})
    conversion = result.report.conversion
    assert conversion is not None and not conversion.kept and "outputs differ" in conversion.reason
    assert default_opset(result.model) == 11
    assert any(note.startswith("opset 11 -> 21 with onnx's version converter: not kept") for note in
               result.report.notes)


def test_no_conversion_when_the_opset_can_simply_be_raised(rng: np.random.Generator) -> None:
    model = _opset11_model(rng)
    del model.graph.node[1]
    model.graph.output[0].CopyFrom(tensor_info("h", onnx.TensorProto.FLOAT, [2, 3, 32]))
    result = optimize(model, {"default": {"bits": 4}, "min_elements": 16})
    assert result.report.conversion is None and default_opset(result.model) == 21
