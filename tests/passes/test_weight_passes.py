"""Each emission on hand-built graphs, checked in onnxruntime against the compressed weights used directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnxruntime as ort
import pytest
from helpers import make_model, replace_initializers, run, tensor_info, with_outputs

import onnx_share
from onnx_share.report.data import TensorReport

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
BOOL, INT64 = onnx.TensorProto.BOOL, onnx.TensorProto.INT64

SPECS = {
    "lut4-tensor": {"bits": 4},
    "lut3-channel": {"bits": 3, "granularity": "channel"},
    "lut2-group": {"bits": 2, "granularity": "group", "group_size": 4},
    "lut8-tensor": {"bits": 8},
    "uniform8-auto": {"scheme": "uniform", "bits": 8},
    "uniform4-channel": {"scheme": "uniform", "bits": 4, "granularity": "channel"},
    "uniform4-asym-group": {"scheme": "uniform", "bits": 4, "granularity": "group", "group_size": 16,
                            "symmetric": False},
    "uniform2-tensor": {"scheme": "uniform", "bits": 2, "granularity": "tensor"},
}


def _matmul(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    w = rng.normal(size=(64, 48)).astype(np.float32)
    model = make_model([oh.make_node("MatMul", ["x", "W"], ["y"])], [tensor_info("x", FLOAT, [2, 64])],
                       [tensor_info("y", FLOAT, [2, 48])], {"W": w})
    return model, {"x": rng.normal(size=(2, 64)).astype(np.float32)}


def _gemm(trans_b: int):
    def build(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
        w = rng.normal(size=(48, 64) if trans_b else (64, 48)).astype(np.float32)
        bias = rng.normal(size=(48,)).astype(np.float32)
        node = oh.make_node("Gemm", ["x", "W", "b"], ["y"], transB=trans_b, alpha=0.5, beta=2.0)
        model = make_model([node], [tensor_info("x", FLOAT, [3, 64])], [tensor_info("y", FLOAT, [3, 48])],
                           {"W": w, "b": bias})
        return model, {"x": rng.normal(size=(3, 64)).astype(np.float32)}

    return build


def _conv(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    w = rng.normal(size=(16, 8, 3, 3)).astype(np.float32)
    model = make_model([oh.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])],
                       [tensor_info("x", FLOAT, [1, 8, 6, 6])], [tensor_info("y", FLOAT, [1, 16, 6, 6])], {"W": w})
    return model, {"x": rng.normal(size=(1, 8, 6, 6)).astype(np.float32)}


def _conv_transpose(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    w = rng.normal(size=(8, 16, 3, 3)).astype(np.float32)
    model = make_model([oh.make_node("ConvTranspose", ["x", "W"], ["y"])],
                       [tensor_info("x", FLOAT, [1, 8, 5, 5])], [tensor_info("y", FLOAT, [1, 16, 7, 7])], {"W": w})
    return model, {"x": rng.normal(size=(1, 8, 5, 5)).astype(np.float32)}


def _constant_node(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    w = rng.normal(size=(64, 48)).astype(np.float32)
    nodes = [oh.make_node("Constant", [], ["W"], value=onh.from_array(w, "W")),
             oh.make_node("MatMul", ["x", "W"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 64])], [tensor_info("y", FLOAT, [2, 48])])
    return model, {"x": rng.normal(size=(2, 64)).astype(np.float32)}


def _if_branch(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """An outer initializer used inside the then-branch, and a Constant node inside the else-branch."""
    outer = rng.normal(size=(64, 48)).astype(np.float32)
    inner = rng.normal(size=(64, 48)).astype(np.float32)
    then_graph = oh.make_graph([oh.make_node("MatMul", ["x", "W_outer"], ["t"])], "then", [],
                               [tensor_info("t", FLOAT, [2, 48])])
    else_graph = oh.make_graph(
        [oh.make_node("Constant", [], ["W_inner"], value=onh.from_array(inner, "W_inner")),
         oh.make_node("MatMul", ["x", "W_inner"], ["e"])],
        "else", [], [tensor_info("e", FLOAT, [2, 48])],
    )
    node = oh.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)
    model = make_model([node], [tensor_info("cond", BOOL, []), tensor_info("x", FLOAT, [2, 64])],
                       [tensor_info("y", FLOAT, [2, 48])], {"W_outer": outer})
    return model, {"cond": np.array(True), "x": rng.normal(size=(2, 64)).astype(np.float32)}


def _shared(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    w = rng.normal(size=(32, 32)).astype(np.float32)
    nodes = [oh.make_node("MatMul", ["x", "W"], ["h"]), oh.make_node("Relu", ["h"], ["r"]),
             oh.make_node("MatMul", ["r", "W"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 32])], [tensor_info("y", FLOAT, [2, 32])], {"W": w})
    return model, {"x": rng.normal(size=(2, 32)).astype(np.float32)}


def _fp16(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    w = (rng.normal(size=(64, 48)) * 0.1).astype(np.float16)
    model = make_model([oh.make_node("MatMul", ["x", "W"], ["y"])], [tensor_info("x", FLOAT16, [2, 64])],
                       [tensor_info("y", FLOAT16, [2, 48])], {"W": w})
    return model, {"x": rng.normal(size=(2, 64)).astype(np.float16)}


def _embedding(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    table = rng.normal(size=(100, 32)).astype(np.float32)
    model = make_model([oh.make_node("Gather", ["E", "ids"], ["y"])], [tensor_info("ids", INT64, [5])],
                       [tensor_info("y", FLOAT, [5, 32])], {"E": table})
    return model, {"ids": np.array([0, 5, 99, 5, 42], dtype=np.int64)}


GRAPHS = {
    "matmul": _matmul,
    "gemm-transB0": _gemm(0),
    "gemm-transB1": _gemm(1),
    "conv": _conv,
    "conv-transpose": _conv_transpose,
    "constant-node": _constant_node,
    "if-branch": _if_branch,
    "shared": _shared,
    "fp16": _fp16,
    "embedding": _embedding,
}


def _weights_of(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Float weights by name, wherever they live (initializers, Constant nodes, subgraphs)."""
    found = {t.name: onh.to_array(t) for t in model.graph.initializer}
    nodes = list(model.graph.node)
    while nodes:
        node = nodes.pop()
        if node.op_type == "Constant":
            found[node.output[0]] = onh.to_array(node.attribute[0].t)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                nodes.extend(attr.g.node)
    return {k: v for k, v in found.items() if v.dtype.kind == "f" and v.ndim >= 2}


