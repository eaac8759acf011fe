"""Proof that a rewritten model still does its job: both models run in onnxruntime via Polygraphy.

Polygraphy's ``Comparator`` runs the original and the rewritten model (two ``OnnxrtRunner``s with different
names) on the same seeded generated inputs, or on inputs the user gives as ``.npz`` files; the outputs are
then compared here, per output, over all samples. With ``layerwise``, every intermediate tensor that both
models compute under the same name is made an output of both (:mod:`onnx_share.layerwise`) and compared in
the same run, so the report names the first tensor, in the original's topological order, that fails.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from polygraphy.backend.base import BaseRunner
from polygraphy.backend.onnxrt import OnnxrtRunner
from polygraphy.common import TensorMetadata
from polygraphy.comparator import Comparator, DataLoader, RunResults
from polygraphy.logger import G_LOGGER

from onnx_share.config import ValidationConfig
from onnx_share.errors import OnnxShareError
from onnx_share.layerwise import shared_tensors
from onnx_share.report import InputArray, LayerStats, OutputStats, ValidationReport

G_LOGGER.module_severity = G_LOGGER.ERROR
ort.set_default_logger_severity(3)  # errors only: old-opset and optimizer warnings are not the user's concern
ModelFile = str | os.PathLike | bytes
RUNNER_NAMES = ("original", "rewritten")
# onnxruntime resolves external data of a model given as bytes relative to this folder.
EXTERNAL_DATA_FOLDER_KEY = "session.model_external_initializers_file_folder_path"
RELATIVE_FLOOR = 1e-6


@dataclass
class Feeds:
    """The input samples both models get, and where they came from."""

    samples: list[dict[str, np.ndarray]]
    source: str
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def arrays(self) -> list[InputArray]:
        """Per input: dtype and the shape of each sample, for the report."""
        if not self.samples:
            return []
        return [
            InputArray(name, str(array.dtype), [list(sample[name].shape) for sample in self.samples])
            for name, array in self.samples[0].items()
        ]


@dataclass
class LoadedModel:
    """A model's graph (tensor data left on disk) and how onnxruntime should open it."""

    proto: onnx.ModelProto
    source: str | bytes
    folder: Path | None

    @classmethod
    def read(cls, model: ModelFile) -> LoadedModel:
        if isinstance(model, bytes):
            return cls(onnx.load_from_string(model), model, None)
        path = Path(model)
        if not path.is_file():
            raise OnnxShareError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}")
        try:
            proto = onnx.load(path, load_external_data=False)
        except Exception as exc:  # protobuf raises several types for damaged files
            raise OnnxShareError(f"{path}: not a valid ONNX model ({first_line(exc)})") from exc
        return cls(proto, str(path), path.resolve().parent)

    def runner(self, name: str, extra_outputs: Sequence[str] = ()) -> OnnxrtRunner:
        """An onnxruntime runner for this model, with ``extra_outputs`` (intermediate tensors) made outputs."""
        source: str | bytes = self.source
        if extra_outputs:
            instrumented = onnx.ModelProto()
            instrumented.CopyFrom(self.proto)
            instrumented.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in extra_outputs)
            source = instrumented.SerializeToString()
        return OnnxrtRunner(onnxrt_session(source, self.folder), name=name)


def onnxrt_session(model: str | bytes, folder: Path | None = None) -> Callable[[], ort.InferenceSession]:
    """A loader for a CPU session on ``model`` (a path or bytes whose external data lies in ``folder``)."""

    def load() -> ort.InferenceSession:
        options = ort.SessionOptions()
        if folder is not None and isinstance(model, bytes):
            options.add_session_config_entry(EXTERNAL_DATA_FOLDER_KEY, str(folder))
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    return load


def load_inputs(paths: Iterable[str | os.PathLike]) -> list[dict[str, np.ndarray]]:
    """One feed dict per ``.npz`` file (array names are model input names)."""
    samples = []
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as data:
                samples.append({name: data[name] for name in data.files})
        except (OSError, ValueError) as exc:
            raise OnnxShareError(f"cannot read inputs {path}: {exc}") from exc
    return samples


