"""The budget search end to end: measured sensitivities, the allocation they give, the budgets met, the saved config
rebuilding the model, the report, and one-line errors."""

from __future__ import annotations

import fnmatch
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx_ir as ir
import pytest
from helpers import make_model, run, tensor_info

from onnx_share.api import optimize
from onnx_share.budget import search as search_module
from onnx_share.calibration.data import split_samples
from onnx_share.errors import OnnxShareError
from onnx_share.report.html import render_html

FLOAT = onnx.TensorProto.FLOAT
FEATURES = 64
SCALES = (1.0, 4.0, 0.25)  # each branch's output scale: its sensitivity goes with the square


def branch_model(rng: np.random.Generator) -> onnx.ModelProto:
    """y = Σ a_i · (x W_i): the output error of branch i is a_i X(W_i − Ŵ_i), so its sensitivity is known."""
    nodes, initializers = [], {}
    for i, scale in enumerate(SCALES):
        nodes += [oh.make_node("MatMul", ["x", f"w{i}"], [f"m{i}"]), oh.make_node("Mul", [f"m{i}", f"a{i}"], [f"y{i}"])]
        initializers[f"w{i}"] = rng.standard_normal((FEATURES, FEATURES)).astype(np.float32)
        initializers[f"a{i}"] = np.array(scale, np.float32)
    nodes += [oh.make_node("Add", ["y0", "y1"], ["s"]), oh.make_node("Add", ["s", "y2"], ["y"])]
    return make_model(nodes, [tensor_info("x", FLOAT, ["n", FEATURES])], [tensor_info("y", FLOAT, ["n", FEATURES])],
                      initializers)


def samples(rng: np.random.Generator, count: int = 40) -> list[dict[str, np.ndarray]]:
    mixing = rng.standard_normal((FEATURES, FEATURES)) * rng.uniform(0.1, 2.0, FEATURES)
    return [{"x": (rng.standard_normal((16, FEATURES)) @ mixing).astype(np.float32)} for _ in range(count)]


@pytest.fixture(scope="module")
def model_and_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict[str, np.ndarray]]]:
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("budget")
    model = branch_model(rng)
    path = folder / "branches.onnx"
    onnx.save(model, path)
    data = samples(rng)
    (folder / "data").mkdir()
    for i, sample in enumerate(data):
        np.savez(folder / "data" / f"{i:02d}.npz", **sample)
    return path, folder / "data", data


