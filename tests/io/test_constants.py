"""The loader lifts ``Constant`` weights to initializers, so everything downstream sees one kind of weight."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnx_ir as ir
from helpers import make_model, run, tensor_info

from onnx_share.api import optimize
from onnx_share.io.load import load_model


def _constant_weight_model(rng: np.random.Generator) -> tuple[onnx.ModelProto, np.ndarray]:
    weight = rng.standard_normal((64, 64)).astype(np.float32)
    then = oh.make_graph(
        [oh.make_node("Constant", [], ["Wi"], value=onh.from_array(weight * 2, "Wi")),
         oh.make_node("MatMul", ["x", "Wi"], ["t"])],
        "then", [], [tensor_info("t", onnx.TensorProto.FLOAT, [1, 64])],
    )
    other = oh.make_graph([oh.make_node("Identity", ["x"], ["e"])], "else", [],
                          [tensor_info("e", onnx.TensorProto.FLOAT, [1, 64])])
    nodes = [
        oh.make_node("Constant", [], ["W"], value=onh.from_array(weight, "W")),
        oh.make_node("MatMul", ["x", "W"], ["h"]),
        oh.make_node("If", ["c"], ["y0"], then_branch=then, else_branch=other),
        oh.make_node("Add", ["h", "y0"], ["y"]),
    ]
    inputs = [tensor_info("x", onnx.TensorProto.FLOAT, [1, 64]), tensor_info("c", onnx.TensorProto.BOOL, [])]
    return make_model(nodes, inputs, [tensor_info("y", onnx.TensorProto.FLOAT, [1, 64])]), weight


def test_constant_nodes_become_initializers_in_every_graph(rng: np.random.Generator) -> None:
    model, _ = _constant_weight_model(rng)
    loaded = load_model(model)
    assert not [n for g in loaded.graphs() for n in g if n.op_type == "Constant"]
    assert set(loaded.graph.initializers) == {"W"}
    subgraph = next(g for g in loaded.graphs() if g is not loaded.graph and g.initializers)
    assert set(subgraph.initializers) == {"Wi"}
    assert len(model.graph.node) == 4, "the caller's proto is not modified"


def test_constant_weights_are_compressed_like_initializers(rng: np.random.Generator) -> None:
    model, _ = _constant_weight_model(rng)
    result = optimize(model, {"default": {"bits": 8}, "min_elements": 16})
    assert {t.name for t in result.report.compressed} == {"W", "Wi"}
    x = rng.standard_normal((1, 64)).astype(np.float32)
    for condition in (True, False):
        feeds = {"x": x, "c": np.array(condition)}
        expected = run(model, feeds)[0]
        got = run(ir.to_proto(result.model), feeds)[0]
        assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()