def parse_input_shapes(specs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Parse Polygraphy-style ``name:[d0,d1,...]`` shape overrides."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, sep, dims = spec.rpartition(":")
        dims = dims.strip()
        if not sep or not name or not (dims.startswith("[") and dims.endswith("]")):
            raise OnnxShareError(f"input shape {spec!r} must look like name:[1,3,224,224]")
        try:
            shapes[name] = tuple(int(d) for d in dims[1:-1].split(",") if d.strip())
        except ValueError as exc:
            raise OnnxShareError(f"input shape {spec!r}: dimensions must be integers") from exc
    return shapes


def check_validation_inputs(model: ModelFile, config: ValidationConfig) -> None:
    """Fail early, before any work, on input files that cannot be read or do not fit, or unknown shape names."""
    proto = LoadedModel.read(model).proto
    if config.inputs:
        prepare_feeds(proto, config)
    else:
        input_metadata(proto, config.input_shapes)


def prepare_feeds(model: onnx.ModelProto, config: ValidationConfig) -> Feeds:
    """The samples to run: the ``.npz`` files (extra arrays ignored, same-kind dtypes converted) or
    ``config.samples`` seeded generated ones (dynamic dimensions from ``input_shapes``, else 1)."""
    metadata = input_metadata(model, config.input_shapes)
    if not config.inputs:
        notes = [
            f"input {name!r}: dynamic dimensions set to 1 (give --input-shapes {name}:[...] to choose)"
            for name, (_, shape) in metadata.items()
            if name not in config.input_shapes and any(not isinstance(d, int) or d < 0 for d in shape)
        ]
        fixed = TensorMetadata()
        for name, (dtype, shape) in metadata.items():
            fixed.add(name, dtype, [d if isinstance(d, int) and d >= 0 else 1 for d in shape])
        loader = DataLoader(seed=config.seed, iterations=config.samples, input_metadata=fixed)
        with contextlib.redirect_stdout(io.StringIO()):
            samples = [dict(loader[i]) for i in range(config.samples)]
        return Feeds(samples, f"generated inputs (seed {config.seed})", notes=notes)
    samples, ignored, notes = [], set(), []
    for path, data in zip(config.inputs, load_inputs(config.inputs), strict=True):
        missing = [name for name in metadata if name not in data]
        if missing:
            raise OnnxShareError(f"inputs {path} has no array for model input(s) {', '.join(missing)}")
        ignored.update(set(data) - set(metadata))
        sample = {}
        for name, (dtype, _) in metadata.items():
            sample[name] = _as_input_dtype(data[name], dtype, name, path, notes)
        samples.append(sample)
    return Feeds(samples, f"given inputs ({len(samples)} file(s))", sorted(ignored), sorted(set(notes)))


def input_metadata(
    model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]
) -> dict[str, tuple[np.dtype, list[int | str]]]:
    """Per graph input: numpy dtype and dims (``shapes`` overriding; -1 or a name for dynamic dimensions).
    An unknown name in ``shapes`` is an error."""
    initializers = {t.name for t in model.graph.initializer}
    metadata: dict[str, tuple[np.dtype, list[int | str]]] = {}
    for graph_input in model.graph.input:
        if graph_input.name in initializers:
            continue
        tensor_type = graph_input.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param or -1 for d in tensor_type.shape.dim]
        metadata[graph_input.name] = (dtype, list(shapes.get(graph_input.name, dims)))
    unknown = sorted(set(shapes) - set(metadata))
    if unknown:
        raise OnnxShareError(f"--input-shapes names {', '.join(unknown)}, not inputs of the model")
    return metadata


