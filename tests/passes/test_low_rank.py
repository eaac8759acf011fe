"""Low-rank split pass: the rewritten MatMul/Gemm graphs in onnxruntime, the report rows, and what is left alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnx_ir as ir
import pytest
from helpers import KNOWN_S, low_rank_matrix, make_model, run, tensor_info, with_singular_values

import onnx_share
from onnx_share.config import LowRankConfig, OptimizeConfig
from onnx_share.errors import OnnxShareError
from onnx_share.ir.weights import find_weights
from onnx_share.passes.low_rank import SplitLowRankPass

FLOAT, FLOAT16, BOOL = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BOOL


def _factors(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    initializers = {t.name: onh.to_array(t) for t in onnx.load(path).graph.initializer}
    return initializers[f"{name}_lowrank_a"], initializers[f"{name}_lowrank_b"]


def _split(model: onnx.ModelProto, tmp_path: Path, **lowrank: object) -> tuple[Path, onnx_share.OptimizeResult]:
    config = {"passes": ["lowrank"], "lowrank": lowrank, "min_elements": 16}
    result = onnx_share.optimize(model, config)
    out = result.save(tmp_path / "split.onnx")
    onnx.checker.check_model(str(out), full_check=True)
    return out, result


def _rows(result: onnx_share.OptimizeResult) -> dict[str, dict]:
    (section,) = [s for s in result.report.passes if s.name == "lowrank"]
    return {row.name: row for row in section.changes}


def test_matmul_x_times_w(tmp_path: Path, rng: np.random.Generator) -> None:
    w = low_rank_matrix(rng, 64, 48, 6).astype(np.float32)
    model = make_model([oh.make_node("MatMul", ["x", "W"], ["y"], name="fc")], [tensor_info("x", FLOAT, [3, 64])],
                       [tensor_info("y", FLOAT, [3, 48])], {"W": w})
    out, result = _split(model, tmp_path, rank=6)
    a, b = _factors(out, "W")
    assert a.shape == (64, 6) and b.shape == (6, 48) and a.dtype == np.float32
    x = rng.normal(size=(3, 64)).astype(np.float32)
    (got,) = run(out, {"x": x})
    np.testing.assert_allclose(got, x @ a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, x @ w, rtol=1e-4, atol=1e-4)
    graph = onnx.load(out).graph
    assert [(n.op_type, list(n.input)) for n in graph.node] == [
        ("MatMul", ["x", "W_lowrank_a"]), ("MatMul", [graph.node[0].output[0], "W_lowrank_b"])
    ]
    assert graph.node[1].output[0] == "y" and graph.node[1].name == "fc"
    assert "W" not in {t.name for t in graph.initializer}
    row = _rows(result)["W"]
    assert (row.details["rank"], row.details["in"], row.details["out"]) == (6, 64, 48)
    assert (row.bytes_before, row.bytes_after) == (w.nbytes, a.nbytes + b.nbytes)
    assert row.relative_error < 1e-6


def test_matmul_w_times_x(tmp_path: Path, rng: np.random.Generator) -> None:
    """A constant first input: W [out, in] @ x becomes A [out, r] @ (B [r, in] @ x), B applied first."""
    w = low_rank_matrix(rng, 48, 64, 5).astype(np.float32)
    model = make_model([oh.make_node("MatMul", ["W", "x"], ["y"])], [tensor_info("x", FLOAT, [2, 64, 3])],
                       [tensor_info("y", FLOAT, [2, 48, 3])], {"W": w})
    out, result = _split(model, tmp_path, rank=5)
    a, b = _factors(out, "W")
    assert a.shape == (5, 64) and b.shape == (48, 5)  # a is read first: a @ x
    x = rng.normal(size=(2, 64, 3)).astype(np.float32)
    (got,) = run(out, {"x": x})
    np.testing.assert_allclose(got, b @ (a @ x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, w @ x, rtol=1e-4, atol=1e-4)
    assert (_rows(result)["W"].details["in"], _rows(result)["W"].details["out"]) == (64, 48)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize(("trans_a", "trans_b"), [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_gemm_transposes_alpha_beta_bias(
    trans_a: int, trans_b: int, with_bias: bool, tmp_path: Path, rng: np.random.Generator
) -> None:
    w_eff = low_rank_matrix(rng, 64, 48, 4).astype(np.float32)  # [in, out]
    w = w_eff.T.copy() if trans_b else w_eff
    bias = rng.normal(size=(48,)).astype(np.float32)
    x = rng.normal(size=(64, 3) if trans_a else (3, 64)).astype(np.float32)
    inputs = ["x", "W", "C"] if with_bias else ["x", "W"]
    node = oh.make_node("Gemm", inputs, ["y"], transA=trans_a, transB=trans_b, alpha=0.5, beta=2.0)
    initializers = {"W": w, "C": bias} if with_bias else {"W": w}
    model = make_model([node], [tensor_info("x", FLOAT, list(x.shape))], [tensor_info("y", FLOAT, [3, 48])],
                       initializers)
    out, result = _split(model, tmp_path, rank=4)
    a, b = _factors(out, "W")
    # factors keep the consumer's layout: read with transB, i.e. stored transposed when transB=1
    a_eff, b_eff = (a.T, b.T) if trans_b else (a, b)
    assert a_eff.shape == (64, 4) and b_eff.shape == (4, 48)
    x_eff = x.T if trans_a else x
    want = 0.5 * (x_eff @ a_eff @ b_eff) + (2.0 * bias if with_bias else 0.0)
    (got,) = run(out, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, 0.5 * x_eff @ w_eff + (2.0 * bias if with_bias else 0.0), rtol=1e-4, atol=1e-4)
    graph = onnx.load(out).graph
    assert graph.node[-1].op_type == "Gemm" and graph.node[-1].output[0] == "y"
    assert graph.node[0].op_type == ("MatMul" if not trans_a and not trans_b else "Gemm")
    row = _rows(result)["W"]
    assert (row.details["in"], row.details["out"], row.details["rank"]) == (64, 48, 4)
    discovered = {t.name: t for t in find_weights(ir.load(out), min_elements=16).weights}
    assert discovered["W_lowrank_a"].op_types == (graph.node[0].op_type,)
    assert discovered["W_lowrank_b"].op_types == ("Gemm",)
    assert discovered["W_lowrank_b"].channel_axis == (0 if trans_b else 1)


def test_fp16_weight_factors_stay_fp16(tmp_path: Path, rng: np.random.Generator) -> None:
    w = (low_rank_matrix(rng, 64, 48, 3) * 0.1).astype(np.float16)
    model = make_model([oh.make_node("MatMul", ["x", "W"], ["y"])], [tensor_info("x", FLOAT16, [2, 64])],
                       [tensor_info("y", FLOAT16, [2, 48])], {"W": w})
    out, result = _split(model, tmp_path, rank=3)
    a, b = _factors(out, "W")
    assert a.dtype == b.dtype == np.float16
    x = rng.normal(size=(2, 64)).astype(np.float16)
    (got,) = run(out, {"x": x})
    want = x.astype(np.float32) @ a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-2, atol=2e-2)
    assert _rows(result)["W"].relative_error < 5e-3  # fp16 rounding of the factors only


def test_energy_and_max_error_through_the_pass(tmp_path: Path, rng: np.random.Generator) -> None:
    w = with_singular_values(rng, 64, 48, KNOWN_S * 10).astype(np.float32)
    model = make_model([oh.make_node("MatMul", ["x", "W"], ["y"])], [tensor_info("x", FLOAT, [2, 64])],
                       [tensor_info("y", FLOAT, [2, 48])], {"W": w})
    energy = (KNOWN_S[:3] ** 2).sum() / (KNOWN_S**2).sum()
    _, result = _split(model, tmp_path, energy=energy - 1e-6)
    assert _rows(result)["W"].details["rank"] == 3
    error = np.sqrt((KNOWN_S[2:] ** 2).sum() / (KNOWN_S**2).sum())
    _, result = _split(model, tmp_path, max_error=error + 1e-6)
    row = _rows(result)["W"]
    assert row.details["rank"] == 2 and row.relative_error == pytest.approx(error, rel=1e-4)


def test_no_split_where_it_would_not_save(tmp_path: Path, rng: np.random.Generator) -> None:
    w = rng.normal(size=(64, 48)).astype(np.float32)
    model = make_model([oh.make_node("MatMul", ["x", "W"], ["y"])], [tensor_info("x", FLOAT, [2, 64])],
                       [tensor_info("y", FLOAT, [2, 48])], {"W": w})
    for options in ({"rank": 22}, {"energy": 0.99}, {"rank": 8, "min_saving": 0.9}):
        out, result = _split(model, tmp_path, **options)
        assert not _rows(result) and not result.report.passes[0].modified
        assert any("lowrank: kept W" in note and "min_saving" in note for note in result.report.notes), options
        assert [t.name for t in onnx.load(out).graph.initializer] == ["W"]
    _, result = _split(model, tmp_path, rank=21)  # 21 * 112 = 2352 <= 0.8 * 3072
    assert _rows(result)["W"].details["rank"] == 21


def test_shared_and_constant_node_weights(tmp_path: Path, rng: np.random.Generator) -> None:
    """A Constant-node weight used by two MatMuls: both use the same factors, one initializer each."""
    w = low_rank_matrix(rng, 32, 32, 4).astype(np.float32)
    nodes = [oh.make_node("Constant", [], ["W"], value=onh.from_array(w, "W")),
             oh.make_node("MatMul", ["x", "W"], ["h"]), oh.make_node("Relu", ["h"], ["r"]),
             oh.make_node("MatMul", ["r", "W"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 32])], [tensor_info("y", FLOAT, [2, 32])])
    out, _ = _split(model, tmp_path, rank=4)
    graph = onnx.load(out).graph
    assert "Constant" not in [n.op_type for n in graph.node]
    assert sorted(t.name for t in graph.initializer) == ["W_lowrank_a", "W_lowrank_b"]
    x = rng.normal(size=(2, 32)).astype(np.float32)
    np.testing.assert_allclose(run(out, {"x": x})[0], np.maximum(x @ w, 0) @ w, rtol=1e-4, atol=1e-4)


def test_weight_in_if_branch(tmp_path: Path, rng: np.random.Generator) -> None:
    w = low_rank_matrix(rng, 64, 48, 4).astype(np.float32)
    then_graph = oh.make_graph([oh.make_node("MatMul", ["x", "W"], ["t"])], "then", [],
                               [tensor_info("t", FLOAT, [2, 48])])
    else_graph = oh.make_graph([oh.make_node("Identity", ["z"], ["e"])], "else", [],
                               [tensor_info("e", FLOAT, [2, 48])])
    node = oh.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)
    model = make_model([node], [tensor_info("cond", BOOL, []), tensor_info("x", FLOAT, [2, 64]),
                                tensor_info("z", FLOAT, [2, 48])], [tensor_info("y", FLOAT, [2, 48])], {"W": w})
    out, _ = _split(model, tmp_path, rank=4)
    feeds = {"cond": np.array(True), "x": rng.normal(size=(2, 64)).astype(np.float32),
             "z": np.zeros((2, 48), np.float32)}
    np.testing.assert_allclose(run(out, feeds)[0], feeds["x"] @ w, rtol=1e-4, atol=1e-4)


def test_unsupported_uses_are_left_with_a_reason(tmp_path: Path, rng: np.random.Generator) -> None:
    w = low_rank_matrix(rng, 48, 64, 4).astype(np.float32)
    nodes = [oh.make_node("Transpose", ["W"], ["Wt"]), oh.make_node("MatMul", ["x", "Wt"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 64])], [tensor_info("y", FLOAT, [2, 48])], {"W": w})
    _, result = _split(model, tmp_path, rank=4)
    assert not _rows(result)
    assert any("read by Transpose input 0" in note for note in result.report.notes)


def test_old_opset_gemm_with_trans_b_is_left_and_conv_weights_are_not_candidates(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    w = low_rank_matrix(rng, 48, 64, 4).astype(np.float32)
    kernel = rng.normal(size=(8, 4, 3, 3)).astype(np.float32)
    nodes = [oh.make_node("Gemm", ["x", "W", "C"], ["y"], transB=1, name="fc"),
             oh.make_node("Conv", ["img", "K"], ["c"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 64]), tensor_info("img", FLOAT, [1, 4, 5, 5])],
                       [tensor_info("y", FLOAT, [2, 48]), tensor_info("c", FLOAT, [1, 8, 3, 3])],
                       {"W": w, "C": np.zeros(48, np.float32), "K": kernel}, opset=10, ir_version=5)
    _, result = _split(model, tmp_path, rank=4)
    assert not _rows(result)
    notes = [n for n in result.report.notes if n.startswith("lowrank:")]
    assert len(notes) == 1 and "kept W" in notes[0] and "opset >= 11" in notes[0]


def test_lowrank_then_compress_compresses_the_factors(tmp_path: Path, rng: np.random.Generator) -> None:
    w = (low_rank_matrix(rng, 256, 128, 8) + 0.01 * rng.normal(size=(256, 128))).astype(np.float32)
    model = make_model([oh.make_node("Gemm", ["x", "W"], ["y"], transB=1)], [tensor_info("x", FLOAT, [4, 128])],
                       [tensor_info("y", FLOAT, [4, 256])], {"W": w})
    config = {"passes": ["lowrank", "compress"], "lowrank": {"max_error": 0.05}, "default": {"bits": 8},
              "min_elements": 512}
    result = onnx_share.optimize(model, config)
    out = result.save(tmp_path / "out.onnx")
    onnx.checker.check_model(str(out), full_check=True)
    assert [s.name for s in result.report.passes] == ["lowrank", "compress"]
    lowrank, compress = result.report.passes
    assert lowrank.modified and compress.modified and _rows(result)["W"].details["rank"] == 8
    assert {t.name for t in result.report.compressed} == {"W_lowrank_a", "W_lowrank_b"}
    assert all(t.consumers == ["Gemm"] for t in result.report.compressed)
    assert compress.bytes_before == lowrank.bytes_after and compress.bytes_after < compress.bytes_before / 2
    x = rng.normal(size=(4, 128)).astype(np.float32)
    want = x @ w.T
    (got,) = run(out, {"x": x})
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.06
    summary = result.report.summary()
    assert "pass lowrank: 1 change(s)" in summary and "pass compress: 2 change(s)" in summary


def test_options_are_checked() -> None:
    for options, message in (({"rank": 0}, "rank"), ({"energy": 1.5}, "energy"), ({"max_error": 1.0}, "max_error"),
                             ({"rank": 2, "min_saving": 1.0}, "min_saving")):
        with pytest.raises(OnnxShareError, match=message):
            SplitLowRankPass(OptimizeConfig(lowrank=LowRankConfig(**options)))
