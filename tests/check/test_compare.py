"""``onnx-share compare`` and ``onnx_share.compare()``: per-output metrics, layer-wise localization, inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from helpers import DIGITS_DIR, make_model, replace_initializers, tensor_info

from onnx_share.api import compare, optimize
from onnx_share.cli import main as cli
from onnx_share.config import ValidationConfig
from onnx_share.report.data import REPORT_SCHEMA_VERSION

DIGITS = DIGITS_DIR / "digits_cnn.onnx"
DIGITS_INPUTS = DIGITS_DIR / "digits_test.npz"
T = onnx.TensorProto
FLOAT, INT64, INT32, BOOL = T.FLOAT, T.INT64, T.INT32, T.BOOL


@pytest.fixture(scope="module")
def digits_3bit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("digits") / "digits3.onnx"
    optimize(DIGITS, {"default": {"bits": 3}}).save(path)
    return path


def _main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_compare_cli_on_digits_with_given_inputs(digits_3bit: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "c.json"
    status, out, err = _main(capsys, "compare", DIGITS, digits_3bit, "--inputs", DIGITS_INPUTS, "--report", report)
    assert status == 0, err
    assert "logits" in out and "top-1" in out and "PASS" in out
    data = json.loads(report.read_text())
    assert data["schema_version"] == REPORT_SCHEMA_VERSION == 3 and data["kind"] == "compare"
    assert data["command"].startswith("onnx-share compare ") and data["passed"] is True
    validation = data["validation"]
    assert validation["ignored_arrays"] == ["label"], "the npz's label array is not a model input"
    assert validation["input_arrays"] == [{"name": "input", "dtype": "float32", "shapes": [[450, 1, 8, 8]],
                                           "made": "given"}]
    assert any("a leading batch of 450: run as one batch" in note for note in validation["notes"])
    (logits,) = validation["outputs"]
    assert logits["shape"] == [450, 10] and logits["dtype"] == "float32" and logits["exact"] is False
    assert 0.9 <= logits["top1_agreement"] <= 1.0 and logits["cosine_similarity"] > 0.99
    assert validation["layerwise"] is True
    names = [layer["name"] for layer in validation["layers"]]
    assert names[0] == "/conv1/Conv_output_0" and names[-1] == "logits" and len(names) == 12
    assert [layer["index"] for layer in validation["layers"]] == list(range(12))
    rows = {t["name"]: t for t in data["tensors"]}
    assert rows["fc1.weight"]["scheme"] == "codebook" and rows["fc1.weight"]["storage"] == "UINT8 packed 3-bit"
    assert rows["fc1.weight"]["clusters"] == 8 and rows["fc1.weight"]["bits"] == 3
    assert 0 < rows["fc1.weight"]["relative_error"] < 0.3
    assert rows["conv1.weight"]["skipped"] == "unchanged"
    assert data["file_bytes_before"] == DIGITS.stat().st_size
    assert data["file_bytes_after"] == digits_3bit.stat().st_size


def test_compare_fails_with_exit_3_outside_tolerance(digits_3bit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _main(capsys, "compare", DIGITS, digits_3bit, "--min-cosine", "0.999999", "--no-layerwise")
    assert status == 3
    assert "FAIL" in out and "compare failed" in err
    assert "layer-wise" not in out and "first diverging" not in out


def test_min_top1_gates_classification_outputs(tmp_path: Path) -> None:
    one_bit = tmp_path / "digits1.onnx"
    optimize(DIGITS, {"default": {"bits": 1}}).save(one_bit)
    config = ValidationConfig(inputs=(str(DIGITS_INPUTS),), min_top1=1.0, min_cosine=0.0)
    report = compare(DIGITS, one_bit, config)
    (logits,) = report.validation.outputs
    assert logits.top1_agreement is not None and 0.5 < logits.top1_agreement < 1.0
    assert not logits.passed and not report.passed
    assert report.validation.tolerances["min_top1"] == 1.0


def test_layerwise_names_the_corrupted_digits_layer(tmp_path: Path) -> None:
    """Corrupt conv3's weight only: the first diverging tensor is exactly conv3's output."""
    model = onnx.load(DIGITS)
    weight = onnx.numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "conv3.weight"))
    corrupted = weight.copy()
    corrupted[5] *= -3.0  # one output channel
    path = tmp_path / "corrupt.onnx"
    onnx.save(replace_initializers(model, {"conv3.weight": corrupted}), path)
    report = compare(DIGITS, path, ValidationConfig(inputs=(str(DIGITS_INPUTS),), layerwise=True))
    v = report.validation
    assert v.first_divergence == "/conv3/Conv_output_0"
    first = v.first_divergent_layer
    assert first is not None and first.op_type == "Conv" and first.node == "/conv3/Conv" and first.index == 5
    before = [layer for layer in v.layers if layer.index < first.index]
    assert before and all(layer.passed and layer.max_abs_error == 0.0 for layer in before)
    assert "first diverging tensor: /conv3/Conv_output_0" in report.summary()


def _chain(depth: int, rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x[n, 16] -> depth × (MatMul W_i, Relu) -> y, with a dynamic batch."""
    nodes, weights, current = [], {}, "x"
    for i in range(depth):
        weights[f"w{i}"] = rng.standard_normal((16, 16)).astype(np.float32) / 4
        nodes.append(oh.make_node("MatMul", [current, f"w{i}"], [f"mm{i}"], name=f"layer{i}/MatMul"))
        current = "y" if i == depth - 1 else f"act{i}"
        nodes.append(oh.make_node("Relu", [f"mm{i}"], [current], name=f"layer{i}/Relu"))
    model = make_model(nodes, [tensor_info("x", FLOAT, ["n", 16])], [tensor_info("y", FLOAT, ["n", 16])], weights)
    return model, weights


