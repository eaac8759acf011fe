"""share on hand-built graphs and on the ONNX backend models: exact ties keep outputs bit-identical, near ties
stay within the reported error, and the file shrinks."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnx_ir as ir
import onnxruntime as ort
import pytest
from backend_cases import CASES, DETACHABLE, case_feeds, detached_model, original_outputs
from helpers import assert_identical, make_model, run, tensor_info

import onnx_share
from onnx_share.config import ShareConfig
from onnx_share.io.load import load_model
from onnx_share.passes.base import PassOutcome
from onnx_share.passes.share import ShareWeightsPass

TP = onnx.TensorProto
FLOAT, BOOL, INT64 = TP.FLOAT, TP.BOOL, TP.INT64


def _share(model: onnx.ModelProto, tolerance: float | None = None, transposed: bool = True,
           min_elements: int = 16) -> tuple[onnx.ModelProto, PassOutcome]:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    ir_model = load_model(copy)  # the one loader: Constant nodes become initializers
    outcome = ShareWeightsPass(ShareConfig(tolerance, transposed), min_elements=min_elements)(ir_model)
    assert isinstance(outcome, PassOutcome)
    out = ir.serde.serialize_model(ir_model)
    onnx.checker.check_model(out, full_check=True)
    return out, outcome


def _assert_exact(model: onnx.ModelProto, out: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    assert [o.name for o in out.graph.output] == [o.name for o in model.graph.output]
    for want, got in zip(run(model, feeds), run(out, feeds), strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)


def _initializers(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    return {t.name: onh.to_array(t) for t in graph.initializer}


def _branches(model: onnx.ModelProto) -> dict[str, onnx.GraphProto]:
    return {a.name: a.g for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH}


def _two_matmuls(w1: np.ndarray, w2: np.ndarray) -> onnx.ModelProto:
    nodes = [oh.make_node("MatMul", ["x", "W1"], ["h"]), oh.make_node("Relu", ["h"], ["r"]),
             oh.make_node("MatMul", ["r", "W2"], ["y"])]
    return make_model(nodes, [tensor_info("x", FLOAT, [2, 32])], [tensor_info("y", FLOAT, [2, 32])],
                      {"W1": w1, "W2": w2})


def test_exact_duplicates_across_two_matmuls(rng: np.random.Generator) -> None:
    w = rng.normal(size=(32, 32)).astype(np.float32)
    model = _two_matmuls(w, w.copy())
    out, outcome = _share(model)
    _assert_exact(model, out, {"x": rng.normal(size=(2, 32)).astype(np.float32)})
    assert list(_initializers(out.graph)) == ["W1"]
    assert [n.input[1] for n in out.graph.node if n.op_type == "MatMul"] == ["W1", "W1"]
    (row,) = outcome.changes
    assert row.name == "W1" and row.details["merged"] == ["W2"] and row.change == "merge-exact"
    assert row.bytes_before == 2 * w.nbytes and row.bytes_after == w.nbytes
    assert row.relative_error == 0.0
    assert model.ByteSize() - out.ByteSize() >= w.nbytes - 64


def test_negative_zero_is_not_a_duplicate_of_zero(rng: np.random.Generator) -> None:
    w = rng.normal(size=(32, 32)).astype(np.float32)
    w[0, 0] = 0.0
    other = w.copy()
    other[0, 0] = -0.0
    out, outcome = _share(_two_matmuls(w, other))
    assert len(out.graph.initializer) == 2 and not outcome.modified


def _if_model(rng: np.random.Generator, *, outer_copy: bool, dequantize: bool = False) -> onnx.ModelProto:
    """A weight W used in the main graph (when ``outer_copy``) and the same tensor held again by the then-branch
    (an initializer) and the else-branch (a Constant node)."""
    w = rng.normal(size=(32, 8)).astype(np.float32)
    if dequantize:
        w = rng.integers(-128, 128, size=(32, 8)).astype(np.int8)

    def branch(name: str, holder: str) -> onnx.GraphProto:
        local = f"W_{name}"
        nodes = []
        if dequantize:
            nodes.append(oh.make_node("DequantizeLinear", [local, f"s_{name}"], [f"d_{name}"]))
            weight = f"d_{name}"
        else:
            weight = local
        initializers = [onh.from_array(np.array(0.02, np.float32), f"s_{name}")] if dequantize else []
        if holder == "constant":
            nodes.insert(0, oh.make_node("Constant", [], [local], value=onh.from_array(w, local)))
        else:
            initializers.append(onh.from_array(w, local))
        nodes.append(oh.make_node("MatMul", ["x", weight], [f"{name}_out"]))
        return oh.make_graph(nodes, name, [], [tensor_info(f"{name}_out", FLOAT, [2, 8])], initializer=initializers)

    nodes = [oh.make_node("If", ["cond"], ["branch_out"], then_branch=branch("then", "initializer"),
                          else_branch=branch("else", "constant"))]
    initializers = {}
    outputs = [tensor_info("branch_out", FLOAT, [2, 8])]
    if outer_copy:
        if dequantize:
            nodes.append(oh.make_node("DequantizeLinear", ["W", "s"], ["Wd"]))
            initializers["s"] = np.array(0.02, np.float32)
        nodes.append(oh.make_node("MatMul", ["x", "Wd" if dequantize else "W"], ["main_out"]))
        initializers["W"] = w
        outputs.append(tensor_info("main_out", FLOAT, [2, 8]))
    return make_model(nodes, [tensor_info("cond", BOOL, []), tensor_info("x", FLOAT, [2, 32])], outputs,
                      initializers, opset=21, ir_version=10)


@pytest.mark.parametrize("cond", [True, False])
def test_subgraph_copies_read_the_outer_tensor(cond: bool, rng: np.random.Generator) -> None:
    model = _if_model(rng, outer_copy=True)
    out, outcome = _share(model)
    _assert_exact(model, out, {"cond": np.array(cond), "x": rng.normal(size=(2, 32)).astype(np.float32)})
    branches = _branches(out)
    assert list(_initializers(out.graph)) == ["W"]
    for name in ("then_branch", "else_branch"):
        assert not branches[name].initializer
        assert [n.op_type for n in branches[name].node] == ["MatMul"]
        assert branches[name].node[0].input[1] == "W"
    (row,) = outcome.changes
    assert row.name == "W" and sorted(row.details["merged"]) == ["W_else", "W_then"]
    assert model.ByteSize() - out.ByteSize() >= 2 * 32 * 8 * 4


def test_twins_inside_a_branch_and_outside_make_one_row(rng: np.random.Generator) -> None:
    w = rng.normal(size=(32, 8)).astype(np.float32)
    then_graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", "W_a"], ["a"]), oh.make_node("MatMul", ["x", "W_b"], ["b"]),
         oh.make_node("Add", ["a", "b"], ["t"])],
        "then", [], [tensor_info("t", FLOAT, [2, 8])],
        initializer=[onh.from_array(w, "W_a"), onh.from_array(w, "W_b")])
    else_graph = oh.make_graph([oh.make_node("MatMul", ["x", "W"], ["e"])], "else", [],
                               [tensor_info("e", FLOAT, [2, 8])])
    model = make_model([oh.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)],
                       [tensor_info("cond", BOOL, []), tensor_info("x", FLOAT, [2, 32])],
                       [tensor_info("y", FLOAT, [2, 8])], {"W": w})
    out, outcome = _share(model)
    _assert_exact(model, out, {"cond": np.array(True), "x": rng.normal(size=(2, 32)).astype(np.float32)})
    (row,) = outcome.changes
    assert row.name == "W" and sorted(row.details["merged"]) == ["W_a", "W_b"]
    assert row.bytes_before - row.bytes_after == 2 * w.nbytes


@pytest.mark.parametrize("cond", [True, False])
def test_copies_in_sibling_branches_are_hoisted(cond: bool, rng: np.random.Generator) -> None:
    model = _if_model(rng, outer_copy=False)
    out, outcome = _share(model)
    _assert_exact(model, out, {"cond": np.array(cond), "x": rng.normal(size=(2, 32)).astype(np.float32)})
    # graph order is attribute order, and onnx.helper sorts attributes: else_branch comes first
    assert list(_initializers(out.graph)) == ["W_else"]
    branches = _branches(out)
    assert not branches["then_branch"].initializer and not branches["else_branch"].initializer
    assert branches["then_branch"].node[-1].input[1] == "W_else"
    assert [row.details["merged"] for row in outcome.changes] == [["W_then"]]


def test_dequantize_inputs_stay_in_their_subgraph(rng: np.random.Generator) -> None:
    """onnxruntime 1.31 cannot load DequantizeLinear → MatMul in a subgraph reading an outer-scope weight."""
    model = _if_model(rng, outer_copy=True, dequantize=True)
    out, outcome = _share(model)
    assert not outcome.modified
    assert any("DequantizeLinear" in note for note in outcome.notes)
    _assert_exact(model, out, {"cond": np.array(True), "x": rng.normal(size=(2, 32)).astype(np.float32)})


def _near_model(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    a = rng.normal(size=(32, 32)).astype(np.float32)
    b = (a + 1e-3 * rng.normal(size=a.shape)).astype(np.float32)
    c = (a + 1e-1 * rng.normal(size=a.shape)).astype(np.float32)
    nodes = [oh.make_node("MatMul", ["x", "A"], ["ya"]), oh.make_node("MatMul", ["x", "B"], ["yb"]),
             oh.make_node("MatMul", ["x", "C"], ["yc"])]
    outputs = [tensor_info(n, FLOAT, [4, 32]) for n in ("ya", "yb", "yc")]
    model = make_model(nodes, [tensor_info("x", FLOAT, [4, 32])], outputs, {"A": a, "B": b, "C": c})
    return model, {"A": a, "B": b, "C": c}


def _measured(kept: np.ndarray, replaced: np.ndarray) -> float:
    diff = kept.astype(np.float64) - replaced.astype(np.float64)
    return float(np.linalg.norm(diff) / np.linalg.norm(replaced.astype(np.float64)))


@pytest.mark.parametrize(("tolerance", "merged"), [(None, []), (1e-2, ["B"]), (0.2, ["B", "C"])])
def test_near_duplicates_under_and_over_tolerance(tolerance: float | None, merged: list[str],
                                                  rng: np.random.Generator) -> None:
    model, weights = _near_model(rng)
    out, outcome = _share(model, tolerance=tolerance)
    assert sorted(_initializers(out.graph)) == sorted({"A", "B", "C"} - set(merged))
    feeds = {"x": rng.normal(size=(4, 32)).astype(np.float32)}
    want, got = run(model, feeds), run(out, feeds)
    if not merged:
        assert not outcome.modified
        return
    (row,) = outcome.changes
    assert row.name == "A" and row.change == "merge-near" and row.details["merged"] == merged
    for name in merged:
        error = _measured(weights["A"], weights[name])
        assert row.details["errors"][name] == pytest.approx(error, rel=1e-9)
        assert error <= tolerance
        # a tied MatMul moves by at most about the weight's relative error
        index = "ABC".index(name)
        moved = np.linalg.norm(got[index] - want[index]) / np.linalg.norm(want[index])
        assert moved <= 3 * error
    assert row.relative_error == max(row.details["errors"].values())
    assert np.array_equal(got[0], want[0])  # the kept tensor is untouched
    assert out.ByteSize() < model.ByteSize()


def test_near_duplicates_need_the_same_shape(rng: np.random.Generator) -> None:
    a = rng.normal(size=(32, 32)).astype(np.float32)
    model = _two_matmuls(a, a.reshape(16, 64).reshape(32, 32) * np.float32(1.0001))
    _, outcome = _share(model, tolerance=1e-2)
    assert outcome.changes[0].change == "merge-near"
    nodes = [oh.make_node("MatMul", ["x", "A"], ["h"]), oh.make_node("Reshape", ["B", "shape"], ["b"]),
             oh.make_node("MatMul", ["h", "b"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 32])], [tensor_info("y", FLOAT, [2, 32])],
                       {"A": a, "B": a.reshape(16, 64).copy(), "shape": np.array([32, 32])})
    _, outcome = _share(model, tolerance=1e-2)
    assert not outcome.modified


@pytest.mark.parametrize("transposed", [True, False])
def test_transposed_tied_embedding(transposed: bool, rng: np.random.Generator) -> None:
    """Gather from E [V, D] and an output projection E.T [D, V]: the projection becomes Transpose(E)."""
    table = rng.normal(size=(100, 32)).astype(np.float32)
    nodes = [oh.make_node("Gather", ["E", "ids"], ["h"]), oh.make_node("Tanh", ["h"], ["t"]),
             oh.make_node("MatMul", ["t", "W_out"], ["logits"])]
    model = make_model(nodes, [tensor_info("ids", INT64, [5])], [tensor_info("logits", FLOAT, [5, 100])],
                       {"E": table, "W_out": np.ascontiguousarray(table.T)})
    out, outcome = _share(model, transposed=transposed)
    _assert_exact(model, out, {"ids": np.array([0, 5, 99, 5, 42], dtype=np.int64)})
    if not transposed:
        assert not outcome.modified
        return
    assert list(_initializers(out.graph)) == ["E"]
    (transpose,) = [n for n in out.graph.node if n.op_type == "Transpose"]
    assert list(transpose.input) == ["E"] and list(transpose.output) == ["W_out"]
    (row,) = outcome.changes
    assert row.name == "E" and row.change == "merge-transposed" and row.details["merged"] == ["W_out"]
    assert model.ByteSize() - out.ByteSize() >= table.nbytes - 100


def test_constant_node_duplicates(rng: np.random.Generator) -> None:
    w = rng.normal(size=(32, 32)).astype(np.float32)
    small = rng.normal(size=(4,)).astype(np.float32)
    nodes = [oh.make_node("Constant", [], ["W1"], value=onh.from_array(w, "W1")),
             oh.make_node("Constant", [], ["b1"], value=onh.from_array(small, "b1")),
             oh.make_node("MatMul", ["x", "W1"], ["h"]), oh.make_node("Relu", ["h"], ["r"]),
             oh.make_node("Constant", [], ["W2"], value=onh.from_array(w, "W2")),
             oh.make_node("Constant", [], ["b2"], value=onh.from_array(small, "b2")),
             oh.make_node("MatMul", ["r", "W2"], ["y"]),
             oh.make_node("Add", ["b1", "b2"], ["bias"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 32])],
                       [tensor_info("y", FLOAT, [2, 32]), tensor_info("bias", FLOAT, [4])])
    out, outcome = _share(model)
    _assert_exact(model, out, {"x": rng.normal(size=(2, 32)).astype(np.float32)})
    # the loader lifted every Constant; identical tensors of any size are then merged exactly
    assert sorted(_initializers(out.graph)) == ["W1", "b1"]
    assert [n.op_type for n in out.graph.node] == ["MatMul", "Relu", "MatMul", "Add"]
    assert {c.name: c.details["merged"] for c in outcome.changes} == {"W1": ["W2"], "b1": ["b2"]}
    assert out.ByteSize() < model.ByteSize()


@pytest.mark.parametrize("tolerance", [-0.1, 1.0, float("nan")])
def test_tolerance_must_be_a_relative_error(tolerance: float) -> None:
    with pytest.raises(onnx_share.OnnxShareError, match="tolerance"):
        ShareWeightsPass(ShareConfig(tolerance=tolerance))


def test_graph_inputs_and_outputs_are_never_merged(rng: np.random.Generator) -> None:
    w = rng.normal(size=(32, 32)).astype(np.float32)
    model = _two_matmuls(w, w.copy())
    model.graph.input.append(oh.make_tensor_value_info("W2", FLOAT, [32, 32]))  # overridable at run time
    model.graph.output.append(oh.make_tensor_value_info("W1", FLOAT, [32, 32]))
    out, outcome = _share(model)
    assert not outcome.modified and len(out.graph.initializer) == 2


def test_small_integer_constants_are_merged_exactly(rng: np.random.Generator) -> None:
    """Identical bytes are harmless to share at any size (onnx-ir's rule): two shape tensors become one."""
    nodes = [oh.make_node("Reshape", ["x", "shape_a"], ["a"]), oh.make_node("Reshape", ["a", "shape_b"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 6])], [tensor_info("y", FLOAT, [3, 4])],
                       {"shape_a": np.array([3, 4]), "shape_b": np.array([3, 4])})
    out, outcome = _share(model, min_elements=4096)
    _assert_exact(model, out, {"x": rng.normal(size=(2, 6)).astype(np.float32)})
    assert list(_initializers(out.graph)) == ["shape_a"]
    assert outcome.changes[0].details["merged"] == ["shape_b"]


