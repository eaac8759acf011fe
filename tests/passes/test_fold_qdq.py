"""fold-qdq on hand-built QDQ graphs, the ONNX backend models and the ONNX Q/DQ node tests: outputs bit-identical.

The node-test data folders (``onnx/backend/test/data/node``) are not shipped in the onnx wheel, so the Q/DQ node
tests are rebuilt from their generators (``onnx.backend.test.case.node.{quantize,dequantize}linear``), restamped
to the newest opset and IR version onnxruntime loads.
"""

from __future__ import annotations

import importlib

import ml_dtypes
import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnx_ir as ir
import onnxruntime as ort
import pytest
from backend_cases import CASES, case_feeds, original_outputs
from helpers import assert_identical, make_model, run, tensor_info

from onnx_share.io.load import MAX_OPSET, load_model
from onnx_share.passes.base import PassOutcome
from onnx_share.passes.fold_qdq import FoldQdqPass, QuantParams, quantize_linear, represents_exactly

TP = onnx.TensorProto
FLOAT, FLOAT16, BOOL = TP.FLOAT, TP.FLOAT16, TP.BOOL
NP_TYPES = {TP.INT8: np.int8, TP.UINT8: np.uint8, TP.INT16: np.int16, TP.UINT16: np.uint16,
            TP.INT4: ml_dtypes.int4, TP.UINT4: ml_dtypes.uint4, TP.INT2: ml_dtypes.int2, TP.UINT2: ml_dtypes.uint2}


def _fold(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassOutcome]:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    ir_model = load_model(copy)  # the one loader: Constant nodes become initializers
    outcome = FoldQdqPass()(ir_model)
    assert isinstance(outcome, PassOutcome)
    out = ir.serde.serialize_model(ir_model)
    onnx.checker.check_model(out, full_check=True)
    return out, outcome


def _reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The original's outputs; without graph optimizations where onnxruntime's optimizers fail on it (1.31
    cannot constant-fold QuantizeLinear to UINT2/INT2, and its QDQ cleanup inserts an Identity it has no
    opset-25 kernel for)."""
    try:
        return run(model, feeds)
    except (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.NotImplemented) as exc:
        if "constant_folding" not in str(exc) and "Transformer" not in str(exc):
            raise
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _assert_exact(model: onnx.ModelProto, out: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    assert [o.name for o in out.graph.output] == [o.name for o in model.graph.output]
    for want, got in zip(_reference(model, feeds), run(out, feeds), strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)


def _with_int32_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """A copy that also outputs ``name`` cast to int32 (onnxruntime cannot hand 4-/2-bit tensors to numpy)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.node.append(oh.make_node("Cast", [name], [f"{name}_int32"], to=TP.INT32))
    copy.graph.output.append(oh.make_tensor_value_info(f"{name}_int32", TP.INT32, None))
    return copy


def _ops(graph: onnx.GraphProto) -> list[str]:
    ops = []
    for node in graph.node:
        ops.append(node.op_type)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                ops.extend(_ops(attr.g))
    return ops


# A constant float weight → QuantizeLinear → DequantizeLinear → MatMul/Conv, in every layout and type.
# name: (integer type, opset, layout, zero point, weight dtype, consumer)
LAYOUTS = {
    "int8-tensor-output-dtype": (TP.INT8, 21, "tensor", False, np.float32, "MatMul"),
    "uint8-tensor-default-type": (TP.UINT8, 13, "tensor", False, np.float32, "MatMul"),
    "uint8-zero-point": (TP.UINT8, 13, "tensor", True, np.float32, "MatMul"),
    "int8-axis-conv": (TP.INT8, 13, "axis", True, np.float32, "Conv"),
    "uint8-axis-matmul": (TP.UINT8, 13, "axis", True, np.float32, "MatMul"),
    "int8-opset10": (TP.INT8, 10, "tensor", True, np.float32, "MatMul"),
    "int16-tensor": (TP.INT16, 21, "tensor", True, np.float32, "MatMul"),
    "uint16-axis": (TP.UINT16, 21, "axis", True, np.float32, "MatMul"),
    "int4-blocked": (TP.INT4, 21, "block", False, np.float32, "MatMul"),
    "uint4-blocked-zero-point": (TP.UINT4, 21, "block", True, np.float32, "MatMul"),
    "int4-axis": (TP.INT4, 21, "axis", True, np.float32, "MatMul"),
    "int8-blocked-conv": (TP.INT8, 21, "block", True, np.float32, "Conv"),
    "uint2-axis": (TP.UINT2, 25, "axis", True, np.float32, "MatMul"),
    "fp16-int8-axis": (TP.INT8, 21, "axis", True, np.float16, "MatMul"),
    "fp16-uint8-tensor": (TP.UINT8, 19, "tensor", True, np.float16, "MatMul"),
}


