"""Startup cost of the ``onnx-share`` command and of ``import onnx_share``, against a bare interpreter.

Each case runs ``--runs`` times in fresh processes, the cases interleaved round by round so that load on the
machine spreads over all of them; the table gives the median wall time and the peak RSS (the child's own
``ru_maxrss`` from ``os.wait4``), each also as a ratio to ``python -P -c pass`` measured in the same run. Then it
lists which heavy modules each light path loads; any of them is a failure (exit 1).

    python tools/bench_startup.py              # markdown table on stdout
    python tools/bench_startup.py --runs 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Must stay out of `import onnx_share`, `onnx-share --help` and `onnx-share --version`.
HEAVY = ("onnxruntime", "polygraphy", "numba", "matplotlib", "onnx_ir", "onnx", "numpy", "yaml", "sympy")

# -P: the package is imported as installed (as the console script sees it), not from the current folder.
PYTHON = (sys.executable, "-P")
# Runs one light path in-process and prints the top-level modules it loaded, one a line.
LOADED = """
import contextlib, io, sys
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    {code}
print("\\n".join(sorted({{name.partition(".")[0] for name in sys.modules}})))
"""
LIGHT_PATHS = {
    "import onnx_share": "import onnx_share",
    "onnx-share --help": "from onnx_share.cli.main import main; main(['--help'])",
    "onnx-share optimize --help": "from onnx_share.cli.main import main; main(['optimize', '--help'])",
    "onnx-share --version": "from onnx_share.cli.main import main; main(['--version'])",
}


def console_script() -> str:
    """The installed ``onnx-share`` script beside this interpreter (not a pyenv shim), else the one on PATH."""
    beside = Path(sys.executable).with_name("onnx-share")
    found = str(beside) if beside.is_file() else shutil.which("onnx-share")
    if found is None:
        raise SystemExit("onnx-share is not installed: pip install -e .")
    return found


def run_once(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one run of ``command``."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {child.returncode}")
    return seconds, usage.ru_maxrss / 1024  # Linux: kilobytes


def measure(cases: dict[str, list[str]], runs: int) -> dict[str, tuple[float, float]]:
    """Per case: the median wall seconds and the largest peak RSS (MB) over ``runs`` interleaved rounds."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, command in cases.items():
            samples[name].append(run_once(command))
    return {
        name: (statistics.median(s for s, _ in values), max(mb for _, mb in values))
        for name, values in samples.items()
    }


def heavy_modules(code: str) -> list[str]:
    """The modules of ``HEAVY`` that running ``code`` in a fresh interpreter loads."""
    done = subprocess.run([*PYTHON, "-c", LOADED.format(code=code)], capture_output=True, text=True, check=True)
    return [name for name in HEAVY if name in done.stdout.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per case (default 20)")
    runs = parser.parse_args().runs
    script = console_script()
    cases = {
        "python -P -c pass": [*PYTHON, "-c", "pass"],
        "python -P -c 'import onnx_share'": [*PYTHON, "-c", "import onnx_share"],
        "onnx-share --help": [script, "--help"],
        "onnx-share optimize --help": [script, "optimize", "--help"],
        "onnx-share --version": [script, "--version"],
    }
    results = measure(cases, runs)
    base_s, base_mb = results["python -P -c pass"]
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {runs} runs\n")
    print("| command | wall ms | x python | peak RSS MB | x python |")
    print("|---|---|---|---|---|")
    for name, (seconds, mb) in results.items():
        print(f"| `{name}` | {seconds * 1e3:.0f} | {seconds / base_s:.2f} | {mb:.1f} | {mb / base_mb:.2f} |")
    print("\n| path | heavy modules loaded |")
    print("|---|---|")
    failed = False
    for name, code in LIGHT_PATHS.items():
        loaded = heavy_modules(code)
        failed |= bool(loaded)
        print(f"| `{name}` | {', '.join(loaded) or 'none'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
