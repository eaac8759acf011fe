"""The package, tests and tools stay ruff-clean (the project's lint settings live in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from helpers import ROOT

LINTED = ("onnx_share", "tests", "tools")


def test_ruff_clean() -> None:
    # ruff is a test extra (pip install -e .[test]): a missing ruff fails here rather than skipping the check.
    assert importlib.util.find_spec("ruff") is not None, f"ruff is not installed for {sys.executable}"
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", *LINTED], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