def _qdq_weight_model(layout_name: str, rng: np.random.Generator):
    qtype, opset, layout, with_zero, wtype, consumer = LAYOUTS[layout_name]
    shape, x_shape, y_shape = (((16, 8, 3, 3), [1, 8, 6, 6], [1, 16, 6, 6]) if consumer == "Conv"
                               else ((64, 48), [2, 64], [2, 48]))
    axis = 0 if consumer == "Conv" else 1
    w = rng.normal(size=shape).astype(wtype)
    attrs: dict[str, int] = {}
    if layout == "tensor":
        scale = np.array(0.02, dtype=wtype)
    elif layout == "axis":
        scale = rng.uniform(0.01, 0.05, size=shape[axis]).astype(wtype)
        attrs["axis"] = axis
    else:
        axis = 1 if consumer == "Conv" else 0  # blocks along the reduction axis
        block = 4 if consumer == "Conv" else 16
        scale_shape = list(shape)
        scale_shape[axis] = -(-shape[axis] // block)
        scale = rng.uniform(0.01, 0.05, size=scale_shape).astype(wtype)
        attrs.update(axis=axis, block_size=block)
    np_type = NP_TYPES[qtype]
    low, high = int(ml_dtypes.iinfo(np_type).min), int(ml_dtypes.iinfo(np_type).max)
    # exact halves x / scale = k + 0.5 exercise round-half-to-even; a few saturate
    flat_scale = np.broadcast_to(scale, ()) if scale.ndim == 0 else None
    if flat_scale is not None:
        w.reshape(-1)[:6] = ((np.arange(6) - 3 + 0.5) * flat_scale.astype(np.float64)).astype(wtype)
        w.reshape(-1)[6:8] = [1e4, -1e4]
    initializers = {"W": w, "s": scale}
    q_inputs = ["W", "s"]
    if with_zero:
        zero = rng.integers(low, high + 1, size=scale.shape) if low < 0 else rng.integers(0, high + 1, scale.shape)
        zero = np.clip(zero, low, high).astype(np_type)
        if scale.ndim == 0:
            zero = zero.reshape(())
        initializers["zp"] = zero
        q_inputs.append("zp")
    q_attrs = dict(attrs)
    if not with_zero and qtype != TP.UINT8:
        q_attrs["output_dtype"] = qtype
    nodes = [
        oh.make_node("QuantizeLinear", q_inputs, ["Wq"], name="quantize_W", **q_attrs),
        oh.make_node("DequantizeLinear", ["Wq", *q_inputs[1:]], ["Wd"], name="dequantize_W", **attrs),
        oh.make_node(consumer, ["x", "Wd"], ["y"], **({"pads": [1, 1, 1, 1]} if consumer == "Conv" else {})),
    ]
    elem = FLOAT16 if wtype == np.float16 else FLOAT
    model = make_model(nodes, [tensor_info("x", elem, x_shape)], [tensor_info("y", elem, y_shape)], initializers,
                       opset=opset, ir_version=11 if opset >= 25 else 10 if opset >= 21 else 8)
    feeds = {"x": rng.normal(size=x_shape).astype(wtype)}
    return model, feeds


@pytest.mark.parametrize("layout_name", LAYOUTS)
def test_constant_quantize_folds_to_integer_initializer(layout_name: str, rng: np.random.Generator) -> None:
    model, feeds = _qdq_weight_model(layout_name, rng)
    out, outcome = _fold(model)
    _assert_exact(model, out, feeds)
    assert _ops(out.graph) == ["DequantizeLinear", _ops(model.graph)[-1]]
    initializers = {t.name: t for t in out.graph.initializer}
    assert "W" not in initializers
    folded = initializers["Wq"]
    assert folded.data_type == LAYOUTS[layout_name][0]
    # the stored integers are exactly what onnxruntime's QuantizeLinear computes from W
    (reference,) = _reference(_with_int32_output(model, "Wq"), feeds)[1:]
    assert np.array_equal(onh.to_array(folded).astype(np.int32), reference)
    assert out.ByteSize() < model.ByteSize()
    (row,) = [c for c in outcome.changes if c.change == "fold-quantize"]
    assert row.name == "W" and row.details["quantized"] == ["Wq"] and row.relative_error == 0.0
    assert row.bytes_before == onh.to_array(next(t for t in model.graph.initializer if t.name == "W")).nbytes
    assert row.bytes_after < row.bytes_before


def _adversarial(scale: float, dtype: type) -> np.ndarray:
    """Values whose x / scale lies on or next to a rounding tie, plus saturating ones."""
    ties = ((np.arange(-300, 300) + 0.5) * np.float64(dtype(scale))).astype(dtype)
    up = np.nextafter(ties.astype(np.float32), np.float32(np.inf)).astype(dtype)
    down = np.nextafter(ties.astype(np.float32), np.float32(-np.inf)).astype(dtype)
    return np.concatenate([ties, up, down, np.array([0, -0.0, 1e4, -1e4], dtype=dtype)])


@pytest.mark.parametrize("qtype", [TP.INT8, TP.UINT8, TP.INT16, TP.UINT16, TP.INT4, TP.UINT4])
@pytest.mark.parametrize("wtype", [np.float32, np.float16])
def test_quantize_linear_matches_onnxruntime_on_ties(qtype: int, wtype: type) -> None:
    np_type = NP_TYPES[qtype]
    for scale in (0.1, 0.3, 0.0123, 1.7):
        x = _adversarial(scale, wtype)
        zero = np.array(3 if qtype in (TP.INT8, TP.UINT8, TP.INT16, TP.UINT16, TP.UINT4) else 1, dtype=np_type)
        elem = FLOAT16 if wtype == np.float16 else FLOAT
        model = make_model([oh.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
                            oh.make_node("Cast", ["q"], ["y"], to=TP.INT32)],
                           [tensor_info("x", elem, [len(x)])], [tensor_info("y", TP.INT32, [len(x)])],
                           {"s": np.array(scale, dtype=wtype), "zp": zero}, opset=21, ir_version=10)
        (want,) = run(model, {"x": x})
        params = QuantParams(np.array(scale, dtype=wtype), zero, ir.DataType(qtype), None, 0)
        got = quantize_linear(x, params)
        assert got.dtype == np_type
        assert np.array_equal(got.astype(np.int32), want)


def test_dq_q_chains_collapse_to_one_pair(rng: np.random.Generator) -> None:
    """Activations: Q → DQ → Q → DQ → Q → DQ → Relu keeps one pair; the weight chain folds to DQ(int8)."""
    w = rng.normal(size=(16, 16)).astype(np.float32)
    nodes = [oh.make_node("QuantizeLinear", ["x", "s", "zp"], ["q1"]),
             oh.make_node("DequantizeLinear", ["q1", "s", "zp"], ["d1"]),
             oh.make_node("QuantizeLinear", ["d1", "s", "zp"], ["q2"]),
             oh.make_node("DequantizeLinear", ["q2", "s", "zp"], ["d2"]),
             oh.make_node("QuantizeLinear", ["d2", "s", "zp"], ["q3"]),
             oh.make_node("DequantizeLinear", ["q3", "s", "zp"], ["d3"]),
             oh.make_node("QuantizeLinear", ["W", "ws"], ["wq1"]),
             oh.make_node("DequantizeLinear", ["wq1", "ws"], ["wd1"]),
             oh.make_node("QuantizeLinear", ["wd1", "ws"], ["wq2"]),
             oh.make_node("DequantizeLinear", ["wq2", "ws"], ["wd2"]),
             oh.make_node("MatMul", ["d3", "wd2"], ["m"]),
             oh.make_node("Relu", ["m"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [4, 16])], [tensor_info("y", FLOAT, [4, 16])],
                       {"W": w, "s": np.array(0.05, np.float32), "zp": np.array(7, np.uint8),
                        "ws": np.array(0.01, np.float32)}, opset=13)
    out, outcome = _fold(model)
    _assert_exact(model, out, {"x": rng.normal(size=(4, 16)).astype(np.float32)})
    assert _ops(out.graph) == ["QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "MatMul", "Relu"]
    kinds = [c.change for c in outcome.changes]
    assert kinds.count("remove-dequantize-quantize") == 3 and kinds.count("fold-quantize") == 1
    assert out.ByteSize() < model.ByteSize()


def test_dq_q_with_other_parameters_is_kept(rng: np.random.Generator) -> None:
    nodes = [oh.make_node("QuantizeLinear", ["x", "s", "zp"], ["q1"]),
             oh.make_node("DequantizeLinear", ["q1", "s", "zp"], ["d1"]),
             oh.make_node("QuantizeLinear", ["d1", "s2", "zp"], ["q2"]),
             oh.make_node("DequantizeLinear", ["q2", "s2", "zp"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [64])], [tensor_info("y", FLOAT, [64])],
                       {"s": np.array(0.05, np.float32), "s2": np.array(0.07, np.float32),
                        "zp": np.array(0, np.int8)}, opset=13)
    out, outcome = _fold(model)
    assert _ops(out.graph) == _ops(model.graph)
    assert not outcome.modified
    assert any("differ" in n for n in outcome.notes)


def test_dq_q_refused_where_float16_cannot_round_trip_int16(rng: np.random.Generator) -> None:
    """n·s in float16 loses integers above 2**11: DQ(int16, fp16 scale) → Q is not an identity."""
    nodes = [oh.make_node("DequantizeLinear", ["x", "s", "zp"], ["d"]),
             oh.make_node("QuantizeLinear", ["d", "s", "zp"], ["y"])]
    model = make_model(nodes, [tensor_info("x", TP.INT16, [5])], [tensor_info("y", TP.INT16, [5])],
                       {"s": np.array(0.5, np.float16), "zp": np.array(0, np.int16)}, opset=21, ir_version=10)
    out, outcome = _fold(model)
    assert _ops(out.graph) == ["DequantizeLinear", "QuantizeLinear"]
    assert any("FLOAT16 cannot hold" in n for n in outcome.notes)
    # dequantizing in float16, as the spec allows, loses the integer (onnxruntime happens to use float32)
    assert int(np.rint(np.float16(4097 * np.float16(0.5)) / np.float16(0.5))) != 4097


def test_dq_q_between_graph_input_and_output_keeps_the_output_name(rng: np.random.Generator) -> None:
    nodes = [oh.make_node("DequantizeLinear", ["x", "s", "zp"], ["d"]),
             oh.make_node("QuantizeLinear", ["d", "s", "zp"], ["y"])]
    model = make_model(nodes, [tensor_info("x", TP.UINT8, [6])], [tensor_info("y", TP.UINT8, [6])],
                       {"s": np.array(0.3, np.float32), "zp": np.array(9, np.uint8)}, opset=13)
    out, _ = _fold(model)
    assert _ops(out.graph) == ["Identity"]
    x = np.array([0, 1, 9, 128, 254, 255], np.uint8)
    _assert_exact(model, out, {"x": x})
    assert np.array_equal(run(out, {"x": x})[0], x)


def test_quantize_output_that_is_a_graph_output(rng: np.random.Generator) -> None:
    w = rng.normal(size=(32, 8)).astype(np.float32)
    nodes = [oh.make_node("QuantizeLinear", ["W", "s", "zp"], ["Wq"]),
             oh.make_node("DequantizeLinear", ["Wq", "s", "zp"], ["Wd"]),
             oh.make_node("MatMul", ["x", "Wd"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 32])],
                       [tensor_info("y", FLOAT, [2, 8]), tensor_info("Wq", TP.INT8, [32, 8])],
                       {"W": w, "s": np.array(0.02, np.float32), "zp": np.array(0, np.int8)}, opset=13)
    out, _ = _fold(model)
    _assert_exact(model, out, {"x": rng.normal(size=(2, 32)).astype(np.float32)})
    assert [o.name for o in out.graph.output] == ["y", "Wq"]
    assert "QuantizeLinear" not in _ops(out.graph) and "W" not in {t.name for t in out.graph.initializer}
    assert out.ByteSize() < model.ByteSize()


def test_weight_with_another_float_consumer_is_not_folded(rng: np.random.Generator) -> None:
    w = rng.normal(size=(16, 16)).astype(np.float32)
    nodes = [oh.make_node("QuantizeLinear", ["W", "s"], ["Wq"]),
             oh.make_node("DequantizeLinear", ["Wq", "s"], ["Wd"]),
             oh.make_node("MatMul", ["x", "Wd"], ["h"]),
             oh.make_node("MatMul", ["h", "W"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 16])], [tensor_info("y", FLOAT, [2, 16])],
                       {"W": w, "s": np.array(0.02, np.float32)}, opset=13)
    out, outcome = _fold(model)
    assert "QuantizeLinear" in _ops(out.graph)
    assert any("'W'" in n and "MatMul:1" in n for n in outcome.notes)


