"""The calibration flags of ``onnx-share optimize``: --data and --calibration-samples reach the run, validation
runs on the held-out samples, and bad data is a one-line error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import DIGITS_DIR

DIGITS = DIGITS_DIR / "digits_cnn.onnx"
DIGITS_DATA = DIGITS_DIR / "digits_test.npz"


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "onnx_share.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=300, check=False)


def test_data_calibrates_and_validation_runs_on_the_held_out_samples(tmp_path: Path) -> None:
    out, report = tmp_path / "d.onnx", tmp_path / "d.json"
    done = cli("optimize", DIGITS, out, "--bits", "3", "--data", DIGITS_DATA, "--calibration-samples", "40",
               "--rounding", "nearest", "--report", report)
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    assert data["calibration"]["calibration_samples"] == 40 and data["calibration"]["held_out_samples"] == 410
    assert data["validation"]["samples"] == 410 and not data["validation"]["synthetic"]
    assert data["config"]["default"]["rounding"] == "nearest"
    rows = [t for t in data["tensors"] if t["scheme"]]
    assert rows and all(t["activation_error"] is not None for t in rows)
    assert "calibration: 450 samples shuffled with seed 0: 40 for calibration, 410 held out" in done.stdout


def test_missing_and_unreadable_data_are_one_line_errors(tmp_path: Path) -> None:
    done = cli("optimize", DIGITS, tmp_path / "o.onnx", "--data", tmp_path / "nothing.npz")
    assert done.returncode == 1 and "no such file or folder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.onnx").exists()
    np.savez(tmp_path / "wrong.npz", pixels=np.zeros((2, 1, 8, 8), np.float32))
    done = cli("optimize", DIGITS, tmp_path / "o.onnx", "--data", tmp_path / "wrong.npz")
    assert done.returncode == 1 and "has no array for model input(s) input" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