@pytest.mark.parametrize("corrupt", [0, 2, 4])
def test_layerwise_names_the_corrupted_layer_of_a_chain(corrupt: int, rng: np.random.Generator,
                                                        tmp_path: Path) -> None:
    model, weights = _chain(6, rng)
    broken = weights[f"w{corrupt}"].copy()
    broken[:, 3] += 1.0
    original, rewritten = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(model, original)
    onnx.save(replace_initializers(model, {f"w{corrupt}": broken}), rewritten)
    config = ValidationConfig(input_shapes={"x": (8, 16)}, samples=3, layerwise=True)
    v = compare(original, rewritten, config).validation
    assert v.first_divergence == f"mm{corrupt}"
    assert [layer.name for layer in v.layers][: 2 * corrupt + 1][-1] == f"mm{corrupt}"
    assert v.samples == 3 and v.input_arrays[0].shapes == [[8, 16]] * 3


def _multi_io_model(table: np.ndarray, weight: np.ndarray) -> onnx.ModelProto:
    """Two inputs (int64 ids with dynamic [batch, seq], float x [batch, 4]); float, int64 and bool outputs."""
    nodes = [
        oh.make_node("Gather", ["table", "ids"], ["embedded"], name="embed"),
        oh.make_node("ReduceMean", ["embedded", "axes"], ["pooled"], keepdims=0, name="pool"),
        oh.make_node("MatMul", ["x", "w"], ["projected"], name="project"),
        oh.make_node("Add", ["pooled", "projected"], ["logits"], name="add"),
        oh.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0, name="argmax"),
        oh.make_node("Cast", ["label"], ["label32"], to=INT32, name="cast"),
        oh.make_node("Greater", ["logits", "zero"], ["positive"], name="greater"),
    ]
    inputs = [tensor_info("ids", INT64, ["batch", "seq"]), tensor_info("x", FLOAT, ["batch", 4])]
    outputs = [tensor_info("logits", FLOAT, ["batch", 8]), tensor_info("label32", INT32, ["batch"]),
               tensor_info("positive", BOOL, ["batch", 8])]
    initializers = {"table": table, "w": weight, "axes": np.array([1], np.int64), "zero": np.zeros(1, np.float32)}
    return make_model(nodes, inputs, outputs, initializers, opset=18)