def _if_model(rng: np.random.Generator) -> onnx.ModelProto:
    """The then-branch quantizes an outer-scope weight; the else-branch a Constant of its own, behind an
    Identity of an outer value; the then-branch output comes through an Identity.

    Scales and zero points live in the branches: onnxruntime 1.31 cannot load a DequantizeLinear → MatMul in a
    subgraph whose weight or scale comes from the outer scope (its MatMulNBits fusion looks them up in the
    subgraph only), original model included.
    """
    outer = rng.normal(size=(32, 8)).astype(np.float32)
    inner = rng.normal(size=(32, 8)).astype(np.float32)
    then_graph = oh.make_graph(
        [oh.make_node("QuantizeLinear", ["W_outer", "ts"], ["tq"]),
         oh.make_node("DequantizeLinear", ["tq", "ts"], ["td"]),
         oh.make_node("MatMul", ["x", "td"], ["tm"]),
         oh.make_node("Identity", ["tm"], ["t"])],
        "then", [], [tensor_info("t", FLOAT, [2, 8])], initializer=[onh.from_array(np.array(0.03, np.float32), "ts")])
    else_graph = oh.make_graph(
        [oh.make_node("Constant", [], ["W_inner"], value=onh.from_array(inner, "W_inner")),
         oh.make_node("Identity", ["x"], ["ex"]),
         oh.make_node("QuantizeLinear", ["W_inner", "es", "ezp"], ["eq"]),
         oh.make_node("DequantizeLinear", ["eq", "es", "ezp"], ["ed"]),
         oh.make_node("MatMul", ["ex", "ed"], ["em"]),
         oh.make_node("Relu", ["em"], ["e"])],
        "else", [], [tensor_info("e", FLOAT, [2, 8])],
        initializer=[onh.from_array(np.array(0.05, np.float32), "es"), onh.from_array(np.array(-3, np.int8), "ezp")])
    nodes = [oh.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)]
    return make_model(nodes, [tensor_info("cond", BOOL, []), tensor_info("x", FLOAT, [2, 32])],
                      [tensor_info("y", FLOAT, [2, 8])], {"W_outer": outer}, opset=13)