def _decoded_weights(path: Path, names: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weights the rewritten model computes (main-graph decodes only), read back through onnxruntime."""
    model = onnx.load(path)
    produced = {o for n in model.graph.node for o in n.output}
    visible = [n for n in names if n in produced]
    values = run(with_outputs(model, visible), feeds)[len(model.graph.output) :]
    return dict(zip(visible, values, strict=True))


def _decoded_by_probing(path: Path, feeds: dict[str, np.ndarray], rows: int) -> np.ndarray:
    """W of a rewritten model that computes ``y = x @ W`` for x [2, rows] (wherever W is decoded, subgraphs too),
    read back two rows at a time: x = two rows of the identity, so y is exactly those rows of W."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")  # fp32, as ``run`` does
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    eye = np.eye(rows, dtype=feeds["x"].dtype)
    return np.concatenate([session.run(None, {**feeds, "x": eye[i : i + 2]})[0] for i in range(0, rows, 2)])


@pytest.mark.parametrize("spec_name", SPECS)
@pytest.mark.parametrize("graph_name", GRAPHS)
def test_rewritten_model_equals_original_with_compressed_weights(
    graph_name: str, spec_name: str, tmp_path: Path, rng: np.random.Generator
) -> None:
    model, feeds = GRAPHS[graph_name](rng)
    spec = SPECS[spec_name]
    result = onnx_share.optimize(model, {"default": spec, "min_elements": 16})
    out = result.save(tmp_path / "out.onnx")
    onnx.checker.check_model(str(out), full_check=True)

    weights = _weights_of(model)
    rows = {t.name: t for t in result.report.compressed}
    assert set(rows) == set(weights), "every weight of these graphs is compressible"
    main_graph_weights = sorted(n for n in weights if n != "W_inner")
    decoded = _decoded_weights(out, main_graph_weights, feeds)
    assert set(decoded) == set(main_graph_weights)
    checked = dict(decoded)
    if graph_name == "if-branch":  # W_inner is decoded inside the else-branch, out of with_outputs' reach
        checked["W_inner"] = _decoded_by_probing(out, {**feeds, "cond": np.array(False)}, rows=64)
    for name, approx in checked.items():
        row: TensorReport = rows[name]
        original = weights[name].astype(np.float64)
        assert approx.shape == original.shape and approx.dtype == weights[name].dtype
        error = np.linalg.norm(approx.astype(np.float64) - original) / np.linalg.norm(original)
        assert error == pytest.approx(row.relative_error, rel=1e-5, abs=1e-7)
        assert row.bytes_after < row.bytes_before
        if row.scheme == "lut" and row.granularity == "tensor":
            assert len(np.unique(approx)) <= row.clusters
        if row.scheme == "uniform":
            assert row.storage.startswith("U" if spec.get("symmetric") is False else "I")

    # For "if-branch" the feeds take the then-branch, which reads only the main-graph W_outer: exact like the rest.
    expected = run(replace_initializers(model, decoded), feeds)
    actual = run(out, feeds)
    for want, got in zip(expected, actual, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3 if graph_name == "fp16" else 1e-5,
                                   atol=3e-3 if graph_name == "fp16" else 1e-5)
    if graph_name == "if-branch":  # and the else-branch computes x @ the W_inner checked above
        else_feeds = {**feeds, "cond": np.array(False)}
        (got,) = run(out, else_feeds)
        np.testing.assert_allclose(got, else_feeds["x"] @ checked["W_inner"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cond", [True, False])
def test_if_branch_weights_both_compressed(cond: bool, tmp_path: Path, rng: np.random.Generator) -> None:
    model, feeds = _if_branch(rng)
    feeds["cond"] = np.array(cond)
    result = onnx_share.optimize(model, {"default": {"bits": 8}, "min_elements": 16})
    out = result.save(tmp_path / "out.onnx")
    assert {t.name for t in result.report.compressed} == {"W_outer", "W_inner"}
    (want,), (got,) = run(model, feeds), run(out, feeds)
    cosine = float(np.dot(want.ravel(), got.ravel()) / np.linalg.norm(want) / np.linalg.norm(got))
    assert cosine > 0.9999
    branches = {a.name: a.g for a in onnx.load(out).graph.node[-1].attribute}
    else_ops = [n.op_type for n in branches["else_branch"].node]
    assert "Constant" not in else_ops and "Gather" in else_ops


def test_shared_weight_compressed_once(tmp_path: Path, rng: np.random.Generator) -> None:
    model, _ = _shared(rng)
    result = onnx_share.optimize(model, {"default": {"bits": 4}, "min_elements": 16})
    out = onnx.load(result.save(tmp_path / "out.onnx"))
    assert [n.op_type for n in out.graph.node].count("Gather") == 1
    matmuls = [n for n in out.graph.node if n.op_type == "MatMul"]
    assert {n.input[1] for n in matmuls} == {"W"}


def test_packed_index_types_follow_bits(tmp_path: Path, rng: np.random.Generator) -> None:
    model, _ = _matmul(rng)
    for bits, elem_type, opset in ((2, onnx.TensorProto.UINT2, 25), (4, onnx.TensorProto.UINT4, 21),
                                   (6, onnx.TensorProto.UINT8, 17)):
        result = onnx_share.optimize(model, {"default": {"bits": bits}, "min_elements": 16})
        out = onnx.load(result.save(tmp_path / f"out{bits}.onnx"))
        indices = next(t for t in out.graph.initializer if t.name == "W_indices")
        assert indices.data_type == elem_type
        assert out.opset_import[0].version == opset
        assert out.ir_version <= 13


def test_opset_kept_when_it_cannot_be_converted_packs_the_indices(tmp_path: Path, rng: np.random.Generator,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Softmax changed meaning in opset 13; when the version converter fails too, an opset-11 model keeps its
    opset and its 4-bit indices are bit-packed in UINT8."""
    import onnx_share.api

    def refuse(proto: onnx.ModelProto, target: int) -> onnx.ModelProto:
        raise ValueError("onnx's version converter failed: no adapter")

    monkeypatch.setattr(onnx_share.api, "convert_opset", refuse)
    w = rng.normal(size=(64, 48)).astype(np.float32)
    nodes = [oh.make_node("MatMul", ["x", "W"], ["h"]), oh.make_node("Softmax", ["h"], ["y"], axis=1)]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 64])], [tensor_info("y", FLOAT, [2, 48])], {"W": w},
                       opset=11, ir_version=6)
    result = onnx_share.optimize(model, {"default": {"bits": 4}, "min_elements": 16})
    out = onnx.load(result.save(tmp_path / "out.onnx"))
    assert out.opset_import[0].version == 11
    assert result.report.compressed[0].storage == "UINT8 packed 4-bit"
    assert next(t for t in out.graph.initializer if t.name == "W_indices").data_type == onnx.TensorProto.UINT8
    assert any("not kept (onnx's version converter failed" in note for note in result.report.notes)
    x = {"x": rng.normal(size=(2, 64)).astype(np.float32)}
    assert run(out, x)[0].shape == (2, 48)