def test_multiple_inputs_outputs_dynamic_and_integer_tensors(rng: np.random.Generator, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    table = rng.standard_normal((10, 8)).astype(np.float32)
    weight = rng.standard_normal((4, 8)).astype(np.float32)
    original, rewritten = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(_multi_io_model(table, weight), original)
    onnx.save(_multi_io_model(table + 1e-4, weight), rewritten)
    report = tmp_path / "r.json"
    status, _, err = _main(capsys, "compare", original, rewritten, "--input-shapes", "ids:[3,5]", "x:[3,4]",
                           "--samples", "2", "--report", report)
    assert status == 0, err
    v = json.loads(report.read_text())["validation"]
    outputs = {o["name"]: o for o in v["outputs"]}
    assert list(outputs) == ["logits", "label32", "positive"]
    assert outputs["label32"]["exact"] and outputs["label32"]["dtype"] == "int32" and outputs["label32"]["passed"]
    assert outputs["positive"]["exact"] and outputs["positive"]["shape"] == [3, 8]
    assert outputs["logits"]["top1_agreement"] == 1.0 and outputs["label32"]["top1_agreement"] is None
    assert {a["name"]: a["shapes"] for a in v["input_arrays"]} == {"ids": [[3, 5]] * 2, "x": [[3, 4]] * 2}
    layers = {layer["name"]: layer for layer in v["layers"]}
    assert list(layers) == ["embedded", "pooled", "projected", "logits", "label", "label32", "positive"]
    assert layers["label"]["exact"] and layers["label"]["dtype"] == "int64" and layers["label"]["passed"]


def test_integer_outputs_must_match_exactly(rng: np.random.Generator, tmp_path: Path) -> None:
    table = rng.standard_normal((10, 8)).astype(np.float32)
    weight = rng.standard_normal((4, 8)).astype(np.float32)
    changed = weight.copy()
    changed[:, 0] += 10.0  # moves the argmax, hardly the cosine
    original, rewritten = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(_multi_io_model(table, weight), original)
    onnx.save(_multi_io_model(table, changed), rewritten)
    ids = rng.integers(0, 10, size=(6, 3)).astype(np.int32)  # int32 on disk: converted to the model's int64
    np.savez(tmp_path / "s.npz", ids=ids, x=rng.standard_normal((6, 4)).astype(np.float32))
    config = ValidationConfig(inputs=(str(tmp_path / "s.npz"),), min_cosine=0.0, layerwise=True)
    v = compare(original, rewritten, config).validation
    outputs = {o.name: o for o in v.outputs}
    assert outputs["logits"].passed and not outputs["label32"].passed and not v.passed
    assert v.first_divergence == "label", "the first integer tensor that differs, after float ones that pass"
    assert any("int32 arrays converted to the model's int64" in note for note in v.notes)


def test_tensors_whose_shapes_differ_are_skipped(rng: np.random.Generator, tmp_path: Path) -> None:
    weight = rng.standard_normal((8, 8)).astype(np.float32)

    def model(middle: list[int]) -> onnx.ModelProto:
        nodes = [oh.make_node("MatMul", ["x", "w"], ["h"]),
                 oh.make_node("Reshape", ["h", "middle"], ["t"]),
                 oh.make_node("Reshape", ["t", "back"], ["y"])]
        return make_model(nodes, [tensor_info("x", FLOAT, [2, 8])], [tensor_info("y", FLOAT, [2, 8])],
                          {"w": weight, "middle": np.array(middle, np.int64), "back": np.array([2, 8], np.int64)})

    original, rewritten = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(model([2, 8]), original)
    onnx.save(model([2, 2, 4]), rewritten)
    v = compare(original, rewritten).validation
    layers = {layer.name: layer for layer in v.layers}
    assert layers["t"].skipped == "shapes differ: [2, 8] vs [2, 2, 4]" and layers["t"].passed is None
    assert layers["h"].passed and layers["y"].passed and v.first_divergence is None and v.passed


def test_generated_inputs_note_dynamic_dims_and_bytes_models(rng: np.random.Generator) -> None:
    model, _ = _chain(2, rng)
    data = model.SerializeToString()
    report = compare(data, data)
    v = report.validation
    assert v.passed and all(layer.max_abs_error == 0.0 for layer in v.layers)
    assert v.input_arrays[0].shapes == [[1, 16]]
    assert v.synthetic and any("dynamic dimensions set to [1, 16]" in note for note in v.notes)
    assert report.original_path is None and report.file_bytes_before == len(data)


def test_bad_compare_inputs_give_one_line_errors(digits_3bit: Path, rng: np.random.Generator, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "wrong.npz", label=np.zeros(3))
    other, _ = _chain(1, rng)
    onnx.save(other, tmp_path / "other.onnx")
    cases = [
        (["compare", DIGITS, digits_3bit, "--inputs", tmp_path / "wrong.npz"], "has no array for model input(s) input"),
        (["compare", DIGITS, tmp_path / "other.onnx"], "the models take different inputs"),
        (["compare", DIGITS, tmp_path / "missing.onnx"], "missing.onnx"),
        (["compare", DIGITS, digits_3bit, "--input-shapes", "nope:[1]"], "not inputs of the model"),
        (["compare", DIGITS, digits_3bit, "--fp16"], "add --trt"),
    ]
    for args, message in cases:
        status, _, err = _main(capsys, *args)
        lines = err.strip().splitlines()
        assert status == 1 and len(lines) == 1 and message in lines[0], (args, err)


def test_weight_rows_cover_sparse_and_removed_tensors(rng: np.random.Generator, tmp_path: Path) -> None:
    """A weight stored as a sparse initializer, and one merged into another, in the rewritten model."""
    first = rng.standard_normal((16, 16)).astype(np.float32)
    first[np.abs(first) < 1.0] = 0.0
    second = rng.standard_normal((16, 16)).astype(np.float32)
    nodes = [oh.make_node("MatMul", ["x", "a"], ["h"]), oh.make_node("MatMul", ["h", "b"], ["y"])]
    io = [tensor_info("x", FLOAT, [2, 16])], [tensor_info("y", FLOAT, [2, 16])]
    original = make_model(nodes, *io, {"a": first, "b": second})
    flat = np.flatnonzero(first)
    sparse = oh.make_sparse_tensor(onnx.numpy_helper.from_array(first.ravel()[flat], "a"),
                                   onnx.numpy_helper.from_array(flat.astype(np.int64), "a_indices"), [16, 16])
    graph = oh.make_graph([nodes[0], oh.make_node("MatMul", ["h", "merged"], ["y"])], "g", *io,
                          initializer=[onnx.numpy_helper.from_array(second, "merged")], sparse_initializer=[sparse])
    rewritten = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    onnx.save(original, tmp_path / "a.onnx")
    onnx.save(rewritten, tmp_path / "b.onnx")
    report = compare(tmp_path / "a.onnx", tmp_path / "b.onnx")
    rows = {t.name: t for t in report.tensors}
    assert rows["a"].scheme == "sparse" and rows["a"].relative_error == 0.0
    assert rows["a"].bytes_after == flat.size * (4 + 8)
    assert rows["b"].skipped == "removed (merged or folded)" and rows["b"].bytes_after == 0
    assert report.validation.passed


def test_stats_of_strings_and_non_tensors() -> None:
    from onnx_share.check.metrics import layer_stats, output_stats

    config = ValidationConfig()
    same = output_stats("s", [np.array(["a", "b"])], [np.array(["a", "b"])], config)
    other = output_stats("s", [np.array(["a", "b"])], [np.array(["a", "c"])], config)
    assert same.passed and same.exact and not other.passed and other.cosine_similarity == 0.0
    row = layer_stats(0, "seq", "SequenceConstruct", "n", [[np.zeros(2)]], [[np.zeros(2)]], config)
    assert row.skipped == "not a tensor (sequence, map or optional)" and row.passed is None


def test_unfolded_codebook_decode_agrees_with_the_folded_outputs(digits_3bit: Path) -> None:
    """A big model's rewrite is validated without constant folding (each decode when its weight is used): its
    outputs agree within float rounding with a default session's, which folds every codebook into a float weight."""
    from onnx_share.check.runners import onnxrt_session

    feed = {"input": np.load(DIGITS_INPUTS)["input"][:4]}
    folded = onnxrt_session(str(digits_3bit))().run(None, feed)[0]
    unfolded = onnxrt_session(str(digits_3bit), fold_constants=False)().run(None, feed)[0]
    np.testing.assert_allclose(unfolded, folded, rtol=1e-5, atol=1e-5 * float(np.abs(folded).max()))


def test_validation_folds_only_models_up_to_the_limit(digits_3bit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx_share.check.validation as validation

    seen: list[bool] = []
    real = validation.onnxrt_runner
    monkeypatch.setattr(validation, "onnxrt_runner",
                        lambda model, name, extra=(), **kw: seen.append(kw.get("fold_constants", True))
                        or real(model, name, extra, **kw))
    config = ValidationConfig(inputs=(str(DIGITS_INPUTS),))
    small = compare(DIGITS, digits_3bit, config).validation
    monkeypatch.setattr(validation, "FOLD_MAX_MODEL_BYTES", 0)
    big = compare(DIGITS, digits_3bit, config).validation
    assert seen == [True, True, True, False]  # the original always folds; the rewrite only below the limit
    assert [o.max_abs_error for o in big.outputs] == pytest.approx([o.max_abs_error for o in small.outputs],
                                                                   rel=1e-3)
