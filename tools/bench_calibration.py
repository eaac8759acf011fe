"""Time and memory of calibration on MiniLM: 32 samples of 128 tokens of real text calibrate (8 more are held out),
against the data-free run.

The samples are Python's own docstrings (``tools/tasks/minilm.py``'s pool, after the pairs its evaluation uses),
joined and cut into 128-token windows by the all-MiniLM-L6-v2 tokenizer. Each configuration runs in a fresh
process (``optimize`` with validation off) that reports its phases (``report.timings_s``), the Gram bytes the
statistics held and its peak RSS; "import" is the peak RSS of a process that only imports what a run imports, so
"peak - import" is what the run itself needed.

    python tools/bench_calibration.py                       # tools/build/minilm.onnx, --bits 4, --jobs 1 and 2
    python tools/bench_calibration.py --model m.onnx --samples 32 --tokens 128 --jobs 2 --json calibration.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent
MB = 2**20

CHILD = """
import json, resource, sys, time
config = json.loads(sys.argv[2])
start = time.perf_counter()
import onnx_share.api
if sys.argv[1] == "import":
    import onnxruntime, polygraphy, numba, onnx_share.passes.registry, onnx_share.calibration.statistics
    result = None
else:
    result = onnx_share.api.optimize(sys.argv[1], config)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
report = None if result is None else result.report
print(json.dumps({
    "peak": peak, "wall": time.perf_counter() - start,
    "timings": None if report is None else report.timings_s,
    "gram_bytes": None if report is None or report.calibration is None else report.calibration.gram_bytes,
    "sites": None if report is None or report.calibration is None else report.calibration.sites,
}))
"""


def windows(samples: int, tokens: int, folder: Path) -> Path:
    """``samples`` .npz files of exactly ``tokens`` token ids of docstring text (one sample [1, tokens] each)."""
    sys.path.insert(0, str(TOOLS))
    from tasks import minilm
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(minilm.tokenizer().to_str())  # a copy without the task's truncation
    tokenizer.no_truncation()
    pairs = minilm.pool()[minilm.N_QUERIES:]
    text = " ".join(part for pair in pairs for part in pair)
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    body = tokens - 2
    if len(ids) < samples * body:
        raise SystemExit(f"only {len(ids)} tokens of docstrings; need {samples * body}")
    for i in range(samples):
        window = np.array([[cls, *ids[i * body : (i + 1) * body], sep]], np.int64)
        np.savez(folder / f"{i:04d}.npz", input_ids=window, attention_mask=np.ones_like(window),
                 token_type_ids=np.zeros_like(window))
    return folder


def run(model: str, config: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, model, json.dumps(config)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(TOOLS / "build" / "minilm.onnx"))
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--held-out", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not Path(args.model).is_file():
        raise SystemExit(f"{args.model} not found; build it with python tools/build_minilm.py {args.model}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = windows(args.samples + args.held_out, args.tokens, Path(tmp))
        base = {"default": {"bits": args.bits}, "validation": {"enabled": False}}
        imports = run("import", {})["peak"]
        for jobs in args.jobs:
            for name, extra in (("data-free", {}), ("calibrated", {"calibration": {"data": [str(data)],
                                                                                     "samples": args.samples}})):
                measured = run(args.model, {**base, **extra, "jobs": jobs})
                rows.append({"config": name, "jobs": jobs, **measured, "import": imports})
    print(f"MiniLM {args.bits}-bit, {args.samples} samples x {args.tokens} tokens calibrate, {args.held_out} held "
          "out\n")
    print("| run | jobs | calibrate s | compress s | total s | peak - import MB | XᵀX MB |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        timings = row["timings"]
        print(f"| {row['config']} | {row['jobs']} | {timings.get('calibrate', 0.0):.1f} | {timings['compress']:.1f} | "
              f"{row['wall']:.1f} | {(row['peak'] - row['import']) / MB:.0f} | "
              f"{(row['gram_bytes'] or 0) / MB:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
