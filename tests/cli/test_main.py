"""The ``onnx-share`` command end to end, including every bad-input case."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import DIGITS_DIR

DIGITS = DIGITS_DIR / "digits_cnn.onnx"
DIGITS_INPUTS = DIGITS_DIR / "digits_test.npz"


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onnx_share.cli.main", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=300, check=False,
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_optimize_writes_model_report_and_summary(tmp_path: Path) -> None:
    before = _sha(DIGITS)
    out, report = tmp_path / "d4.onnx", tmp_path / "d4.json"
    done = cli("optimize", DIGITS, out, "--bits", "4", "--report", report, "--inputs", DIGITS_INPUTS, "--check")
    assert done.returncode == 0, done.stderr
    assert "fc1.weight" in done.stdout and "validation" in done.stdout and "PASS" in done.stdout
    assert _sha(DIGITS) == before
    onnx.checker.check_model(str(out), full_check=True)
    data = json.loads(report.read_text())
    assert data["schema_version"] == 3
    assert data["totals"]["tensors_compressed"] == 3
    assert data["totals"]["file_bytes_after"] == out.stat().st_size
    assert data["totals"]["file_ratio"] > 4
    row = next(t for t in data["tensors"] if t["name"] == "fc1.weight")
    assert row["scheme"] == "codebook" and row["bits"] == 4 and row["storage"] == "UINT4"
    assert row["consumers"] == ["Gemm"] and row["shape"] == [256, 256] and 0 < row["relative_error"] < 0.2
    assert {"load", "save", "validate"} <= set(data["timings_s"])
    skipped = [t for t in data["tensors"] if t["skipped"]]
    assert any("min_elements" in t["skipped"] for t in skipped)
    (logits,) = (o for o in data["validation"]["outputs"])
    assert logits["name"] == "logits" and logits["cosine_similarity"] > 0.99 and logits["passed"]


def test_check_failure_has_its_own_exit_code(tmp_path: Path) -> None:
    done = cli("optimize", DIGITS, tmp_path / "o.onnx", "--bits", "1", "--check", "--min-cosine", "0.999999")
    assert done.returncode == 3
    assert "FAIL" in done.stdout and "check failed" in done.stderr


def test_config_file_and_overrides(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "default: {bits: 6}\n"
        "op_types: {Conv: {bits: 8}}\n"
        "tensors: {'fc1.*': {scheme: uniform, bits: 4}}\n"
        "exclude: ['conv3.*']\n"
    )
    report = tmp_path / "r.json"
    done = cli("optimize", DIGITS, tmp_path / "o.onnx", "--config", config, "--report", report, "--no-validate")
    assert done.returncode == 0, done.stderr
    rows = {t["name"]: t for t in json.loads(report.read_text())["tensors"]}
    assert (rows["conv2.weight"]["scheme"], rows["conv2.weight"]["bits"]) == ("codebook", 8)
    assert (rows["fc1.weight"]["scheme"], rows["fc1.weight"]["bits"]) == ("uniform", 4)
    assert rows["conv3.weight"]["skipped"] == "not selected by --include/--exclude"
    done = cli("optimize", DIGITS, tmp_path / "o.onnx", "--config", config, "--bits", "3", "--report", report,
               "--no-validate")
    rows = {t["name"]: t for t in json.loads(report.read_text())["tensors"]}
    assert rows["conv2.weight"]["bits"] == 8, "op-type overrides still apply over the global --bits"


def test_inspect_lists_weights(tmp_path: Path) -> None:
    done = cli("inspect", DIGITS, "--bits", "4")
    assert done.returncode == 0, done.stderr
    assert "fc1.weight" in done.stdout and "codebook 4-bit" in done.stdout and "min_elements" in done.stdout
    data = json.loads(cli("inspect", DIGITS, "--json").stdout)
    assert data["summary"]["compressible"] == 3
    assert data["tensors"][0]["name"] == "fc1.weight"


def test_help_and_version() -> None:
    assert "examples:" in cli("optimize", "--help").stdout
    assert cli("--version").stdout.startswith("onnx-share ")


def _bad_models(tmp_path: Path) -> dict[str, tuple[list[str | Path], str]]:
    text = tmp_path / "text.onnx"
    text.write_text("this is not a model\n")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(DIGITS.read_bytes()[: DIGITS.stat().st_size // 2])
    new_ir = onnx.load(DIGITS)
    new_ir.ir_version = 14
    onnx.save(new_ir, tmp_path / "ir14.onnx")
    new_opset = onnx.load(DIGITS)
    new_opset.opset_import[0].version = 27
    onnx.save(new_opset, tmp_path / "opset27.onnx")
    bad_dtype = onnx.load(DIGITS)
    bad_dtype.graph.initializer[0].data_type = 99
    onnx.save(bad_dtype, tmp_path / "dtype.onnx")
    outside = tmp_path / "ext"
    outside.mkdir()
    onnx.save(onnx.load(DIGITS), outside / "m.onnx", save_as_external_data=True, location="w.bin", size_threshold=0)
    proto = onnx.load(outside / "m.onnx", load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../../etc/passwd"
    onnx.save(proto, outside / "m.onnx")
    out = tmp_path / "out.onnx"
    return {
        "missing": (["optimize", tmp_path / "nope.onnx", out], "no such file"),
        "directory": (["optimize", tmp_path, out], "is a directory"),
        "not-onnx": (["optimize", text, out], "not a valid ONNX model"),
        "truncated": (["optimize", truncated, out], "not a valid ONNX model"),
        "ir-too-new": (["optimize", tmp_path / "ir14.onnx", out], "IR version 14"),
        "opset-too-new": (["optimize", tmp_path / "opset27.onnx", out], "opset 27"),
        "unsupported-dtype": (["optimize", tmp_path / "dtype.onnx", out], "not a valid DataType"),
        "external-outside": (["optimize", outside / "m.onnx", out], "outside the model's folder"),
        "bits-too-high": (["optimize", DIGITS, out, "--bits", "9"], "bits must be an integer from 1 to 8"),
        "bits-zero": (["optimize", DIGITS, out, "--bits", "0"], "bits must be an integer from 1 to 8"),
        "uniform-bits": (["optimize", DIGITS, out, "--scheme", "uniform", "--bits", "3"], "supports 2, 4 or 8"),
        "clusters": (["optimize", DIGITS, out, "--clusters", "300"], "clusters must be from 2 to 256"),
        "output-is-input": (["optimize", DIGITS, DIGITS], "is the input file"),
        "output-folder-missing": (["optimize", DIGITS, tmp_path / "no" / "o.onnx"], "does not exist"),
        "bad-input-shape": (["optimize", DIGITS, out, "--input-shapes", "input:1x8"], "must look like"),
        "unknown-input-shape": (["optimize", DIGITS, out, "--input-shapes", "nope:[1,1,8,8]"], "not inputs"),
        "missing-inputs-file": (["optimize", DIGITS, out, "--inputs", tmp_path / "nope.npz"], "nope.npz: no such file"),
        "bad-config": (["optimize", DIGITS, out, "--config", text], "must hold a mapping"),
        "config-unknown-key": (["optimize", DIGITS, out, "--config", _yaml(tmp_path, "bitz: 3\n")], "unknown config"),
        "tensorrt-asymmetric": (["optimize", DIGITS, out, "--scheme", "uniform", "--bits", "4", "--asymmetric",
                                 "--target", "tensorrt"], "asymmetric grid (TensorRT takes zero point 0 only)"),
    }


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


BAD_CASES = [
    "missing", "directory", "not-onnx", "truncated", "ir-too-new", "opset-too-new", "unsupported-dtype",
    "external-outside", "bits-too-high", "bits-zero", "uniform-bits", "clusters", "output-is-input",
    "output-folder-missing", "bad-input-shape", "unknown-input-shape", "missing-inputs-file", "bad-config",
    "config-unknown-key", "tensorrt-asymmetric",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gives_one_line_error(case: str, tmp_path: Path) -> None:
    args, message = _bad_models(tmp_path)[case]
    inputs = [a for a in args if isinstance(a, Path) and a.is_file()]
    digests = {p: _sha(p) for p in inputs}
    done = cli(*args)
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onnx-share: error:"), done.stderr
    assert message in lines[0]
    assert "Traceback" not in done.stderr
    assert {p: _sha(p) for p in inputs} == digests
    assert not (tmp_path / "out.onnx").exists()


def test_verbose_shows_traceback(tmp_path: Path) -> None:
    done = cli("optimize", tmp_path / "nope.onnx", tmp_path / "o.onnx", "-v")
    assert done.returncode == 1 and "Traceback" in done.stderr


def test_input_shapes_fill_dynamic_dims(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = cli("optimize", DIGITS, tmp_path / "o.onnx", "--input-shapes", "input:[5,1,8,8]", "--samples", "2",
               "--report", report)
    assert done.returncode == 0, done.stderr
    validation = json.loads(report.read_text())["validation"]
    assert validation["samples"] == 2 and "synthesized" in validation["inputs"]


def test_validation_inputs_match_direct_comparison(tmp_path: Path) -> None:
    """The report's numbers are what one gets running both models on the same inputs by hand."""
    import onnxruntime as ort

    out, report = tmp_path / "o.onnx", tmp_path / "r.json"
    assert cli("optimize", DIGITS, out, "--bits", "3", "--inputs", DIGITS_INPUTS, "--report", report).returncode == 0
    feeds = dict(np.load(DIGITS_INPUTS))
    feeds.pop("label")
    want = ort.InferenceSession(str(DIGITS)).run(None, feeds)[0].astype(np.float64)
    got = ort.InferenceSession(str(out)).run(None, feeds)[0].astype(np.float64)
    (stats,) = json.loads(report.read_text())["validation"]["outputs"]
    assert stats["max_abs_error"] == pytest.approx(np.abs(got - want).max(), rel=1e-6)
    assert stats["mean_abs_error"] == pytest.approx(np.abs(got - want).mean(), rel=1e-6)


