"""A bits budget against every single-width configuration of the same size: held-out output error and bits.

For each model file of the task benchmark (its 40 calibration files: 32 calibrate, 8 held out) and MiniLM,
``--target-bits B`` is compared with the calibrated configurations that give every weight B bits: codebooks at
auto, per-tensor and per-channel granularity and the uniform grid. The error is ‖Y − Ŷ‖ / ‖Y‖ over the float
outputs of the 8 held-out samples (what the budget search measures); bits are stored bits per compressed weight.
The search's seconds by phase are printed too.

    python tools/bench_budget.py --json budget.json              # every task model whose files are cached
    python tools/bench_budget.py --models minilm --bits 4
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tasks import TASKS
from tasks.run import CALIBRATION_FILES, model_dir

SINGLE = {
    "codebook auto": {"scheme": "codebook", "granularity": "auto"},
    "codebook tensor": {"scheme": "codebook", "granularity": "tensor"},
    "codebook channel": {"scheme": "codebook", "granularity": "channel"},
    "uniform": {"scheme": "uniform", "granularity": "auto"},
}


def model_files() -> list[tuple[str, object, str]]:
    """(label, task module, relative model path) of every task model file that is present."""
    found = []
    for name in TASKS:
        module = importlib.import_module(f"tasks.{name}")
        for relative in module.MODELS:
            if (model_dir(module) / relative).is_file():
                found.append((f"{name}:{Path(relative).stem}", module, relative))
    return found


def held_out_loss(original: Path, rewritten: Path, folder: Path) -> float:
    """‖Y − Ŷ‖ / ‖Y‖ on the held-out files of ``folder`` (the split onnx-share makes by default)."""
    from onnx_share.budget.sensitivity import float_outputs, output_loss, runner
    from onnx_share.calibration.data import read_samples, split_samples
    from onnx_share.io.proto import ProtoModel

    proto = ProtoModel.read(original).proto
    samples, _ = read_samples(proto, [str(folder)])
    held_out = split_samples(samples, 32, 0).held_out
    outputs = float_outputs(proto)
    return output_loss(runner(str(original), None, outputs)(held_out), runner(str(rewritten), None, outputs)(held_out),
                       "relative")


def stored_bits(report) -> float:
    rows = report.compressed
    return 8 * sum(row.bytes_after for row in rows) / sum(int(np.prod(row.shape)) for row in rows)


def measure(path: Path, folder: Path, bits: int) -> dict:
    import onnx_share

    row: dict = {}
    data = {"calibration": {"data": [str(folder)]}, "validation": {"enabled": False}}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = onnx_share.optimize(str(path), {"budget": {"target_bits": bits}, **data})
        seconds = time.perf_counter() - start
        budget = result.report.budget
        kept = budget.tried[budget.chosen]
        row["budget"] = {"bits": kept.bits, "loss": kept.loss, "predicted": kept.predicted_loss,
                         "seconds": seconds, "phases": budget.timings_s, "calibrate": result.report.timings_s.get(
                             "calibrate"), "chosen": [layer.chosen for layer in budget.layers]}
        for label, spec in SINGLE.items():
            if spec["scheme"] == "uniform" and bits not in (2, 4, 8):
                continue
            result = onnx_share.optimize(str(path), {"default": {**spec, "bits": bits}, **data})
            out = Path(tmp) / f"{label.replace(' ', '_')}.onnx"
            result.save(out)
            row[label] = {"bits": stored_bits(result.report), "loss": held_out_loss(path, out, folder)}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", help="labels (task:stem) or task names to run (default: all)")
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for label, module, relative in model_files():
        if args.models and not any(label == m or label.startswith(f"{m}:") for m in args.models):
            continue
        folder = module.calibration_data(relative, CALIBRATION_FILES)
        row = {"model": label, **measure(model_dir(module) / relative, folder, args.bits)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    heads = [label for label in SINGLE if any(label in row for row in rows)]
    print(f"| model | budget {args.bits} bits: bits, loss | " + " | ".join(heads) + " | lower than all | search s |")
    print("|---|---|" + "---|" * len(heads) + "---|---|")
    for row in rows:
        budget = row["budget"]
        lower = all(budget["loss"] < row[h]["loss"] for h in heads if h in row)
        cells = [f"{row[h]['bits']:.3f}, {row[h]['loss']:.4f}" if h in row else "" for h in heads]
        print(f"| {row['model']} | {budget['bits']:.3f}, **{budget['loss']:.4f}** | " + " | ".join(cells)
              + f" | {'yes' if lower else 'NO'} | {budget['seconds']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(["python", "tools/bench_budget.py", *(argv or
                                                                                                      sys.argv[1:])]),
                                         "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