@pytest.mark.parametrize("cond", [True, False])
def test_qdq_inside_if_branches(cond: bool, rng: np.random.Generator) -> None:
    model = _if_model(rng)
    out, outcome = _fold(model)
    _assert_exact(model, out, {"cond": np.array(cond), "x": rng.normal(size=(2, 32)).astype(np.float32)})
    ops = _ops(out.graph)
    assert "QuantizeLinear" not in ops and "Constant" not in ops
    assert ops.count("Identity") == 0  # both were value-preserving: one renamed into the branch output
    assert {c.name for c in outcome.changes if c.change == "fold-quantize"} == {"W_outer", "W_inner"}
    assert "W_outer" not in {t.name for t in out.graph.initializer}
    branches = {a.name: a.g for a in out.graph.node[0].attribute}
    assert [o.name for o in branches["then_branch"].output] == ["t"]
    assert out.ByteSize() < model.ByteSize()


def test_qdq_inside_loop_body(rng: np.random.Generator) -> None:
    """A Loop body folds its weight; the body's Identity from its condition input to output stays."""
    w = rng.normal(size=(64,)).astype(np.float32)
    body = oh.make_graph(
        [oh.make_node("Identity", ["cond_in"], ["cond_out"]),
         oh.make_node("QuantizeLinear", ["W", "s", "zp"], ["wq"]),
         oh.make_node("DequantizeLinear", ["wq", "s", "zp"], ["wd"]),
         oh.make_node("Identity", ["v_in"], ["v_alias"]),
         oh.make_node("Add", ["v_alias", "wd"], ["v_out"])],
        "body", [tensor_info("i", TP.INT64, []), tensor_info("cond_in", BOOL, []), tensor_info("v_in", FLOAT, [64])],
        [tensor_info("cond_out", BOOL, []), tensor_info("v_out", FLOAT, [64])],
        initializer=[onh.from_array(w, "W"), onh.from_array(np.array(0.01, np.float32), "s"),
                     onh.from_array(np.array(5, np.uint8), "zp")])
    nodes = [oh.make_node("Loop", ["trips", "", "v0"], ["v"], body=body)]
    model = make_model(nodes, [tensor_info("trips", TP.INT64, []), tensor_info("v0", FLOAT, [64])],
                       [tensor_info("v", FLOAT, [64])], opset=13)
    out, outcome = _fold(model)
    _assert_exact(model, out, {"trips": np.array(3), "v0": rng.normal(size=64).astype(np.float32)})
    body_out = out.graph.node[0].attribute[0].g
    assert [n.op_type for n in body_out.node] == ["Identity", "DequantizeLinear", "Add"]
    assert {t.name for t in body_out.initializer} == {"wq", "s", "zp"}
    assert {c.change for c in outcome.changes} == {"fold-quantize", "remove-identity"}