def test_pipeline_reports_share_section(rng: np.random.Generator, tmp_path) -> None:
    w = rng.normal(size=(64, 64)).astype(np.float32)
    model = _two_matmuls(w[:32, :32].copy(), w[:32, :32].copy())
    result = onnx_share.optimize(model, {"passes": ["share"], "min_elements": 16})
    (section,) = result.report.passes
    assert section.name == "share" and section.modified and section.count == 1
    assert section.bytes_before - section.bytes_after == 32 * 32 * 4
    out = result.save(tmp_path / "out.onnx")
    _assert_exact(model, onnx.load(out), {"x": rng.normal(size=(2, 32)).astype(np.float32)})


# The ONNX backend test models as shipped (IR 3: initializers are graph inputs, so nothing may be merged) and
# with their initializers detached from the inputs (where duplicates, if any, are merged): outputs bit-identical.

def _check_backend(case_id: str, detached: bool) -> None:
    original = original_outputs(case_id, detached)
    if isinstance(original, str):
        pytest.skip(original)
    model = onnx.load_from_string(detached_model(case_id)) if detached else onnx.load(CASES[case_id].model)
    out, _ = _share(model, transposed=True)
    session = ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == original[0]
    for name, want, got in zip(names, original[1], session.run(None, case_feeds(case_id)), strict=True):
        assert_identical(name, want, got)


@pytest.mark.parametrize("case_id", list(CASES))
def test_backend_model_outputs_unchanged(case_id: str) -> None:
    _check_backend(case_id, detached=False)


@pytest.mark.parametrize("case_id", DETACHABLE)
def test_detached_backend_model_outputs_unchanged(case_id: str) -> None:
    _check_backend(case_id, detached=True)
