"""A weight that also feeds a data input of another op (a real VAD model's LSTM weights also feed ``Slice``) is
compressed, and that input reads the decoded tensor; only inputs that set shapes, integer casts and unknown
operators forbid it."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnx_ir as ir
import pytest
from helpers import run, tensor_info

from onnx_share.api import optimize
from onnx_share.io.load import load_model
from onnx_share.ir.weights import find_weights


def _model(extra: onnx.NodeProto, rng: np.random.Generator, domains: tuple[str, ...] = (),
           z_type: int = onnx.TensorProto.FLOAT) -> onnx.ModelProto:
    initializers = {"W": rng.standard_normal((64, 64)).astype(np.float32),
                    "s": np.array([0], np.int64), "e": np.array([16], np.int64)}
    graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", "W"], ["h"]), extra], "g",
        [tensor_info("x", onnx.TensorProto.FLOAT, [1, 64])],
        [tensor_info("h", onnx.TensorProto.FLOAT, [1, 64]), oh.make_tensor_value_info("z", z_type, None)],
        initializer=[onh.from_array(v, k) for k, v in initializers.items()],
    )
    opsets = [oh.make_opsetid("", 17), *(oh.make_opsetid(d, 1) for d in domains)]
    return oh.make_model(graph, opset_imports=opsets, ir_version=8)


def test_a_weight_that_also_feeds_a_slice_is_compressed(rng: np.random.Generator) -> None:
    model = _model(oh.make_node("Slice", ["W", "s", "e"], ["z"]), rng)
    result = optimize(model, {"default": {"bits": 8}, "min_elements": 16})
    assert [t.name for t in result.report.compressed] == ["W"]
    proto = ir.to_proto(result.model)
    proto.graph.output.append(oh.make_empty_tensor_value_info("W"))  # the decoded weight keeps its name
    x = rng.standard_normal((1, 64)).astype(np.float32)
    h, z, decoded = run(proto, {"x": x})
    np.testing.assert_allclose(h, x @ decoded, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(z, decoded[:16])
    assert not np.array_equal(decoded, onh.to_array(model.graph.initializer[0]))


@pytest.mark.parametrize(("extra", "domains", "z_type", "reason"), [
    (oh.make_node("Custom", ["W"], ["z"], domain="com.example"), ("com.example",), onnx.TensorProto.FLOAT,
     "an operator onnx-share does not know"),
    (oh.make_node("Cast", ["W"], ["z"], to=onnx.TensorProto.INT64), (), onnx.TensorProto.INT64,
     "a Cast to an integer type"),
])
def test_unknown_operators_and_integer_casts_forbid_it(extra: onnx.NodeProto, domains: tuple[str, ...], z_type: int,
                                                      reason: str, rng: np.random.Generator) -> None:
    model = load_model(_model(extra, rng, domains, z_type))
    skipped = {s.name: s.reason for s in find_weights(model, min_elements=16).skipped}
    assert reason in skipped["W"]
