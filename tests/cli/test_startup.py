"""``import onnx_share`` and the command's parser stay light, and importing the package changes no logging state.

Each check runs in a fresh interpreter, since this test process has long imported everything. The time the
command takes to start is measured by ``tools/bench_startup.py``, not here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# What `import onnx_share`, `onnx-share --help` and `onnx-share --version` must not load.
HEAVY = ("onnxruntime", "polygraphy", "numba", "matplotlib", "onnx_ir", "onnx", "numpy")

LIGHT_PATHS = {
    "import": "import onnx_share",
    "parser": "from onnx_share.cli.main import build_parser; build_parser()",
    "help": "from onnx_share.cli.main import main; main(['--help'])",
    "optimize-help": "from onnx_share.cli.main import main; main(['optimize', '--help'])",
    "version": "from onnx_share.cli.main import main; main(['--version'])",
}

LOADED = """
import contextlib, io, sys
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    {code}
print(" ".join(sorted({{name.partition(".")[0] for name in sys.modules}})))
"""

# Prints every piece of global logging state that importing the package changed, one a line.
LOGGING_STATE = """
import copy, logging
import onnxruntime as ort
from polygraphy.logger import G_LOGGER

calls = []
for setter in ("set_default_logger_severity", "set_default_logger_verbosity", "set_default_logger_callback"):
    setattr(ort, setter, lambda *args, setter=setter: calls.append(f"onnxruntime.{setter}{args}"))

def state():
    loggers = {
        name or "root": (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
        for name in ("", "onnx_share", "onnxruntime", "polygraphy")
        for logger in [logging.getLogger(name)]
    }
    return {
        **loggers,
        "logging.disable": logging.root.manager.disable,
        "G_LOGGER.module_severity": (G_LOGGER.module_severity, copy.deepcopy(vars(G_LOGGER.module_severity))),
    }

before = state()
import onnx_share, onnx_share.api, onnx_share.check.validation
after = state()
for key in before:
    if before[key] != after[key]:
        print(f"{key}: {before[key]!r} -> {after[key]!r}")
print("\\n".join(calls))
"""


def python(code: str) -> str:
    """The stdout of ``code`` run in a fresh interpreter (a failure shows its stderr)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("path", LIGHT_PATHS)
def test_light_paths_load_no_heavy_module(path: str) -> None:
    loaded = set(python(LOADED.format(code=LIGHT_PATHS[path])).split())
    assert "onnx_share" in loaded
    assert not loaded & set(HEAVY), f"{LIGHT_PATHS[path]!r} loads {sorted(loaded & set(HEAVY))}"


def test_import_changes_no_logging_state() -> None:
    changed = python(LOGGING_STATE).strip()
    assert not changed, changed
