"""Bit-packed codebook indices against native index types: file size, onnxruntime session creation, peak memory.

For each model and width the codebook pass runs twice with its storage choice forced: ``packed`` (bytes from
``pack_bits`` decoded by the opset-11 subgraph, at the model's own opset) and ``native`` (the narrowest ONNX type
that holds the width: UINT4 at opset 21 for 3 and 4 bits, UINT8 at the model's opset for 5 and more: what the
pass stored before packing existed). The float model is measured beside them. Each session is created in a fresh
process (``intra_op_num_threads=1``, default optimization level, so onnxruntime constant-folds the decode
subgraphs), the cases interleaved round by round; the table gives medians of ``--runs`` rounds of the session
creation time and of the process's peak RSS (``VmHWM``), each also as a ratio to the float model in the same
run. "file x floor" is the file size over the float
file's size·bits/32 (every weight at ``bits`` bits), "tensors x floor" the same for the compressed tensors alone
(their bytes after over their bytes before·bits/32, from the report); "folded" says whether onnxruntime's optimized
graph has as many nodes as the float model's.

    python tools/build_minilm.py tools/build/minilm.onnx     # once: the ~90 MB transformer
    python tools/bench_packing.py                             # markdown table on stdout
    python tools/bench_packing.py --models digits --bits 3 4 --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from unittest import mock

import onnx

import onnx_share
from onnx_share.io.load import default_opset
from onnx_share.numerics.packing import NATIVE_INDEX_TYPES, PACKED_MIN_OPSET, IndexStorage

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "digits": ROOT / "models" / "digits_cnn" / "digits_cnn.onnx",
    "minilm": ROOT / "tools" / "build" / "minilm.onnx",
}

# Creates one session; prints creation seconds and the process's peak RSS (KiB) from /proc/self/status (VmHWM
# belongs to this process image; ru_maxrss would carry over the parent's peak at fork).
CHILD = """
import json, sys, time
import onnxruntime as ort

options = ort.SessionOptions()
options.intra_op_num_threads = 1
if len(sys.argv) > 2:
    options.optimized_model_filepath = sys.argv[2]
start = time.perf_counter()
ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
seconds = time.perf_counter() - start
with open("/proc/self/status") as status:
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak_kb": peak_kb}))
"""


def packed_storage(bits: int, opset: int) -> IndexStorage:
    """Packed bytes for every width below 8."""
    return IndexStorage("UINT8", bits, bits < 8, PACKED_MIN_OPSET if bits < 8 else 1)


def native_storage(bits: int, opset: int) -> IndexStorage:
    """The narrowest native type that holds the width at ``opset``."""
    name, width, first = next(t for t in NATIVE_INDEX_TYPES if bits <= t[1] and t[2] <= opset)
    return IndexStorage(name, width, False, first)


def native_opsets(widths: Iterable[int]) -> set[int]:
    """The opsets of the native types that hold these widths."""
    return {first for bits in widths for _, width, first in NATIVE_INDEX_TYPES if bits <= width}


# form -> (the pass's storage choice, the opsets it may raise the model to)
FORMS: dict[str, tuple[Callable[[int, int], IndexStorage], Callable[[Iterable[int]], set[int]]]] = {
    "packed": (packed_storage, lambda widths: {PACKED_MIN_OPSET, 1}),
    "native": (native_storage, native_opsets),
}


def compress(source: Path, bits: int, form: str, out: Path) -> tuple[str, float]:
    """``source`` at ``bits`` bits with the index storage forced to ``form``, saved to ``out``; the storages used
    and the compressed tensors' bytes over their information floor."""
    chooser, opsets = FORMS[form]
    with (
        mock.patch("onnx_share.passes.forms.index_storage", chooser),
        mock.patch("onnx_share.passes.forms.storage_opsets", opsets),
    ):
        result = onnx_share.optimize(source, {"default": {"bits": bits, "granularity": "tensor"}})
    result.save(out)
    rows = result.report.compressed
    storages = ", ".join(sorted({row.storage for row in rows if row.storage}))
    floor = sum(row.bytes_after for row in rows) / (sum(row.bytes_before for row in rows) * bits / 32)
    return f"{storages} @ opset {default_opset(result.model)}", floor


def create_session(path: Path, optimized: Path | None = None) -> dict[str, float]:
    command = [sys.executable, "-c", CHILD, str(path), *([str(optimized)] if optimized else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def optimized_nodes(path: Path, tmp: Path) -> int:
    """Nodes left in onnxruntime's optimized graph of ``path`` (decode subgraphs folded away or not)."""
    optimized = tmp / f"{path.stem}.optimized.onnx"
    create_session(path, optimized)
    count = len(onnx.load(optimized, load_external_data=False).graph.node)
    for written in tmp.glob(f"{path.stem}.optimized.onnx*"):
        written.unlink()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--bits", nargs="+", type=int, default=[3, 4, 5])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print("| model | bits | form | storage | file bytes | file x floor | tensors x floor | folded | create ms | "
          "x float | peak RSS MB | x float |")
    print("|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for name in args.models:
            source = MODELS[name]
            if not source.exists():
                print(f"| {name} | missing: build it first (see docstring) |")
                continue
            cases = {"float": (source, ("float32", 0.0))}
            for bits in args.bits:
                for form in FORMS:
                    out = tmp / f"{name}_{bits}_{form}.onnx"
                    cases[f"{bits} {form}"] = (out, compress(source, bits, form, out))
            samples: dict[str, list[dict[str, float]]] = {case: [] for case in cases}
            for _ in range(args.runs):
                for case, (path, _) in cases.items():
                    samples[case].append(create_session(path))
            seconds = {c: statistics.median(s["seconds"] for s in runs) for c, runs in samples.items()}
            peak = {c: statistics.median(s["peak_kb"] / 1024 for s in runs) for c, runs in samples.items()}
            float_nodes = optimized_nodes(source, tmp)
            for case, (path, (storage, tensors_floor)) in cases.items():
                size = path.stat().st_size
                bits_text, _, form = case.partition(" ")
                floors = (f"{size / (source.stat().st_size * int(bits_text) / 32):.3f} | {tensors_floor:.4f}"
                          if form else " | ")
                folded = ("yes" if optimized_nodes(path, tmp) == float_nodes else "no") if form else ""
                print(
                    f"| {name} | {bits_text if form else ''} | {form or 'float'} | {storage} | {size:,} | {floors} | "
                    f"{folded} | {seconds[case] * 1e3:.0f} | {seconds[case] / seconds['float']:.2f} | "
                    f"{peak[case]:.1f} | {peak[case] / peak['float']:.2f} |"
                )


if __name__ == "__main__":
    main()
