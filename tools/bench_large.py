"""Wall time and peak memory of ``onnx-share optimize`` on synthetic multi-GB models, and where the peak comes from.

The model is a chain of ``MatMul`` nodes over float32 [dim, dim] weights (random normal, seeded, scaled by
1/sqrt(dim)), as many as make ``--sizes`` GB (10^9 bytes), stored in one external data file beside the .onnx.
It is written tensor by tensor (the graph holds only external-data references), in a temporary folder that is
deleted afterwards unless ``--keep``.

Each run is a fresh Python process that calls the CLI in-process and reports its wall time, its peak RSS
(``ru_maxrss``) and the peaks of its anonymous and file-backed RSS (``RssAnon``, ``RssFile`` from
``/proc/self/status``, sampled every 20 ms: pages of a memory-mapped weight file count in RSS but the kernel can
drop them). "Import" is the peak RSS of a process that only imports numpy, onnx, onnxruntime, onnx-ir, Polygraphy,
numba and onnx_share's heavy modules; "peak - import" is what the run itself needed. Runs with several ``--jobs``
must write byte-identical outputs (sha256 of the .onnx and its data file).

``--profile`` adds one no-validation run that marks phases (load, discover, each pass, save and their parts) by
wrapping onnx_share functions, and gives each phase's exact peak RSS (``VmHWM``, reset between phases through
``/proc/self/clear_refs``), its sampled peak anonymous RSS and what is resident when it ends; ``--tracemalloc``
also lists which lines hold the Python-visible memory (numpy arrays) when compression is done (it makes the
compress step about 3x slower; the RSS figures barely move).

    python tools/bench_large.py                                   # 2.2 GB, --jobs 1 2: markdown table on stdout
    python tools/bench_large.py --sizes 2.2 --jobs 1 2 --profile  # + RSS by phase of the --jobs 1 run
    python tools/bench_large.py --sizes 2.2 --validate            # + a run with validation (~4.5x the model)
    python tools/bench_large.py --sizes 0.2 --dim 1024 --keep --tmp /tmp --json large.json   # quick smoke test
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

GB = 10**9
MB = 2**20
ALIGNMENT = 4096

# What a run imports, plus what validation imports: the fixed cost every run pays (or could pay).
IMPORTS = (
    "import numpy, onnx, onnxruntime, onnx_ir, polygraphy, numba\n"
    "import onnx_share.api, onnx_share.passes.registry, onnx_share.check.validation\n"
)

# Samples RssAnon/RssFile every 20 ms in a daemon thread; shared by both children.
SAMPLER = """
import json, resource, sys, threading, time
FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in FIELDS:
                out[key] = int(rest.split()[0])
    return out
PEAK = {"RssAnon": 0, "RssFile": 0}
SAMPLES = []
def sample():
    while True:
        s = status()
        for key in PEAK:
            PEAK[key] = max(PEAK[key], s[key])
        SAMPLES.append((time.perf_counter(), s["RssAnon"], s["RssFile"]))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
