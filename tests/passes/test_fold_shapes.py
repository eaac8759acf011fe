"""fold-shapes: ``Shape``/``Size`` of a constant become constants, constants left unread go, outputs are
bit-exact; and weights reached through reshaping ops or read by ``Einsum`` are found (tf2onnx's BERT has both)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx_ir as ir
import pytest
from helpers import make_model, run, tensor_info

import onnx_share
from onnx_share.io.load import load_model
from onnx_share.ir.weights import find_weights

FLOAT, INT64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64


def _shape_reader(rng: np.random.Generator) -> onnx.ModelProto:
    """x [2, 64] reshaped to the shape of C (read only by Shape) and to C2's size via Size; D is read by Shape
    and MatMul."""
    c = rng.normal(size=(1, 2, 4, 16)).astype(np.float32)
    d = rng.normal(size=(64, 64)).astype(np.float32)
    nodes = [
        oh.make_node("Shape", ["C"], ["c_shape"]),
        oh.make_node("Shape", ["C"], ["c_tail"], start=2),
        oh.make_node("Size", ["C"], ["c_size"]),
        oh.make_node("Reshape", ["x", "c_shape"], ["y"]),
        oh.make_node("Shape", ["D"], ["d_shape"]),
        oh.make_node("MatMul", ["x", "D"], ["z"]),
    ]
    outputs = [tensor_info("y", FLOAT, [1, 2, 4, 16]), tensor_info("c_tail", INT64, [2]),
               tensor_info("c_size", INT64, []), tensor_info("z", FLOAT, [2, 64]), tensor_info("d_shape", INT64, [2])]
    return make_model(nodes, [tensor_info("x", FLOAT, [2, 64])], outputs, {"C": c, "D": d}, opset=17)


def test_shape_only_constants_are_folded_away_bit_exactly(rng: np.random.Generator) -> None:
    model = _shape_reader(rng)
    result = onnx_share.optimize(model, {"passes": ["fold-shapes"]})
    out = ir.to_proto(result.model)
    assert {t.name for t in out.graph.initializer if t.data_type == FLOAT} == {"D"}  # D is still read by MatMul
    assert {n.op_type for n in out.graph.node} == {"Reshape", "MatMul"}
    assert [(c.name, c.bytes_before, c.bytes_after) for c in result.report.passes[0].changes] == [("C", 512, 0)]
    x = rng.normal(size=(2, 64)).astype(np.float32)
    for before, after in zip(run(model, {"x": x}), run(out, {"x": x}), strict=True):
        np.testing.assert_array_equal(before, after)


def test_fold_shapes_runs_by_default(rng: np.random.Generator) -> None:
    result = onnx_share.optimize(_shape_reader(rng), {"min_elements": 16})
    assert result.report.passes[0].name == "fold-shapes"
    assert "C" not in {t.name for t in ir.to_proto(result.model).graph.initializer}
    assert "C" not in {t.name for t in result.report.tensors}  # no skip row for a tensor that is gone


@pytest.mark.parametrize(
    ("node", "shape_input"),
    [
        (oh.make_node("Reshape", ["W", "shape"], ["Wr"]), np.array([64, 64], np.int64)),
        (oh.make_node("Flatten", ["W"], ["Wr"], axis=1), None),
        (oh.make_node("Squeeze", ["W", "shape"], ["Wr"]), np.array([0], np.int64)),
    ],
)
def test_weights_behind_reshaping_ops_are_found_per_tensor(node: onnx.NodeProto, shape_input: np.ndarray | None,
                                                          rng: np.random.Generator) -> None:
    weight = rng.normal(size=(1, 64, 64)).astype(np.float32) if node.op_type == "Squeeze" else \
        rng.normal(size=(64, 8, 8)).astype(np.float32)
    initializers = {"W": weight, **({"shape": shape_input} if shape_input is not None else {})}
    model = make_model([node, oh.make_node("MatMul", ["x", "Wr"], ["y"])], [tensor_info("x", FLOAT, [2, 64])],
                       [tensor_info("y", FLOAT, [2, 64])], initializers)
    (found,) = find_weights(load_model(model), min_elements=16).weights
    assert found.name == "W" and found.channel_axis is None and found.op_types == ("MatMul",)
    result = onnx_share.optimize(model, {"default": {"bits": 8}, "min_elements": 16})
    assert [t.granularity for t in result.report.compressed] == ["tensor"]


def test_a_reshape_of_unknown_rank_passes_the_weight_on(rng: np.random.Generator) -> None:
    """The target shape is computed (Concat of a Shape), so the Reshape's output rank is unknown: still a weight."""
    weight = rng.normal(size=(64, 8, 8)).astype(np.float32)
    nodes = [oh.make_node("Shape", ["x"], ["xs"], start=1), oh.make_node("Concat", ["xs", "k"], ["target"], axis=0),
             oh.make_node("Reshape", ["W", "target"], ["Wr"]), oh.make_node("MatMul", ["x", "Wr"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 64])], [tensor_info("y", FLOAT, [2, 64])],
                       {"W": weight, "k": np.array([64], np.int64)})
    (found,) = find_weights(load_model(model), min_elements=16).weights
    assert found.name == "W" and found.channel_axis is None and found.reduction_axis is None


def test_einsum_operands_are_weights(rng: np.random.Generator, tmp_path) -> None:
    weight = rng.normal(size=(8, 16, 64)).astype(np.float32)
    model = make_model([oh.make_node("Einsum", ["x", "W"], ["y"], equation="bi,hdi->bhd")],
                       [tensor_info("x", FLOAT, [2, 64])], [tensor_info("y", FLOAT, [2, 8, 16])], {"W": weight})
    result = onnx_share.optimize(model, {"default": {"bits": 8}, "min_elements": 16})
    (row,) = result.report.compressed
    assert row.consumers == ["Einsum"]
    result.save(tmp_path / "out.onnx")
    assert result.validate().passed
