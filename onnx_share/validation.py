"""Proof that a rewritten model still does its job: both models run in onnxruntime via Polygraphy.

Polygraphy's ``Comparator`` runs the original and the rewritten model (two ``OnnxrtRunner``s with different
names) on the same seeded generated inputs, or on inputs the user gives as ``.npz`` files; the outputs are
then compared here, per output, over all samples.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
from polygraphy.common import TensorMetadata
from polygraphy.comparator import Comparator, DataLoader
from polygraphy.logger import G_LOGGER

from onnx_share.config import ValidationConfig
from onnx_share.errors import OnnxShareError
from onnx_share.report import OutputStats, ValidationReport

G_LOGGER.module_severity = G_LOGGER.ERROR
ModelFile = str | os.PathLike | bytes
RUNNER_NAMES = ("original", "rewritten")


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
    """Fail early, before any work, on input files that cannot be read or shapes for unknown inputs."""
    load_inputs(config.inputs)
    _input_metadata(model, config.input_shapes)


def compare_models(original: ModelFile, rewritten: ModelFile, config: ValidationConfig) -> ValidationReport:
    """Run both models in onnxruntime on the same inputs and measure how far each output moved."""
    reference_model = _model_bytes_or_path(original)
    feeds: Sequence[Mapping[str, np.ndarray]] | DataLoader
    if config.inputs:
        feeds = load_inputs(config.inputs)
        source = f"given inputs ({len(feeds)} file(s))"
    else:
        feeds = DataLoader(
            seed=config.seed,
            iterations=config.samples,
            input_metadata=_input_metadata(original, config.input_shapes),
        )
        source = f"generated inputs (seed {config.seed})"
    runners = [
        OnnxrtRunner(SessionFromOnnx(reference_model, providers=["cpu"]), name=RUNNER_NAMES[0]),
        OnnxrtRunner(SessionFromOnnx(_model_bytes_or_path(rewritten), providers=["cpu"]), name=RUNNER_NAMES[1]),
    ]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            results = Comparator.run(runners, data_loader=feeds)
    except Exception as exc:  # Polygraphy wraps onnxruntime failures in several exception types
        raise OnnxShareError(f"validation could not run the models in onnxruntime: {_first_line(exc)}") from exc
    reference_runs = results[RUNNER_NAMES[0]]
    rewritten_runs = results[RUNNER_NAMES[1]]
    outputs = [
        output_stats(
            name,
            [run[name] for run in reference_runs],
            [run[name] for run in rewritten_runs],
            config,
        )
        for name in reference_runs[0]
    ]
    return ValidationReport(
        inputs=source,
        samples=len(reference_runs),
        outputs=outputs,
        tolerances={"atol": config.atol, "rtol": config.rtol, "min_cosine": config.min_cosine},
        passed=all(o.passed for o in outputs),
    )


def output_stats(
    name: str,
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    config: ValidationConfig,
) -> OutputStats:
    """Error statistics of one output over all samples; NaNs in the same places count as equal."""
    ref = np.concatenate([np.asarray(r, dtype=np.float64).ravel() for r in reference])
    new = np.concatenate([np.asarray(c, dtype=np.float64).ravel() for c in candidate])
    both_nan = np.isnan(ref) & np.isnan(new)
    error = np.where(both_nan, 0.0, np.abs(new - ref))
    error = np.nan_to_num(error, nan=np.inf)
    magnitude = np.abs(np.where(both_nan, 0.0, ref))
    relative = error / np.maximum(magnitude, np.finfo(np.float64).tiny)
    ref_clean, new_clean = np.where(both_nan, 0.0, ref), np.where(both_nan, 0.0, new)
    norms = float(np.linalg.norm(ref_clean)) * float(np.linalg.norm(new_clean))
    if norms > 0:
        cosine = float(np.dot(ref_clean, new_clean)) / norms
    else:
        cosine = 1.0 if np.array_equal(ref_clean, new_clean) else 0.0
    passed = bool(np.isfinite(cosine) and cosine >= config.min_cosine)
    if config.atol is not None or config.rtol is not None:
        bound = (config.atol or 0.0) + (config.rtol or 0.0) * magnitude
        passed = passed and bool(np.all(error <= bound))
    empty = error.size == 0
    return OutputStats(
        name=name,
        max_abs_error=0.0 if empty else float(error.max()),
        mean_abs_error=0.0 if empty else float(error.mean()),
        median_abs_error=0.0 if empty else float(np.median(error)),
        max_rel_error=0.0 if empty else float(relative.max()),
        cosine_similarity=cosine,
        passed=passed,
    )


def _input_metadata(model: ModelFile, shapes: Mapping[str, tuple[int, ...]]) -> TensorMetadata | None:
    """Input names/dtypes/shapes for the data loader, with ``shapes`` filling dynamic dimensions."""
    if not shapes:
        return None
    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model, load_external_data=False)
    initializers = {t.name for t in proto.graph.initializer}
    metadata = TensorMetadata()
    known = set()
    for graph_input in proto.graph.input:
        if graph_input.name in initializers:
            continue
        known.add(graph_input.name)
        tensor_type = graph_input.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param or -1 for d in tensor_type.shape.dim]
        metadata.add(graph_input.name, dtype, shapes.get(graph_input.name, dims))
    unknown = sorted(set(shapes) - known)
    if unknown:
        raise OnnxShareError(f"--input-shapes names {', '.join(unknown)}, not inputs of the model")
    return metadata


def _model_bytes_or_path(model: ModelFile) -> str | bytes:
    return model if isinstance(model, bytes) else str(Path(model))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