"""

IMPORT_CHILD = SAMPLER + IMPORTS + """
time.sleep(0.05)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# numba's runtime (LLVM, its code pages) starts with the first compiled kernel a process loads: a fixed cost too
import numpy as np
from onnx_share.numerics.kmeans import dp
dp.prefix_sums(np.ones(2), np.ones(2), np.ones(2))
time.sleep(0.05)
print(json.dumps({"peak_kb": peak, "with_numba_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, **status()}))
"""

RUN_CHILD = SAMPLER + """
start = time.perf_counter()
from onnx_share.cli.main import main
code = main(sys.argv[1:])
time.sleep(0.05)
print(json.dumps({"code": code, "seconds": time.perf_counter() - start,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "peak_anon_kb": PEAK["RssAnon"], "peak_file_kb": PEAK["RssFile"]}))
"""

# argv: model, output, jobs, tracemalloc (0/1). Wraps onnx_share functions to mark phases; each phase gets the
# exact VmHWM while it was open (clear_refs resets the high-water mark at every phase boundary, after every open
# phase took it into account), the sampled peak RssAnon, and the RSS when it ended.
PROFILE_CHILD = SAMPLER + IMPORTS + """
import contextlib, functools, gc, tracemalloc
import onnx_ir
import onnx_share.api as api
import onnx_share.io.load as load
import onnx_share.io.save as save
import onnx_share.passes.registry as registry
T0 = time.perf_counter()
OPEN, PHASES = [], []
TRACE = sys.argv[4] == "1"
def hwm_to_open():
    hwm = status()["VmHWM"]
    for phase in OPEN:
        phase["peak_kb"] = max(phase["peak_kb"], hwm)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
@contextlib.contextmanager
def phase(name):
    hwm_to_open()
    now = status()
    entry = {"name": name, "depth": len(OPEN), "start_s": time.perf_counter() - T0, "peak_kb": now["VmRSS"],
             "anon_before_kb": now["RssAnon"], "file_before_kb": now["RssFile"]}
    if TRACE and not OPEN:
        tracemalloc.reset_peak()
    OPEN.append(entry)
    PHASES.append(entry)
    try:
        yield
    finally:
        hwm_to_open()
        OPEN.pop()
        end = status()
        entry["seconds"] = time.perf_counter() - T0 - entry["start_s"]
        entry["anon_after_kb"], entry["file_after_kb"] = end["RssAnon"], end["RssFile"]
        lo, hi = T0 + entry["start_s"], T0 + entry["start_s"] + entry["seconds"]
        inside = [anon for t, anon, _ in SAMPLES if lo <= t <= hi] + [entry["anon_before_kb"], end["RssAnon"]]
        entry["peak_anon_kb"] = max(inside)
        if TRACE and not entry["depth"]:
            entry["traced_peak_kb"] = tracemalloc.get_traced_memory()[1] // 1024
def wrap(owner, attr, name):
    original = getattr(owner, attr)
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        label = name(args) if callable(name) else name
        with phase(label):
            return original(*args, **kwargs)
    setattr(owner, attr, wrapper)
wrap(api, "load_model", "load")
wrap(load, "_load_path", "read .onnx + onnx-ir deserialize")
wrap(load, "check_level", "onnx checker on the input (full)")
wrap(load, "_check_tensor_data", "inline tensor check")
wrap(api, "select_weights", "discover (NaN check reads every weight)")
wrap(api, "_convert", "opset conversion")
wrap(registry.RecordedStep, "call", lambda args: f"pass {args[0].name}")
wrap(api.OptimizeResult, "save", "save")
wrap(save, "_stage_sparse", "stage sparse")
wrap(onnx_ir, "save", "serialize + write (onnx-ir)")
wrap(save, "_finish_proto", "reload + rewrite proto")
wrap(save, "checker_problem", "onnx checker on the output")
model, out, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
if TRACE:
    tracemalloc.start(8)
with phase("imports done"):
    pass
result = api.optimize(model, {"default": {"bits": 4}, "validation": {"enabled": False}, "jobs": jobs})
with phase("after optimize, before save"):
    pass
# What the optimized model holds: tensors in memory, and external tensors still alive (in the graph or not),
# with whether their mapping is open (their pages count in RssFile while resident). No gc.collect(): what the
# CLI would hold at this point, cyclic garbage included, is what save runs with.
alive = [o for o in gc.get_objects() if isinstance(o, onnx_ir.ExternalTensor)]
tensors = [v.const_value for g in result.model.graphs() for v in g.initializers.values() if v.const_value is not None]
inline = [t for t in tensors if not isinstance(t, onnx_ir.ExternalTensor)]
# nbytes is the stored size; a numpy array of a 4-bit type holds one byte per element
in_memory = [getattr(t, "raw", None) for t in inline]
held = {"inline_tensors": len(inline), "inline_mb": sum(t.nbytes for t in inline) / 2**20,
        "inline_held_mb": sum(r.nbytes if hasattr(r, "nbytes") else t.nbytes for r, t in zip(in_memory, inline))
        / 2**20,
        "external_in_graph": sum(isinstance(t, onnx_ir.ExternalTensor) for t in tensors),
        "external_alive": len(alive), "external_alive_mapped": sum(o._array is not None for o in alive),
        "external_alive_mapped_mb": sum(o.nbytes for o in alive if o._array is not None) / 2**20}
del alive, tensors, inline, in_memory
top = []
if TRACE:
    snapshot = tracemalloc.take_snapshot()
    for stat in snapshot.statistics("traceback")[:8]:
        frames = [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in list(stat.traceback)[::-1][:4]]
        top.append({"mb": stat.size / 2**20, "count": stat.count, "where": " < ".join(frames)})
    del snapshot
    tracemalloc.stop()
result.save(out)
with phase("after save"):
    pass
time.sleep(0.05)
print(json.dumps({"phases": PHASES, "held_after_optimize": held, "tracemalloc_top": top,
                  "timings_s": result.report.timings_s,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "samples": [(t - T0, a, f) for t, a, f in SAMPLES[::max(1, len(SAMPLES) // 400)]]}))
"""


def data_path(model: Path) -> Path:
    return model.with_name(model.name + ".data")


def generate(path: Path, size_gb: float, dim: int, seed: int, opset: int) -> dict[str, Any]:
    """Write a MatMul-chain model of about ``size_gb`` GB to ``path`` and ``path.data``, one weight at a time."""
    count = max(1, round(size_gb * GB / (dim * dim * 4)))
    rng = np.random.default_rng(seed)
    data = data_path(path)
    initializers, nodes = [], []
    previous = "x"
    with data.open("wb") as f:
        for i in range(count):
            weight = rng.standard_normal((dim, dim), dtype=np.float32)
            weight *= np.float32(1 / np.sqrt(dim))
            f.write(b"\0" * (-f.tell() % ALIGNMENT))
            offset = f.tell()
            weight.tofile(f)
            tensor = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[dim, dim])
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", data.name), ("offset", offset), ("length", weight.nbytes)):
                tensor.external_data.add(key=key, value=str(value))
            initializers.append(tensor)
            output = "y" if i == count - 1 else f"h{i}"
            nodes.append(helper.make_node("MatMul", [previous, f"w{i}"], [output], name=f"matmul_{i}"))
            previous = output
            del weight
    graph = helper.make_graph(
        nodes, "matmul_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, dim])],
        initializer=initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="bench_large")
    model.ir_version = helper.find_min_ir_version_for(opsets, True)
    path.write_bytes(model.SerializeToString())
    onnx.checker.check_model(str(path))
    return {"tensors": count, "bytes": path.stat().st_size + data.stat().st_size}


def files_of(model: Path) -> list[Path]:
    return [p for p in (model, data_path(model)) if p.is_file()]


def digest(model: Path) -> str:
    """sha256 over the .onnx file and its data file (if any), in that order."""
    h = hashlib.sha256()
    for path in files_of(model):
        h.update(path.name.rpartition(".onnx")[2].encode())
        with path.open("rb") as f:
            while chunk := f.read(16 * MB):
                h.update(chunk)
    return h.hexdigest()


def child(code: str, args: list[str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_optimize(model: Path, out: Path, jobs: int, validate: bool) -> dict[str, Any]:
    report = out.with_name(out.name + ".report.json")
    cli = ["optimize", str(model), str(out), "--bits", "4", "--jobs", str(jobs), "--report", str(report)]
    if not validate:
        cli.append("--no-validate")
    m = child(RUN_CHILD, cli)
    timings = json.loads(report.read_text())["timings_s"]
    report.unlink()
    m.update(output_bytes=sum(p.stat().st_size for p in files_of(out)), sha256=digest(out),
             compress_seconds=timings["compress"])
    return m


def profile(model: Path, out: Path, jobs: int, trace: bool) -> dict[str, Any]:
    return child(PROFILE_CHILD, [str(model), str(out), str(jobs), "1" if trace else "0"])


def mb(kb: float) -> str:
    return f"{kb / 1024:.0f}"


def print_runs(rows: list[dict[str, Any]], imported: dict[str, Any]) -> None:
    print("| model | GB | tensors | validate | jobs | wall s | compress s | compress speed-up | peak RSS MB | "
          "peak - import MB | / model | peak - import - numba MB | / model | peak anon MB | peak file MB | "
          "output MB | sha256 | same output |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        above = r["peak_kb"] - imported["peak_kb"]
        above_numba = r["peak_kb"] - imported["with_numba_kb"]
        print(
            f"| {r['model']} | {r['model_bytes'] / GB:.2f} | {r['tensors']} | {'yes' if r['validate'] else 'no'} | "
            f"{r['jobs']} | {r['seconds']:.0f} | {r['compress_seconds']:.1f} | {r['compress_speedup']:.2f}x | "
            f"{mb(r['peak_kb'])} | {mb(above)} | {above * 1024 / r['model_bytes']:.2f} | {mb(above_numba)} | "
            f"{above_numba * 1024 / r['model_bytes']:.2f} | {mb(r['peak_anon_kb'])} | {mb(r['peak_file_kb'])} | "
            f"{r['output_bytes'] / MB:.0f} | {r['sha256'][:12]} | {r['same_output']} |"
        )


def print_profile(label: str, jobs: int, p: dict[str, Any]) -> None:
    print(f"\nRSS by phase, {label}, --jobs {jobs}, no validation (MB; peak: exact VmHWM while the phase "
          "was open; anon: sampled RssAnon; file: RssFile, clean pages of the mapped weights)\n")
    print("| phase | start s | seconds | peak RSS | peak anon | anon at end | file at end | anon change |")
    print("|---|---|---|---|---|---|---|---|")
    for ph in p["phases"]:
        name = "&nbsp;&nbsp;" * ph["depth"] + ph["name"]
        change = ph["anon_after_kb"] - ph["anon_before_kb"]
        print(
            f"| {name} | {ph['start_s']:.1f} | {ph['seconds']:.1f} | {mb(ph['peak_kb'])} | {mb(ph['peak_anon_kb'])} | "
            f"{mb(ph['anon_after_kb'])} | {mb(ph['file_after_kb'])} | {mb(change)} |"
        )
    held = p["held_after_optimize"]
    print(
        f"\nWhen optimize returned, the model held {held['inline_tensors']} in-memory tensors "
        f"({held['inline_mb']:.0f} MB as stored, {held['inline_held_mb']:.0f} MB as held in memory) and "
        f"{held['external_in_graph']} external ones; "
        f"{held['external_alive']} external tensors were alive, {held['external_alive_mapped']} of them mapped "
        f"({held['external_alive_mapped_mb']:.0f} MB)."
    )
    if p["tracemalloc_top"]:
        print("\nPython-visible memory held when optimize returned (tracemalloc, top tracebacks):\n")
        print("| MB | blocks | where (innermost first) |")
        print("|---|---|---|")
        for row in p["tracemalloc_top"]:
            print(f"| {row['mb']:.0f} | {row['count']} | {row['where']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", type=float, default=[2.2], help="model sizes in GB (10^9 bytes)")
    parser.add_argument("--models", nargs="*", type=Path, default=[], help="existing models to run as well "
                        "(before the generated ones; never modified or deleted)")
    parser.add_argument("--jobs", nargs="+", type=int, default=[1, 2],
                        help="--jobs of each no-validation run, in order (repeat them to interleave: 1 2 1 2)")
    parser.add_argument("--runs", action=argparse.BooleanOptionalAction, default=True,
                        help="the timed CLI runs (--no-runs: only generate and --profile)")
    parser.add_argument("--validate", action="store_true", help="also run once with validation (first --jobs)")
    parser.add_argument("--profile", action="store_true", help="also profile RSS by phase (first --jobs)")
    parser.add_argument("--tracemalloc", action="store_true", help="with --profile: list what holds memory")
    parser.add_argument("--dim", type=int, default=4096, help="weights are [dim, dim] float32")
    parser.add_argument("--opset", type=int, default=17, help="the generated model's opset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the temporary models")
    parser.add_argument("--keep", action="store_true", help="keep the generated models and outputs")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args()

    imported = child(IMPORT_CHILD, [])
    import_kb = imported["peak_kb"]
    rows: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    folder = Path(tempfile.mkdtemp(prefix="bench_large.", dir=args.tmp))

    def measure(model: Path, label: str, info: dict[str, Any]) -> None:
        """Every configured run on ``model`` (outputs deleted unless --keep), and the profile if asked."""
        configs = [(jobs, False) for jobs in args.jobs] + ([(args.jobs[0], True)] if args.validate else [])
        first: dict[str, Any] | None = None
        for run, (jobs, validate) in enumerate(configs if args.runs else []):
            # One folder per run, the same file name in each: an external-data output names its data file.
            out = folder / f"{label}.{run}.j{jobs}{'.v' if validate else ''}" / f"{label}.out.onnx"
            out.parent.mkdir()
            m = run_optimize(model, out, jobs, validate)
            first = first or m
            row = {"model": label, "model_bytes": info["bytes"], "tensors": info["tensors"], "jobs": jobs,
                   "validate": validate, **m, "import_kb": import_kb,
                   "compress_speedup": first["compress_seconds"] / m["compress_seconds"],
                   "same_output": "yes" if m["sha256"] == first["sha256"] else "NO"}
            rows.append(row)
            print(f"  {label} jobs {jobs} validate {validate}: {m['seconds']:.0f} s, peak {mb(m['peak_kb'])} MB",
                  file=sys.stderr)
            if not args.keep:
                shutil.rmtree(out.parent)
        if args.profile:
            out = folder / f"{label}.profile" / f"{label}.out.onnx"
            out.parent.mkdir()
            p = profile(model, out, args.jobs[0], args.tracemalloc)
            profiles.append({"model": label, "jobs": args.jobs[0], **p})
            if not args.keep:
                shutil.rmtree(out.parent)

    try:
        for path in args.models:
            measure(path, path.stem, {"bytes": sum(p.stat().st_size for p in files_of(path)),
                                      "tensors": len(onnx.load(path, load_external_data=False).graph.initializer)})
        for size in args.sizes:
            model = folder / f"chain_{size:g}gb.onnx"
            info = generate(model, size, args.dim, args.seed, args.opset)
            print(f"generated {model} ({info['tensors']} x [{args.dim}, {args.dim}], {info['bytes'] / GB:.2f} GB)",
                  file=sys.stderr)
            measure(model, f"chain_{size:g}gb", info)
            if not args.keep:
                for path in files_of(model):
                    path.unlink()
    finally:
        if args.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)

    print(f"Import cost (peak RSS of a process importing the heavy modules): {mb(import_kb)} MB; with numba's "
          f"runtime started by one cached kernel: {mb(imported['with_numba_kb'])} MB\n")
    if rows:
        print_runs(rows, imported)
    for p in profiles:
        print_profile(p["model"], p["jobs"], p)
    if args.json:
        payload = {"import": imported, "runs": rows, "profiles": profiles, "cpus": os.cpu_count()}
        args.json.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