def test_sensitivities_and_allocation_are_the_known_ones(model_and_data, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _, data = model_and_data
    built = {}
    build_layers = search_module.build_layers

    def spy(*args, **kwargs):
        built["layers"] = build_layers(*args, **kwargs)
        return built["layers"]

    monkeypatch.setattr(search_module, "build_layers", spy)
    monkeypatch.setattr(search_module, "ALTERNATIVES", 0)  # keep the allocation, not the best measured near it
    result = optimize(str(path), {"budget": {"target_bits": 3.5}}, data=data)  # 32 calibrate, 8 held out
    budget = result.report.budget
    held_out = split_samples(data, 32, 0).held_out
    x = np.concatenate([sample["x"] for sample in held_out]).astype(np.float64)
    model = onnx.load(path)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    y = sum(scale * x @ weights[f"w{i}"] for i, scale in enumerate(SCALES))
    known = {f"w{i}": scale**2 * np.sum((x @ weights[f"w{i}"]) ** 2) / np.sum(y**2)
             for i, scale in enumerate(SCALES)}
    measured = {layer.name: layer.sensitivity for layer in budget.layers}
    assert measured == pytest.approx(known, rel=1e-3)

    # The choice is the one of least known-sensitivity-weighted error among all within the budget.
    layers = built["layers"]
    allowed = (3.5 + search_module.BITS_TOLERANCE) * sum(layer.elements for layer in layers) / 8
    best = min(
        (combo for combo in itertools.product(*(range(len(layer.forms)) for layer in layers))
         if sum(layer.data[c] for layer, c in zip(layers, combo, strict=True)) <= allowed),
        key=lambda combo: sum(known[layer.name] * layer.distortions[c] for layer, c in zip(layers, combo, strict=True)),
    )
    chosen = {row.name: row.chosen for row in budget.layers}
    assert chosen == {layer.name: layer.forms[c].label for layer, c in zip(layers, best, strict=True)}
    bits = [row.bits for row in budget.layers]
    assert max(bits) > min(bits) + 0.5  # the sensitive branch gets more bits than the insensitive one
    kept = budget.tried[budget.chosen]
    assert 3.3 < kept.bits <= 3.55 and kept.passed


def test_saved_config_rebuilds_the_model_byte_for_byte(model_and_data, tmp_path: Path) -> None:
    path, folder, _ = model_and_data
    first = optimize(str(path), {"budget": {"target_bits": 3}, "calibration": {"data": [str(folder)]}})
    first.save(tmp_path / "a.onnx")
    assert not first.config.budget.enabled and set(first.config.tensors) == {"w0", "w1", "w2"}
    budget = first.report.budget  # the allocation within the budget and cheaper ones near it: the best measured kept
    assert budget.tried[0].step == "start" and {row.step for row in budget.tried} <= {"start", "alternative"}
    assert budget.tried[budget.chosen].loss == min(row.loss for row in budget.tried)
    assert all(row.bits <= 3.05 for row in budget.tried)
    again = optimize(str(path), json.loads(json.dumps(first.config.to_dict())))
    again.save(tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert again.report.budget is None


def test_loss_budget_keeps_the_cheapest_model_that_meets_it(model_and_data) -> None:
    path, _, data = model_and_data
    result = optimize(str(path), {"budget": {"max_loss": 0.03}}, data=data)
    budget = result.report.budget
    kept = budget.tried[budget.chosen]
    assert kept.loss is not None and kept.loss <= 0.03 and kept.passed
    assert all(not row.passed for row in budget.tried if row.file_bytes < kept.file_bytes)
    assert len(budget.tried) >= 2 and budget.curve
    # The reported loss is the one the saved model has on the held-out samples.
    rewritten = ir.to_proto(result.model)
    held_out = split_samples(data, 32, 0).held_out
    ys = [run(onnx.load(path), sample)[0] for sample in held_out]
    yhats = [run(rewritten, sample)[0] for sample in held_out]
    error = np.sqrt(sum(np.sum((a.astype(np.float64) - b) ** 2) for a, b in zip(ys, yhats, strict=True))
                    / sum(np.sum(a.astype(np.float64) ** 2) for a in ys))
    assert error == pytest.approx(kept.loss, rel=1e-4)
    html = render_html(result.report)
    assert "Budget search" in html and "rate-distortion curve" in html
    assert json.loads(result.report.to_json())["budget"]["tried"][budget.chosen]["loss"] == kept.loss


def test_score_budget_bounds_the_drop_of_the_users_metric(model_and_data) -> None:
    path, _, data = model_and_data
    feeds = data[:4]
    reference = [run(onnx.load(path), f)[0] for f in feeds]
    calls = []

    def score(model_path: str) -> float:
        calls.append(model_path)
        outputs = [run(model_path, f)[0] for f in feeds]
        return -float(np.mean([np.linalg.norm(a - b) / np.linalg.norm(a)
                               for a, b in zip(reference, outputs, strict=True)]))

    result = optimize(str(path), {"budget": {"max_drop": 0.05}}, data=data, score=score)
    budget = result.report.budget
    kept = budget.tried[budget.chosen]
    assert budget.loss == "score" and kept.score is not None and -kept.score <= 0.05
    assert calls[0] == str(path) and len(calls) == len(budget.tried) + 1


def _single_width_bytes(path: Path, data, bits: int, tmp_path: Path) -> int:
    """The file bytes of the model with every weight at ``bits`` (codebooks at the default granularity)."""
    single = optimize(str(path), {"default": {"bits": bits}, "validation": {"enabled": False}}, data=data)
    return single.save(tmp_path / f"single{bits}.onnx").stat().st_size


@pytest.mark.parametrize("between", [False, True])
def test_score_budget_keeps_no_more_than_the_cheapest_single_width_that_holds(
        model_and_data, tmp_path: Path, between: bool) -> None:
    # A score that holds from a file size on: at a single width's size, the search keeps exactly that size; half
    # way down to the next width, something smaller than that width (the descent between them).
    path, _, data = model_and_data
    three, two = (_single_width_bytes(path, data, bits, tmp_path) for bits in (3, 2))
    threshold = (three + two) // 2 if between else three

    def score(model_path: str) -> float:
        return 0.0 if Path(model_path).stat().st_size >= threshold else -1.0

    result = optimize(str(path), {"budget": {"max_drop": 0.5}}, data=data, score=score)
    budget = result.report.budget
    kept = budget.tried[budget.chosen]
    assert kept.passed and kept.file_bytes >= threshold
    assert all(not row.passed for row in budget.tried if row.file_bytes < kept.file_bytes)
    if between:
        assert kept.file_bytes < three
        assert {"single form", "descent"} <= {row.step for row in budget.tried}
    else:
        assert kept.file_bytes == three


def test_bits_budget_also_measures_the_single_widths_within_its_window(model_and_data) -> None:
    path, _, data = model_and_data
    single = optimize(str(path), {"default": {"bits": 4, "granularity": "tensor"}, "validation": {"enabled": False}},
                      data=data).report.compressed
    bits = 8 * sum(row.bytes_after for row in single) / sum(int(np.prod(row.shape)) for row in single)
    assert 4.05 < bits <= 4.15  # 16 float32 entries per 4096 weights
    budget = optimize(str(path), {"budget": {"target_bits": 4.1}}, data=data).report.budget
    assert any(row.step == "alternative" and row.bits == pytest.approx(bits) for row in budget.tried)
    assert budget.tried[budget.chosen].loss == min(row.loss for row in budget.tried)


def test_candidates_are_built_as_the_kept_model_is_when_the_opset_is_converted(tmp_path: Path) -> None:
    # Softmax's meaning changed in opset 13: reaching the opset of 4-bit storage takes the version converter, for
    # the candidates (costed as packed 4-bit, so the budget is met) as for the kept model, whose file is the one
    # the search measured.
    rng = np.random.default_rng(1)
    weight = onnx.numpy_helper.from_array(rng.standard_normal((FEATURES, 32)).astype(np.float32), "w")
    graph = oh.make_graph([oh.make_node("MatMul", ["x", "w"], ["h"]), oh.make_node("Softmax", ["h"], ["y"], axis=1)],
                          "g", [tensor_info("x", FLOAT, [2, FEATURES])], [tensor_info("y", FLOAT, [2, 32])],
                          initializer=[weight])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 11)], ir_version=6)
    result = optimize(model, {"budget": {"target_bits": 4.25, "bits": [4]}, "min_elements": 16})  # 16 floats: 0.25
    budget = result.report.budget
    assert result.report.conversion is not None and result.report.conversion.kept
    assert budget.tried[budget.chosen].passed and budget.tried[budget.chosen].bits <= 4.3  # 8.25 in 8-bit indices
    assert result.save(tmp_path / "kept.onnx").stat().st_size == budget.tried[budget.chosen].file_bytes