def test_identity_and_cast_cleanup(rng: np.random.Generator) -> None:
    nodes = [oh.make_node("Cast", ["h"], ["h32"], to=FLOAT),            # float16 → float32
             oh.make_node("Cast", ["h32"], ["h16"], to=FLOAT16),        # → float16: exact round trip, removed
             oh.make_node("Cast", ["x"], ["x16"], to=FLOAT16),          # float32 → float16 → float32: lossy, kept
             oh.make_node("Cast", ["x16"], ["x32"], to=FLOAT),
             oh.make_node("Cast", ["x32"], ["x32b"], to=FLOAT),         # same type: removed
             oh.make_node("Cast", ["i"], ["i16"], to=FLOAT16),          # int8 → float16 → int8: exact, removed
             oh.make_node("Cast", ["i16"], ["i8"], to=TP.INT8),
             oh.make_node("Cast", ["j"], ["j16"], to=FLOAT16),          # int16 → float16 → int16: lossy, kept
             oh.make_node("Cast", ["j16"], ["j8"], to=TP.INT16),
             oh.make_node("Relu", ["x32b"], ["r"]),
             oh.make_node("Identity", ["r"], ["y"]),                    # renames r to the output y
             oh.make_node("Identity", ["x"], ["x_out"]),                # graph input → output: kept
             oh.make_node("Identity", ["h16"], ["h_out"]),
             oh.make_node("Identity", ["i8"], ["i_out"]),
             oh.make_node("Identity", ["j8"], ["j_out"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [5]), tensor_info("h", FLOAT16, [5]),
                               tensor_info("i", TP.INT8, [5]), tensor_info("j", TP.INT16, [5])],
                       [tensor_info("y", FLOAT, [5]), tensor_info("x_out", FLOAT, [5]),
                        tensor_info("h_out", FLOAT16, [5]), tensor_info("i_out", TP.INT8, [5]),
                        tensor_info("j_out", TP.INT16, [5])], opset=13)
    out, _ = _fold(model)
    feeds = {"x": np.array([0.1, -3.3, 1e5, np.inf, -0.0], np.float32),
             "h": np.array([0.1, -3.3, 6e4, -np.inf, -0.0], np.float16),
             "i": np.array([-128, -1, 0, 5, 127], np.int8), "j": np.array([-32768, 2049, 0, 5, 32767], np.int16)}
    _assert_exact(model, out, feeds)
    assert sorted(_ops(out.graph)) == sorted(["Cast", "Cast", "Cast", "Cast", "Relu", "Identity", "Identity",
                                              "Identity"])
    produced = {o: n.op_type for n in out.graph.node for o in n.output}
    assert produced["y"] == "Relu" and produced["x_out"] == "Identity"


