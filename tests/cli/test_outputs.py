"""What ``optimize`` does with its outputs: every path checked before any work; once OUT is written it stays,
and a comparison that cannot run is "not validated" (exit 4) with the summary and reports still written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
from helpers import DIGITS_DIR, tensor_info

from onnx_share.cli import EXIT_ERROR, EXIT_NOT_VALIDATED


def _cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onnx_share", *map(str, args)], capture_output=True, text=True)


def _pad_model(path: Path) -> Path:
    """A model whose reflect padding needs a longer input than the synthesized default."""
    weight = np.random.default_rng(0).standard_normal((100, 100)).astype(np.float32)
    graph = oh.make_graph(
        [oh.make_node("Pad", ["x", "pads"], ["p"], mode="reflect"), oh.make_node("MatMul", ["p", "W"], ["y"])],
        "g", [tensor_info("x", onnx.TensorProto.FLOAT, [1, "n"])], [tensor_info("y", onnx.TensorProto.FLOAT, [1, 100])],
        initializer=[onh.from_array(np.array([0, 10, 0, 10], np.int64), "pads"), onh.from_array(weight, "W")],
    )
    onnx.save_model(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), path)
    return path


def test_a_model_the_synthesized_inputs_do_not_fit_is_written_but_not_validated(tmp_path: Path) -> None:
    model = _pad_model(tmp_path / "pad.onnx")
    done = _cli("optimize", model, tmp_path / "out.onnx", "--bits", "4", "--report", tmp_path / "r.json")
    assert done.returncode == EXIT_NOT_VALIDATED
    assert (tmp_path / "out.onnx").is_file()
    assert "file:" in done.stdout, "the summary is printed"
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("onnx-share: not validated:") and "'x' [1, 16]" in errors[0]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["validation"] is None and any(n.startswith("not validated") for n in report["notes"])
    again = _cli("optimize", model, tmp_path / "out2.onnx", "--bits", "4", "--input-shapes", "x:[1,80]")
    assert again.returncode == 0, again.stderr


def test_every_output_path_is_checked_before_any_work(tmp_path: Path) -> None:
    source = DIGITS_DIR / "digits_cnn.onnx"
    for extra in (["--report", tmp_path / "missing" / "r.json"], ["--report-html", tmp_path / "missing" / "r.html"]):
        done = _cli("optimize", source, tmp_path / "out.onnx", "--no-validate", *extra)
        assert done.returncode == EXIT_ERROR
        assert "output folder does not exist" in done.stderr
        assert not (tmp_path / "out.onnx").exists()


def test_a_file_that_is_not_npz_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "inputs.npz"
    bogus.write_bytes(b"not a zip")
    done = _cli("optimize", DIGITS_DIR / "digits_cnn.onnx", tmp_path / "out.onnx", "--inputs", bogus)
    assert done.returncode == EXIT_ERROR
    assert f"inputs {bogus}: not an .npz file" in done.stderr
    assert not (tmp_path / "out.onnx").exists()