def compare_models(original: ModelFile, rewritten: ModelFile, config: ValidationConfig) -> ValidationReport:
    """Run both models in onnxruntime on the same inputs and measure how far each output (and, with
    ``config.layerwise``, each shared intermediate tensor) moved."""
    reference, candidate = LoadedModel.read(original), LoadedModel.read(rewritten)
    _check_same_inputs(reference.proto, candidate.proto)
    feeds = prepare_feeds(reference.proto, config)
    output_names = [o.name for o in reference.proto.graph.output]
    candidate_outputs = {o.name for o in candidate.proto.graph.output}
    notes = list(feeds.notes)
    missing = [n for n in output_names if n not in candidate_outputs]
    if missing:
        notes.append(f"output(s) {', '.join(missing)} missing from the rewritten model")
    layers = shared_tensors(reference.proto.graph, candidate.proto.graph) if config.layerwise else []
    if config.layerwise and not layers:
        notes.append("layer-wise: the models share no intermediate tensor name; nothing to localize")
    extra = [t.name for t in layers if t.name not in set(output_names)]
    runs = run_runners(
        [reference.runner(RUNNER_NAMES[0], extra), candidate.runner(RUNNER_NAMES[1], extra)], feeds.samples
    )
    reference_runs, rewritten_runs = runs[RUNNER_NAMES[0]], runs[RUNNER_NAMES[1]]
    outputs = []
    for name in (n for n in output_names if n in candidate_outputs):
        pair = [r[name] for r in reference_runs], [r[name] for r in rewritten_runs]
        mismatch = shape_mismatch(*pair)
        if mismatch is not None:
            notes.append(f"output {name!r}: {mismatch}")
        outputs.append(output_stats(name, *pair, config))
    layer_rows = [
        layer_stats(t.index, t.name, t.op_type, t.node,
                    [r[t.name] for r in reference_runs], [r[t.name] for r in rewritten_runs], config)
        for t in layers
    ]
    first = next((row.name for row in layer_rows if row.passed is False), None)
    tolerances: dict[str, float | None] = {
        "atol": config.atol, "rtol": config.rtol, "min_cosine": config.min_cosine, "min_top1": config.min_top1,
    }
    return ValidationReport(
        inputs=feeds.source,
        samples=len(reference_runs),
        outputs=outputs,
        tolerances=tolerances,
        passed=not missing and all(o.passed for o in outputs),
        input_arrays=feeds.arrays(),
        ignored_arrays=feeds.ignored,
        layerwise=config.layerwise,
        layers=layer_rows,
        first_divergence=first,
        notes=notes,
    )


def run_runners(runners: Sequence[BaseRunner], samples: Sequence[Mapping[str, np.ndarray]]) -> RunResults:
    """Polygraphy's ``Comparator.run`` on the same samples; the results by runner name."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return Comparator.run(list(runners), data_loader=list(samples))
    except Exception as exc:  # Polygraphy wraps runtime failures in several exception types
        raise OnnxShareError(f"could not run the models: {first_line(exc)}") from exc


def output_stats(
    name: str,
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    config: ValidationConfig,
) -> OutputStats:
    """Error statistics of one output over all samples; NaNs in the same places count as equal.

    Integer and bool outputs must match exactly. Float outputs of rank 2 or 3 with at least two entries on
    the last axis ([batch, classes] or [batch, positions, classes]) also get top-1 agreement: the fraction
    of rows whose argmax over the last axis is the same in both models.
    """
    first = np.asarray(reference[0])
    if shape_mismatch(reference, candidate) is not None:
        return OutputStats(name, np.inf, np.inf, np.inf, np.inf, 0.0, False, list(first.shape), str(first.dtype))
    errors = _errors(reference, candidate, config, with_median=True)
    top1 = _top1_agreement(reference, candidate)
    passed = errors["passed"]
    if config.min_top1 is not None and top1 is not None:
        passed = passed and top1 >= config.min_top1
    return OutputStats(
        name=name,
        max_abs_error=errors["max_abs"],
        mean_abs_error=errors["mean_abs"],
        median_abs_error=errors["median_abs"],
        max_rel_error=errors["max_rel"],
        cosine_similarity=errors["cosine"],
        passed=bool(passed),
        shape=list(first.shape),
        dtype=str(first.dtype),
        exact=errors["exact"],
        top1_agreement=top1,
    )


def shape_mismatch(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> str | None:
    """How the shapes of the two models' arrays differ in the first sample where they do, else None."""
    for r, c in zip(reference, candidate, strict=True):
        if np.shape(r) != np.shape(c):
            return f"shapes differ: {list(np.shape(r))} vs {list(np.shape(c))}"
    return None


def layer_stats(
    index: int,
    name: str,
    op_type: str,
    node: str,
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    config: ValidationConfig,
) -> LayerStats:
    """One shared intermediate tensor compared like an output; skipped when shapes or kinds differ."""
    if not all(isinstance(a, np.ndarray) for a in [*reference, *candidate]):
        return LayerStats(index, name, op_type, node, skipped="not a tensor (sequence, map or optional)")
    first, other = np.asarray(reference[0]), np.asarray(candidate[0])
    row = LayerStats(index, name, op_type, node, list(first.shape), str(first.dtype))
    row.skipped = shape_mismatch(reference, candidate)
    if row.skipped is not None:
        return row
    if _is_float(first.dtype) != _is_float(other.dtype):
        row.skipped = f"dtypes differ: {first.dtype} vs {other.dtype}"
        return row
    errors = _errors(reference, candidate, config, with_median=False)
    row.max_abs_error = errors["max_abs"]
    row.mean_abs_error = errors["mean_abs"]
    row.max_rel_error = errors["max_rel"]
    row.cosine_similarity = errors["cosine"]
    row.exact = errors["exact"]
    row.passed = errors["passed"]
    return row


