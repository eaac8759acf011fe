"""Wall time and peak memory of ``onnx-share optimize`` on real models.

Each configuration runs in a fresh Python process that calls the CLI in-process and reports its own peak RSS
(``ru_maxrss``) and the RSS right after importing onnx_share (the fixed cost of numpy, onnx, onnxruntime,
onnx-ir and Polygraphy), so "peak - import" is the memory the run itself needed.

    python tools/build_minilm.py tools/build/minilm.onnx     # once: the ~90 MB transformer
    python tools/bench_optimize.py                            # markdown table on stdout
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits_cnn" / "digits_cnn.onnx"
MINILM = ROOT / "tools" / "build" / "minilm.onnx"
MINILM_SHAPES = ["input_ids:[1,128]", "attention_mask:[1,128]", "token_type_ids:[1,128]"]

CHILD = """
import json, resource, sys, time
start = time.perf_counter()
from onnx_share.cli.main import main
imported_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
code = main(sys.argv[1:])
print(json.dumps({"code": code, "seconds": time.perf_counter() - start, "import_kb": imported_kb,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def measure(args: list[str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["digits", "minilm"], choices=["digits", "minilm"])
    parser.add_argument("--bits", nargs="+", type=int, default=[8, 4])
    args = parser.parse_args()
    models = {"digits": (DIGITS, []), "minilm": (MINILM, ["--input-shapes", *MINILM_SHAPES])}
    print("| model | size MB | config | validate | wall s | peak RSS MB | peak - import MB | peak / size |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            path, extra = models[name]
            if not path.exists():
                print(f"| {name} | missing: build it first (see docstring) | | | | | | |")
                continue
            size_mb = path.stat().st_size / 2**20
            for bits in args.bits:
                for scheme in ("codebook", "uniform"):
                    for validate in (False, True):
                        cli = ["optimize", str(path), f"{tmp}/out.onnx", "--bits", str(bits), "--scheme", scheme]
                        cli += extra if validate else ["--no-validate"]
                        m = measure(cli)
                        peak, base = m["peak_kb"] / 1024, m["import_kb"] / 1024
                        print(
                            f"| {name} | {size_mb:.1f} | {scheme} {bits}-bit | {'yes' if validate else 'no'} | "
                            f"{m['seconds']:.2f} | {peak:.0f} | {peak - base:.0f} | {peak / size_mb:.1f} |"
                        )


if __name__ == "__main__":
    main()