def test_represents_exactly() -> None:
    D = ir.DataType
    exact = [(D.FLOAT16, D.FLOAT), (D.BFLOAT16, D.FLOAT), (D.FLOAT, D.DOUBLE), (D.INT8, D.FLOAT16),
             (D.UINT8, D.BFLOAT16), (D.INT16, D.FLOAT), (D.INT32, D.DOUBLE), (D.INT4, D.INT8), (D.BOOL, D.FLOAT16),
             (D.FLOAT8E4M3FN, D.FLOAT16), (D.FLOAT8E5M2, D.FLOAT16), (D.UINT16, D.INT32)]
    lossy = [(D.FLOAT, D.FLOAT16), (D.FLOAT16, D.BFLOAT16), (D.BFLOAT16, D.FLOAT16), (D.INT16, D.FLOAT16),
             (D.INT32, D.FLOAT), (D.UINT8, D.INT8), (D.FLOAT, D.INT64), (D.INT8, D.BOOL),
             (D.FLOAT8E5M2, D.FLOAT8E4M3FN), (D.FLOAT16, D.FLOAT8E5M2), (D.INT64, D.DOUBLE)]
    for source, target in exact:
        assert represents_exactly(source, target), (source, target)
    for source, target in lossy:
        assert not represents_exactly(source, target), (source, target)