def test_size_budget_is_met_by_the_file(model_and_data, tmp_path: Path) -> None:
    path, _, _ = model_and_data
    result = optimize(str(path), {"budget": {"target_size": 9000}})
    result.save(tmp_path / "small.onnx")
    assert (tmp_path / "small.onnx").stat().st_size <= 9000
    assert result.report.budget.samples.startswith("synthesized")


@pytest.mark.parametrize(("config", "kwargs", "message"), [
    ({"budget": {"max_loss": 0.01}}, {}, "held-out samples"),
    ({"budget": {"max_drop": 1.0}}, {}, "score function"),
    ({}, {"score": lambda path: 0.0}, "needs budget.max_drop"),
    ({"budget": {"target_bits": 4, "max_loss": 0.1}}, {}, "set one budget"),
    ({"budget": {"bits": [0, 4]}}, {}, "budget.bits"),
])
def test_bad_budgets_are_one_line_errors(model_and_data, config, kwargs, message) -> None:
    path, _, _ = model_and_data
    with pytest.raises(OnnxShareError, match=message):
        optimize(str(path), config, **kwargs)


def test_cli_budget_flags_and_saved_config(model_and_data, tmp_path: Path) -> None:
    path, _, _ = model_and_data
    command = [sys.executable, "-m", "onnx_share", "optimize", str(path)]
    out = subprocess.run([*command, str(tmp_path / "a.onnx"), "--target-size", "9.5KB", "--save-config",
                          str(tmp_path / "a.yaml"), "--no-validate"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "budget: a file of at most 9500 bytes" in out.stdout
    again = subprocess.run([*command, str(tmp_path / "b.onnx"), "--config", str(tmp_path / "a.yaml"),
                            "--no-validate"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    bad = subprocess.run([*command, str(tmp_path / "c.onnx"), "--max-loss", "0.01"], capture_output=True, text=True)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "--data" in bad.stderr
    bad = subprocess.run([*command, str(tmp_path / "c.onnx"), "--target-size", "12 parsecs"], capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "not a size" in bad.stderr


def test_a_model_without_float_outputs_budgets_bits_but_not_a_loss(model_and_data, tmp_path: Path) -> None:
    path, _, data = model_and_data
    model = onnx.load(path)
    model.graph.node.append(oh.make_node("ArgMax", ["y"], ["label"], axis=1))
    del model.graph.output[:]
    model.graph.output.append(tensor_info("label", onnx.TensorProto.INT64, ["n", 1]))
    onnx.save(model, tmp_path / "labels.onnx")
    result = optimize(str(tmp_path / "labels.onnx"), {"budget": {"target_bits": 4}}, data=data)
    budget = result.report.budget
    assert budget.tried[budget.chosen].loss is None and budget.tried[budget.chosen].bits <= 4.05
    assert any("no float output" in note for note in budget.notes)
    with pytest.raises(OnnxShareError, match="no float output"):
        optimize(str(tmp_path / "labels.onnx"), {"budget": {"max_loss": 0.1}}, data=data)


@pytest.mark.parametrize("name", ["w[0]", "layer.*.weight", "a?b", "plain"])
def test_saved_overrides_match_their_tensor_only(name: str) -> None:
    pattern = search_module.exact_pattern(name)
    assert fnmatch.fnmatchcase(name, pattern)
    assert not any(fnmatch.fnmatchcase(other, pattern) for other in ("w0", "layer.1.weight", "aXb", "plainer"))