def test_pass_flags_map_onto_the_pipeline(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = cli("optimize", DIGITS, tmp_path / "o.onnx", "--prune", "0.5", "--prune-scope", "global",
               "--rank-energy", "0.95", "--share-tolerance", "0.01", "--bits", "5", "--report", report,
               "--no-validate")
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    assert [p["name"] for p in data["passes"]] == ["fold-shapes", "fold-qdq", "share", "lowrank", "prune", "compress"]
    assert data["config"]["prune"] == {"fraction": 0.5, "threshold": None, "scope": "global", "sparse": True}
    assert data["config"]["lowrank"]["energy"] == 0.95 and data["config"]["share"]["tolerance"] == 0.01
    done = cli("optimize", DIGITS, tmp_path / "o.onnx", "--passes", "prune,cluster", "--prune", "0.3",
               "--report", report, "--no-validate")
    assert [p["name"] for p in json.loads(report.read_text())["passes"]] == ["prune", "compress"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--passes", "share,nope"], "unknown pass nope"),
        (["--prune", "1.5"], "prune.fraction must be in [0, 1]"),
        (["--rank", "0"], "lowrank.rank must be at least 1"),
        (["--share-tolerance", "2"], "share.tolerance must be in [0, 1)"),
    ],
)
def test_bad_pass_options(args: list[str], message: str, tmp_path: Path) -> None:
    done = cli("optimize", DIGITS, tmp_path / "o.onnx", *args)
    assert done.returncode in (1, 2) and message in done.stderr
    assert "Traceback" not in done.stderr


def test_external_data_input_gives_external_output_unless_one_file_is_asked(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    onnx.save(onnx.load(DIGITS_DIR / "digits_cnn.onnx"), folder / "m.onnx", save_as_external_data=True,
              location="m.onnx.data", size_threshold=0)
    done = cli("optimize", folder / "m.onnx", tmp_path / "a.onnx", "--bits", "4", "--no-validate")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.onnx.data").is_file()
    done = cli("optimize", folder / "m.onnx", tmp_path / "b.onnx", "--bits", "4", "--no-validate",
               "--no-external-data")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "b.onnx.data").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "a.onnx.data", "b.onnx", "in"], "no scratch left"
    a, b = onnx.load(tmp_path / "a.onnx"), onnx.load(tmp_path / "b.onnx")
    assert [onnx.numpy_helper.to_array(t).tobytes() for t in a.graph.initializer] == [
        onnx.numpy_helper.to_array(t).tobytes() for t in b.graph.initializer]