# The ONNX backend test models: nothing to fold there, but the Identity/Cast cleanup runs on all of them.

@pytest.mark.parametrize("case_id", list(CASES))
def test_backend_model_outputs_unchanged(case_id: str) -> None:
    original = original_outputs(case_id, False)
    if isinstance(original, str):
        pytest.skip(original)
    out, _ = _fold(onnx.load(CASES[case_id].model))
    session = ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == original[0]
    for name, want, got in zip(names, original[1], session.run(None, case_feeds(case_id)), strict=True):
        assert_identical(name, want, got)


def _node_cases() -> dict[str, onnx.backend.test.case.test_case.TestCase]:
    node_cases = importlib.import_module("onnx.backend.test.case.node")
    node_cases._TargetOpType = None
    for module in ("quantizelinear", "dequantizelinear"):
        importlib.import_module(f"onnx.backend.test.case.node.{module}")
    return {c.name: c for c in node_cases._NodeTestCases if "quantizelinear" in c.name}


NODE_CASES = _node_cases()
NARROW_FLOATS = (TP.FLOAT8E4M3FN, TP.FLOAT8E4M3FNUZ, TP.FLOAT8E5M2, TP.FLOAT8E5M2FNUZ, TP.FLOAT4E2M1)


def _node_variant(case_name: str, variant: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The node test at onnxruntime's newest opset: ``as-is`` (runtime inputs), ``frozen`` (inputs baked in as
    initializers, so a QuantizeLinear of a constant folds) or ``then-quantize`` (DequantizeLinear with constant
    parameters followed by the QuantizeLinear with the same parameters, which cancels).

    onnxruntime takes no 4-/2-bit or 8-/4-bit float tensor from numpy nor hands one back, so such runtime inputs
    are fed as int8/float and narrowed by a Cast, and such outputs widened by one.
    """
    case = NODE_CASES[case_name]
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    del model.opset_import[:]
    model.opset_import.append(oh.make_opsetid("", MAX_OPSET))
    model.ir_version = 11
    graph = model.graph
    node = graph.node[0]
    inputs, _ = case.data_sets[0]
    tensors = [i if isinstance(i, onnx.TensorProto) else onh.from_array(np.asarray(i)) for i in inputs]
    for info, tensor in zip(graph.input, tensors, strict=True):
        tensor.name = info.name
    if variant == "then-quantize":
        graph.node.append(oh.make_node("QuantizeLinear", [node.output[0], *node.input[1:]], ["requantized"],
                                       **{a.name: oh.get_attribute_value(a) for a in node.attribute}))
        requantized = onnx.ValueInfoProto(name="requantized")
        requantized.type.CopyFrom(graph.input[0].type)
        graph.output.append(requantized)
    if variant == "frozen":
        graph.initializer.extend(tensors)
        del graph.input[:]
    elif variant == "then-quantize":
        graph.initializer.extend(tensors[1:])
        del graph.input[1:]
    feeds = {t.name: onh.to_array(t) for t in tensors[: len(graph.input)]}
    for info in graph.input:
        wide = _wide_type(info.type.tensor_type.elem_type, TP.INT8)
        if wide is not None:
            name = info.name
            graph.node.insert(0, oh.make_node("Cast", [f"{name}_wide"], [name], to=info.type.tensor_type.elem_type))
            info.name = f"{name}_wide"
            info.type.tensor_type.elem_type = wide
            feeds[info.name] = feeds.pop(name).astype(onnx.helper.tensor_dtype_to_np_dtype(wide))
    for output in graph.output:
        wide = _wide_type(output.type.tensor_type.elem_type, TP.INT32)
        if wide is not None:
            graph.node.append(oh.make_node("Cast", [output.name], [f"{output.name}_wide"], to=wide))
            output.name = f"{output.name}_wide"
            output.type.tensor_type.elem_type = wide
    return model, feeds


def _wide_type(elem_type: int, wide_int: int) -> int | None:
    narrow_ints = (TP.INT4, TP.UINT4, TP.INT2, TP.UINT2)
    return wide_int if elem_type in narrow_ints else TP.FLOAT if elem_type in NARROW_FLOATS else None


def _integer_side(model: onnx.ModelProto) -> int:
    """The element type of a node test's quantized tensor (Q output or DQ input)."""
    node = model.graph.node[0]
    quantized = node.output[0] if node.op_type == "QuantizeLinear" else node.input[0]
    return next(v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]
                if v.name == quantized)


@pytest.mark.parametrize("variant", ["as-is", "frozen", "then-quantize"])
@pytest.mark.parametrize("case_name", sorted(NODE_CASES))
def test_onnx_node_tests(case_name: str, variant: str) -> None:
    if variant == "then-quantize" and not case_name.startswith("test_dequantize"):
        pytest.skip("only a DequantizeLinear can be followed by its inverse")
    model, feeds = _node_variant(case_name, variant)
    try:
        want = _reference(model, feeds)
    except Exception as exc:  # onnxruntime lacks kernels for some types (float4, int2 inputs...)
        pytest.skip(f"onnxruntime {ort.__version__} cannot run the original: {str(exc).splitlines()[0][:200]}")
    out, outcome = _fold(model)
    got = run(out, feeds)
    for a, b in zip(want, got, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    ops = _ops(out.graph)
    integer = _integer_side(NODE_CASES[case_name].model) in NP_TYPES
    if variant == "frozen" and case_name.startswith("test_quantize") and integer:
        assert "QuantizeLinear" not in ops, outcome.notes  # the folded constant feeds the output
    if variant == "then-quantize" and integer:
        assert "QuantizeLinear" not in ops, outcome.notes
