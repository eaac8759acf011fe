"""Prune pass: pruned graphs in onnxruntime, zeros through clustering, sparse storage chosen where smaller, and
the bundled digits CNN pruned and clustered (run with -s to see its accuracy and size)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import pytest
from helpers import DIGITS_DIR, make_model, replace_initializers, run, tensor_info, with_outputs

import onnx_share
from onnx_share.config import OptimizeConfig, PruneConfig
from onnx_share.errors import OnnxShareError
from onnx_share.io.load import load_model
from onnx_share.io.sparse import densify_sparse_tensors
from onnx_share.numerics import pruning
from onnx_share.numerics.codebook import fit_codebook
from onnx_share.passes.prune import PruneWeightsPass
from onnx_share.report.data import TensorReport

FLOAT, FLOAT16, BOOL = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BOOL
# kmeans_1d(pin_zero=True) averages an empty pinned segment before overwriting it with 0.0 (harmless 0/0).

# ---------------------------------------------------------------------------------------------- graphs


def _two_layer(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    weights = {"W1": rng.normal(size=(64, 48)).astype(np.float32),
               "K": rng.normal(size=(8, 4, 3, 3)).astype(np.float32) * 2.0}
    nodes = [oh.make_node("MatMul", ["x", "W1"], ["h"], name="fc"),
             oh.make_node("Conv", ["img", "K"], ["c"], pads=[1, 1, 1, 1], name="conv")]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 64]), tensor_info("img", FLOAT, [1, 4, 5, 5])],
                       [tensor_info("h", FLOAT, [2, 48]), tensor_info("c", FLOAT, [1, 8, 5, 5])], weights)
    feeds = {"x": rng.normal(size=(2, 64)).astype(np.float32), "img": rng.normal(size=(1, 4, 5, 5)).astype(np.float32)}
    return model, feeds


def _weights(path: Path) -> dict[str, np.ndarray]:
    return {t.name: onh.to_array(t) for t in onnx.load(path).graph.initializer}


def _prune_rows(result: onnx_share.OptimizeResult) -> dict[str, TensorReport]:
    return {row.name: row for s in result.report.passes if s.name == "prune" for row in s.changes}


def _sparse_constants(path: Path) -> dict[str, onnx.SparseTensorProto]:
    """Tensors stored sparse in any graph of the saved model, by value name."""
    found = {}
    graphs = [onnx.load(path).graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.name == "sparse_value":
                    found[node.output[0]] = attribute.sparse_tensor
                graphs.extend([attribute.g] if attribute.HasField("g") else list(attribute.graphs))
    return found


@pytest.mark.parametrize("prune", [{"fraction": 0.5}, {"fraction": 0.8, "scope": "global"}, {"threshold": 0.7}])
def test_pruned_graph_runs_like_numpy_pruning(prune: dict, tmp_path: Path, rng: np.random.Generator) -> None:
    model, feeds = _two_layer(rng)
    originals = {t.name: onh.to_array(t) for t in model.graph.initializer}
    result = onnx_share.optimize(model, {"passes": ["prune"], "prune": {**prune, "sparse": False}, "min_elements": 16})
    out = result.save(tmp_path / "pruned.onnx")
    onnx.checker.check_model(str(out), full_check=True)
    if "threshold" in prune:
        masks = {k: pruning.threshold_mask(v, prune["threshold"]) for k, v in originals.items()}
    elif prune.get("scope") == "global":
        masks = dict(zip(originals, pruning.global_fraction_masks(list(originals.values()), prune["fraction"]),
                         strict=True))
    else:
        masks = {k: pruning.fraction_mask(v, prune["fraction"]) for k, v in originals.items()}
    expected = {k: pruning.apply_mask(v, masks[k]) for k, v in originals.items()}
    saved = _weights(out)
    rows = _prune_rows(result)
    for name, want in expected.items():
        np.testing.assert_array_equal(saved[name], want)
        row = rows[name]
        assert row.change == "prune" and row.details["sparsity_before"] == 0.0
        assert row.details["sparsity_after"] == pytest.approx(pruning.sparsity(want))
        assert row.relative_error == pytest.approx(np.linalg.norm(originals[name] - want)
                                                   / np.linalg.norm(originals[name]), rel=1e-6)
        assert row.bytes_after == row.bytes_before
    assert _sparse_constants(out) == {}, "prune.sparse is off"
    if prune.get("scope") == "global":
        total = sum(v.size for v in expected.values())
        assert sum(int((v == 0).sum()) for v in expected.values()) == pruning.zeros_for_fraction(total, 0.8)
        assert any("global cut" in note for note in result.report.notes)
    for want, got in zip(run(replace_initializers(model, expected), feeds), run(out, feeds), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_constant_node_and_subgraph_weights_are_pruned(tmp_path: Path, rng: np.random.Generator) -> None:
    outer = rng.normal(size=(32, 16)).astype(np.float16)
    inner = rng.normal(size=(32, 16)).astype(np.float16)
    then_graph = oh.make_graph([oh.make_node("MatMul", ["x", "W_outer"], ["t"])], "then", [],
                               [tensor_info("t", FLOAT16, [2, 16])])
    else_graph = oh.make_graph([oh.make_node("Constant", [], ["W_inner"], value=onh.from_array(inner, "W_inner")),
                                oh.make_node("MatMul", ["x", "W_inner"], ["e"])], "else", [],
                               [tensor_info("e", FLOAT16, [2, 16])])
    node = oh.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)
    model = make_model([node], [tensor_info("cond", BOOL, []), tensor_info("x", FLOAT16, [2, 32])],
                       [tensor_info("y", FLOAT16, [2, 16])], {"W_outer": outer})
    result = onnx_share.optimize(model, {"passes": ["prune"], "prune": {"fraction": 0.5}, "min_elements": 16})
    out = result.save(tmp_path / "pruned.onnx")
    rows = _prune_rows(result)
    assert set(rows) == {"W_outer", "W_inner"}
    assert set(_sparse_constants(out)) <= {"W_outer"}, "only main-graph initializers are stored sparse"
    x = rng.normal(size=(2, 32)).astype(np.float16)
    for cond, weight in ((True, outer), (False, inner)):
        want = x.astype(np.float32) @ pruning.apply_mask(weight, pruning.fraction_mask(weight, 0.5)).astype(np.float32)
        (got,) = run(out, {"cond": np.array(cond), "x": x})
        np.testing.assert_allclose(got.astype(np.float32), want, rtol=1e-2, atol=2e-2)


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_clustering_a_pruned_tensor_keeps_its_zeros(granularity: str, rng: np.random.Generator) -> None:
    w = rng.normal(size=(64, 96)).astype(np.float32)
    pruned = pruning.apply_mask(w, pruning.fraction_mask(w, 0.5))
    for pin_zero in (None, True):
        codebook = fit_codebook(pruned, 16, axis=1, granularity=granularity, pin_zero=pin_zero)
        decoded = codebook.decode(w.shape)
        assert np.count_nonzero(decoded == 0) >= np.count_nonzero(pruned == 0)
        np.testing.assert_array_equal(decoded[pruned == 0], 0.0)
    # Few clusters, light pruning: unpinned k-means merges the zeros with small weights; the auto pin keeps them.
    lightly = pruning.apply_mask(w, pruning.fraction_mask(w, 0.2))
    for pin_zero, kept in ((False, False), (None, True)):
        decoded = fit_codebook(lightly, 4, None, pin_zero=pin_zero).decode(w.shape)
        assert bool(np.all(decoded[lightly == 0] == 0)) is kept


def test_prune_then_cluster_keeps_zeros_in_the_model(tmp_path: Path, rng: np.random.Generator) -> None:
    model, feeds = _two_layer(rng)
    config = {"passes": ["prune", "cluster"], "prune": {"fraction": 0.5}, "default": {"bits": 4}, "min_elements": 16}
    result = onnx_share.optimize(model, config)
    out = result.save(tmp_path / "out.onnx")
    onnx.checker.check_model(str(out), full_check=True)
    assert [s.name for s in result.report.passes] == ["prune", "compress"]
    rows = _prune_rows(result)
    assert _sparse_constants(out) == {}, "compressed afterwards: the pruned dense form is not what is saved"
    decoded = dict(zip(["W1", "K"], run(with_outputs(onnx.load(out), ["W1", "K"]), feeds)[2:], strict=True))
    for name, values in decoded.items():
        assert np.count_nonzero(values == 0) >= rows[name].details["sparsity_after"] * values.size
    notes = {t.name: t.notes for t in result.report.compressed}
    assert all(notes[name][-1].startswith("sparsity 50.0% -> ") for name in decoded)


def test_sparse_storage_runs_identically_and_is_smaller(tmp_path: Path, rng: np.random.Generator) -> None:
    model, feeds = _two_layer(rng)
    config = {"passes": ["prune"], "prune": {"fraction": 0.9}, "min_elements": 16}
    result = onnx_share.optimize(model, config)
    rows = _prune_rows(result)
    assert rows["W1"].details["sparse_bytes"] == pruning.sparse_nbytes(3072 - 2765, 4)  # ceil(0.9 * 3072) zeros
    sparse_path = result.save(tmp_path / "sparse.onnx")  # the save step stores the marked tensors sparse
    dense_path = onnx_share.optimize(model, {**config, "prune": {"fraction": 0.9, "sparse": False}}).save(
        tmp_path / "dense.onnx")
    assert result.report.file_bytes_after == sparse_path.stat().st_size
    assert sparse_path.stat().st_size < dense_path.stat().st_size
    onnx.checker.check_model(str(sparse_path), full_check=True)
    stored = _sparse_constants(sparse_path)
    assert sorted(stored) == ["K", "W1"]
    assert all(s.indices.data_type == onnx.TensorProto.INT64 for s in stored.values())
    for want, got in zip(run(dense_path, feeds), run(sparse_path, feeds), strict=True):
        np.testing.assert_array_equal(got, want)
    sparse_model = onnx.load(sparse_path)
    assert sorted(densify_sparse_tensors(sparse_model)) == ["K", "W1"]
    constants = [n for n in sparse_model.graph.node if n.op_type == "Constant"]
    densified = {n.output[0]: onh.to_array(n.attribute[0].t) for n in constants}
    for name, values in _weights(dense_path).items():
        np.testing.assert_array_equal(densified[name], values)
    load_model(sparse_path)  # readable by the loader again


def test_sparse_not_chosen_when_not_smaller(tmp_path: Path, rng: np.random.Generator) -> None:
    model, _ = _two_layer(rng)
    result = onnx_share.optimize(model, {"passes": ["prune"], "prune": {"fraction": 0.5}, "min_elements": 16})
    out = result.save(tmp_path / "out.onnx")
    assert _sparse_constants(out) == {}  # 50% zeros: 12 bytes per value > 4 dense
    assert all(row.details["sparse_bytes"] > row.bytes_before for row in _prune_rows(result).values())


def test_options_are_checked() -> None:
    for options, message in (({"fraction": 0.5, "threshold": 0.1}, "not both"), ({"fraction": 1.5}, "fraction"),
                             ({"threshold": -1.0}, "threshold"), ({"fraction": 0.5, "scope": "layer"}, "scope")):
        with pytest.raises(OnnxShareError, match=message):
            PruneWeightsPass(OptimizeConfig(prune=PruneConfig(**options)))


# ---------------------------------------------------------------------------------------------- digits CNN


def test_digits_pruned_half_and_clustered_5_bits_within_one_point(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("digits_evaluate", DIGITS_DIR / "evaluate.py")
    assert spec is not None and spec.loader is not None
    evaluate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate)
    original = DIGITS_DIR / "digits_cnn.onnx"
    config = {"passes": ["prune", "compress"], "prune": {"fraction": 0.5}, "default": {"bits": 5}}
    result = onnx_share.optimize(original, config)
    out = result.save(tmp_path / "pruned_clustered.onnx")
    float_accuracy, accuracy = evaluate.accuracy(original), evaluate.accuracy(out)
    ratio = original.stat().st_size / out.stat().st_size
    print(f"\ndigits_cnn prune 50% + codebook 5-bit: accuracy {accuracy:.4f} (float {float_accuracy:.4f}), "
          f"file {out.stat().st_size} bytes ({ratio:.2f}x smaller)")
    assert set(_prune_rows(result)) == {"conv2.weight", "conv3.weight", "fc1.weight"}
    assert all(row.details["sparsity_after"] == 0.5 for row in _prune_rows(result).values())
    assert {t.name for t in result.report.compressed} == {"conv2.weight", "conv3.weight", "fc1.weight"}
    assert abs(accuracy - float_accuracy) <= 0.01
    assert ratio > 3.0