def _errors(
    reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], config: ValidationConfig, *, with_median: bool
) -> dict[str, Any]:
    if np.asarray(reference[0]).dtype.kind in "OUS":  # strings: equal or not
        same = all(np.array_equal(r, c) for r, c in zip(reference, candidate, strict=True))
        error = 0.0 if same else np.inf
        return {"max_abs": error, "mean_abs": error, "median_abs": error, "max_rel": error,
                "cosine": 1.0 if same else 0.0, "exact": True, "passed": same}
    exact = not _is_float(np.asarray(reference[0]).dtype)
    ref = np.concatenate([np.asarray(r, dtype=np.float64).ravel() for r in reference])
    new = np.concatenate([np.asarray(c, dtype=np.float64).ravel() for c in candidate])
    both_nan = np.isnan(ref) & np.isnan(new)
    error = np.where(both_nan, 0.0, np.abs(new - ref))
    error = np.nan_to_num(error, nan=np.inf)
    magnitude = np.abs(np.where(both_nan, 0.0, ref))
    ref_clean, new_clean = np.where(both_nan, 0.0, ref), np.where(both_nan, 0.0, new)
    norms = float(np.linalg.norm(ref_clean)) * float(np.linalg.norm(new_clean))
    if norms > 0:
        cosine = float(np.dot(ref_clean, new_clean)) / norms
    else:
        cosine = 1.0 if np.array_equal(ref_clean, new_clean) else 0.0
    if exact:
        passed = bool(np.array_equal(ref, new))
    else:
        passed = bool(np.isfinite(cosine) and cosine >= config.min_cosine)
        if config.atol is not None or config.rtol is not None:
            bound = (config.atol or 0.0) + (config.rtol or 0.0) * magnitude
            passed = passed and bool(np.all(error <= bound))
    empty = error.size == 0
    # Relative error is meaningless where the reference is (nearly) zero, as after a ReLU: measure it only where
    # |reference| is at least RELATIVE_FLOOR of the tensor's largest |reference|.
    floor = RELATIVE_FLOOR * (float(magnitude.max()) if not empty else 0.0)
    considered = magnitude >= max(floor, np.finfo(np.float64).tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = error[considered] / magnitude[considered]
    if not empty and not considered.any():
        relative = np.array([0.0 if not error.any() else np.inf])
    return {
        "max_abs": 0.0 if empty else float(error.max()),
        "mean_abs": 0.0 if empty else float(error.mean()),
        "median_abs": 0.0 if empty or not with_median else float(np.median(error)),
        "max_rel": 0.0 if relative.size == 0 else float(relative.max()),
        "cosine": cosine,
        "exact": exact,
        "passed": passed,
    }


def _top1_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> float | None:
    first = np.asarray(reference[0])
    if not _is_float(first.dtype) or first.ndim not in (2, 3) or first.shape[-1] < 2 or first.size == 0:
        return None
    agree = [np.argmax(np.asarray(r), axis=-1) == np.argmax(np.asarray(c), axis=-1)
             for r, c in zip(reference, candidate, strict=True)]
    return float(np.concatenate([a.ravel() for a in agree]).mean())


def _is_float(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating) or dtype.kind == "V"


def _check_same_inputs(original: onnx.ModelProto, rewritten: onnx.ModelProto) -> None:
    names = [n for n in input_metadata(original, {})]
    other = [n for n in input_metadata(rewritten, {})]
    if sorted(names) != sorted(other):
        raise OnnxShareError(
            f"the models take different inputs: original {', '.join(names) or '(none)'}, "
            f"rewritten {', '.join(other) or '(none)'}"
        )


def _as_input_dtype(array: np.ndarray, dtype: np.dtype, name: str, path: object, notes: list[str]) -> np.ndarray:
    if array.dtype == dtype:
        return array
    if array.dtype.kind == dtype.kind or {array.dtype.kind, dtype.kind} <= {"i", "u"}:
        notes.append(f"input {name!r}: {array.dtype} arrays converted to the model's {dtype}")
        return array.astype(dtype)
    raise OnnxShareError(f"inputs {path}: array {name!r} is {array.dtype}, the model takes {dtype}")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
