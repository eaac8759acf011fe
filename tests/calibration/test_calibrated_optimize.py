"""``optimize`` with calibration data: samples read and split, weights fitted to their activations, biases
corrected, validation on the held-out samples, and one-line errors for bad data."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnx.helper as oh
import onnx_ir as ir
import pytest
from helpers import make_model, run, tensor_info, with_outputs

from onnx_share.api import optimize
from onnx_share.calibration.data import read_samples, split_samples
from onnx_share.errors import OnnxShareError
from onnx_share.io.load import load_model
from onnx_share.report.html import render_html

FLOAT = onnx.TensorProto.FLOAT


def correlated(rng: np.random.Generator, rows: int, features: int) -> np.ndarray:
    mixing = rng.standard_normal((features, features)) * rng.uniform(0.05, 3.0, features)
    return (rng.standard_normal((rows, features)) @ mixing + rng.uniform(-2, 2, features)).astype(np.float32)


def dense_model(rng: np.random.Generator, features: int = 64, outputs: int = 96) -> onnx.ModelProto:
    nodes = [oh.make_node("MatMul", ["x", "w"], ["m"]), oh.make_node("Add", ["m", "b"], ["y"])]
    initializers = {"w": rng.standard_normal((features, outputs)).astype(np.float32),
                    "b": rng.standard_normal(outputs).astype(np.float32)}
    return make_model(nodes, [tensor_info("x", FLOAT, ["n", features])], [tensor_info("y", FLOAT, ["n", outputs])],
                      initializers)


def conv_model(rng: np.random.Generator) -> onnx.ModelProto:
    """A Conv without bias followed by a Gemm with alpha and beta: bias correction creates B and scales C."""
    nodes = [oh.make_node("Conv", ["x", "k"], ["c"], pads=[1, 1, 1, 1]),
             oh.make_node("Flatten", ["c"], ["f"]),
             oh.make_node("Gemm", ["f", "g", "gb"], ["y"], alpha=0.5, beta=2.0)]
    initializers = {"k": rng.standard_normal((32, 16, 3, 3)).astype(np.float32),
                    "g": rng.standard_normal((32 * 16, 40)).astype(np.float32),
                    "gb": rng.standard_normal(40).astype(np.float32)}
    return make_model(nodes, [tensor_info("x", FLOAT, ["n", 16, 4, 4])], [tensor_info("y", FLOAT, ["n", 40])],
                      initializers)


def output_error(model: onnx.ModelProto, rewritten: onnx.ModelProto, feeds) -> float:
    errors = [np.linalg.norm(run(model, f)[0] - run(rewritten, f)[0]) / np.linalg.norm(run(model, f)[0])
              for f in feeds]
    return float(np.mean(errors))


def proto(result) -> onnx.ModelProto:
    return ir.to_proto(result.model)


@pytest.mark.parametrize("scheme", ["codebook", "uniform"])
def test_calibrated_weights_beat_data_free_on_held_out_samples(scheme: str) -> None:
    rng = np.random.default_rng(0)
    model = dense_model(rng)
    samples = [{"x": correlated(np.random.default_rng(7), 32, 64)} for _ in range(12)]
    config = {"default": {"scheme": scheme, "bits": 4, "granularity": "channel"}, "min_elements": 1,
              "calibration": {"samples": 8}}
    calibrated = optimize(model, config, data=samples)
    data_free = optimize(model, config)
    held_out = calibrated.held_out.samples
    assert len(held_out) == 4 and calibrated.report.calibration.calibration_samples == 8
    row = next(t for t in calibrated.report.tensors if t.name == "w")
    assert row.activation_error is not None and any(n.startswith("calibrated: ") for n in row.notes)
    assert output_error(model, proto(calibrated), held_out) < 0.8 * output_error(model, proto(data_free), held_out)


@pytest.mark.parametrize("build", [dense_model, conv_model])
def test_bias_correction_removes_the_mean_output_shift(build) -> None:
    rng = np.random.default_rng(1)
    model = build(rng)
    shape = [d.dim_value or 64 for d in model.graph.input[0].type.tensor_type.shape.dim]
    sample = {"x": (rng.standard_normal(shape) + 1.5).astype(np.float32)}
    config = {"default": {"bits": 3, "rounding": "nearest"}, "min_elements": 1}
    corrected = proto(optimize(model, {**config, "passes": ["compress"]}, data=[sample]))
    plain = proto(optimize(model, {**config, "passes": ["compress"], "default": {**config["default"],
                                                                                "bias_correction": False}},
                           data=[sample]))
    # The first layer sees the original input, so its mean shift is removed exactly.
    first = model.graph.node[0].output[0]

    def first_output(m):
        return run(with_outputs(m, [first]), sample)[-1]

    reference = first_output(model)
    axes = (0, 2, 3) if reference.ndim == 4 else (0,)
    if build is dense_model:  # the MatMul's Add carries the correction: compare after it
        reference, shifted, uncorrected = (run(m, sample)[0] for m in (model, corrected, plain))
    else:
        shifted, uncorrected = first_output(corrected), first_output(plain)
    assert np.abs((reference - uncorrected).mean(axis=axes)).max() > 1e-3
    np.testing.assert_allclose((reference - shifted).mean(axis=axes), 0.0, atol=2e-5)


def test_one_sample_calibrates_and_validates_with_a_note(tmp_path) -> None:
    rng = np.random.default_rng(2)
    model = dense_model(rng)
    result = optimize(model, {"default": {"bits": 4}, "min_elements": 1}, data=[{"x": correlated(rng, 16, 64)}])
    assert result.report.calibration.held_out_samples == 1
    assert any("not on held-out data" in n for n in result.report.calibration.notes)
    result.save(tmp_path / "out.onnx")
    validation = result.validate()
    assert validation.samples == 1 and not validation.synthetic and "held-out" in validation.inputs


def test_files_folders_and_sample_axes_are_read_and_split(tmp_path) -> None:
    rng = np.random.default_rng(3)
    model = dense_model(rng)
    np.savez(tmp_path / "a.npz", x=correlated(rng, 5, 64))  # a dynamic batch named "n": 5 samples
    folder = tmp_path / "more"
    folder.mkdir()
    np.savez(folder / "b.npz", x=correlated(rng, 3 * 2, 64).reshape(3, 2, 64))  # 3 samples of batch 2
    samples, _ = read_samples(model, [tmp_path / "a.npz", folder])
    assert [s["x"].shape for s in samples] == [(1, 64)] * 5 + [(2, 64)] * 3
    split = split_samples(samples, 2, seed=0)
    assert (len(split.calibration), len(split.held_out)) == (2, 6)
    again = split_samples(samples, 2, seed=0)
    assert all(np.array_equal(a["x"], b["x"]) for a, b in zip(split.calibration, again.calibration, strict=True))
    few = split_samples(samples, 32, seed=0)
    assert (len(few.calibration), len(few.held_out)) == (6, 2) and few.notes


def test_a_dynamic_sequence_axis_is_not_split(tmp_path) -> None:
    nodes = [oh.make_node("MatMul", ["x", "w"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, ["seq_len", 8])], [tensor_info("y", FLOAT, ["seq_len", 4])],
                       {"w": np.ones((8, 4), np.float32)})
    np.savez(tmp_path / "s.npz", x=np.ones((6, 8), np.float32))
    samples, _ = read_samples(model, [tmp_path / "s.npz"])
    assert [s["x"].shape for s in samples] == [(6, 8)]


def test_a_fixed_batch_of_one_splits_a_larger_first_axis(tmp_path) -> None:
    nodes = [oh.make_node("MatMul", ["x", "w"], ["y"])]
    model = make_model(nodes, [tensor_info("x", FLOAT, [1, 8])], [tensor_info("y", FLOAT, [1, 4])],
                       {"w": np.ones((8, 4), np.float32)})
    np.savez(tmp_path / "s.npz", x=np.ones((6, 8), np.float32))
    samples, _ = read_samples(model, [tmp_path / "s.npz"])
    assert len(samples) == 6 and samples[0]["x"].shape == (1, 8)


@pytest.mark.parametrize(("arrays", "message"), [
    ({"y": np.ones((2, 64), np.float32)}, "has no array for model input(s) x"),
    ({"x": np.ones((2, 63), np.float32)}, "the model input is"),
    ({"x": np.ones((2, 64), np.complex64)}, "the model takes float32"),
])
def test_bad_data_is_a_one_line_error_naming_the_file(tmp_path, arrays, message) -> None:
    model = dense_model(np.random.default_rng(4))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(OnnxShareError, match=r"bad\.npz") as info:
        optimize(model, {"calibration": {"data": [str(tmp_path / "bad.npz")]}})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_data_paths_and_empty_folders_are_errors(tmp_path) -> None:
    model = dense_model(np.random.default_rng(5))
    with pytest.raises(OnnxShareError, match="no such file or folder"):
        optimize(model, {"calibration": {"data": [str(tmp_path / "nothing")]}})
    (tmp_path / "empty").mkdir()
    with pytest.raises(OnnxShareError, match=r"holds no \.npz file"):
        optimize(model, {"calibration": {"data": [str(tmp_path / "empty")]}})


def test_recurrent_bias_halves_take_the_mean_shift_of_their_weights() -> None:
    """LSTM, when asked: W's shift goes to B's first half (exactly E[x]·(W − Ŵ) over the inputs), R's to its
    second half."""
    rng = np.random.default_rng(6)
    hidden, features = 16, 24
    w = rng.standard_normal((1, 4 * hidden, features)).astype(np.float32) * 0.3
    r = rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32) * 0.3
    b = rng.standard_normal((1, 8 * hidden)).astype(np.float32)
    nodes = [oh.make_node("LSTM", ["x", "w", "r", "b"], ["y"], hidden_size=hidden)]
    model = make_model(nodes, [tensor_info("x", FLOAT, [10, 1, features])],
                       [tensor_info("y", FLOAT, [10, 1, 1, hidden])], {"w": w, "r": r, "b": b})
    sample = {"x": (rng.standard_normal((10, 1, features)) + 1.0).astype(np.float32)}
    config = {"default": {"bits": 3, "rounding": "nearest"}, "min_elements": 1, "passes": ["compress"]}
    auto = optimize(model, config, data=[sample])  # recurrent ops: no correction unless asked
    assert all("bias corrected" not in " ".join(t.notes) for t in auto.report.tensors)
    config["default"]["bias_correction"] = True
    result = optimize(model, config, data=[sample])
    notes = {t.name: t.notes for t in result.report.tensors if t.scheme}
    assert all("bias corrected" in " ".join(notes[name]) for name in ("w", "r"))
    rewritten = proto(result)
    decoded = {name: run(with_outputs(rewritten, [name]), sample)[-1] for name in ("w", "r")}
    new_bias = ir.convenience.get_const_tensor(load_model(rewritten).graph.node(-1).inputs[3]).numpy()
    expected = sample["x"].reshape(-1, features).mean(axis=0) @ (w[0] - decoded["w"][0]).T
    np.testing.assert_allclose(new_bias[0, : 4 * hidden] - b[0, : 4 * hidden], expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(new_bias[0, 4 * hidden :], b[0, 4 * hidden :])



def test_reports_say_how_the_data_was_split_and_the_held_out_error() -> None:
    rng = np.random.default_rng(8)
    model = dense_model(rng)
    samples = [{"x": correlated(rng, 8, 64)} for _ in range(6)]
    calibrated = optimize(model, {"default": {"bits": 4}, "min_elements": 1, "calibration": {"samples": 4}},
                          data=samples).report
    text, page, data = calibrated.summary(), render_html(calibrated), json.loads(calibrated.to_json())
    split = "6 samples shuffled with seed 0: 4 for calibration, 2 held out"
    assert f"calibration: {split}" in text and "act.err" in text
    assert split in page and "act. error (held out)" in page
    assert data["calibration"]["held_out_samples"] == 2
    assert next(t for t in data["tensors"] if t["name"] == "w")["activation_error"] > 0
    data_free = optimize(model, {"default": {"bits": 4}, "min_elements": 1}).report
    assert "calibration: none (data-free" in data_free.summary() and "act.err" not in data_free.summary()


def test_table_rows_are_weighted_by_use_only_when_asked() -> None:
    rng = np.random.default_rng(10)
    table = rng.standard_normal((300, 32)).astype(np.float32)
    model = make_model([oh.make_node("Gather", ["table", "ids"], ["y"])],
                       [tensor_info("ids", onnx.TensorProto.INT64, [1, 6])], [tensor_info("y", FLOAT, [1, 6, 32])],
                       {"table": table})
    samples = [{"ids": rng.integers(0, 20, (1, 6)).astype(np.int64)} for _ in range(5)]
    config = {"default": {"bits": 3}, "min_elements": 1}

    def rows(result):
        return next(t for t in result.report.tensors if t.name == "table")

    auto, weighted = optimize(model, config, data=samples), optimize(
        model, {**config, "default": {"bits": 3, "weighting": True}}, data=samples)
    assert not any("activation-weighted" in n for n in rows(auto).notes)
    assert any("activation-weighted" in n for n in rows(weighted).notes)
