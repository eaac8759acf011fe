"""Input samples for running two models: ``.npz`` files the user gives, or seeded generated ones, checked against
the model's declared inputs."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from onnx_share.config import ValidationConfig
from onnx_share.errors import OnnxShareError
from onnx_share.io.proto import ModelFile, ProtoModel
from onnx_share.report.data import InputArray


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
    proto = ProtoModel.read(model).proto
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
        from polygraphy.common import TensorMetadata
        from polygraphy.comparator import DataLoader

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


def _as_input_dtype(array: np.ndarray, dtype: np.dtype, name: str, path: object, notes: list[str]) -> np.ndarray:
    if array.dtype == dtype:
        return array
    if array.dtype.kind == dtype.kind or {array.dtype.kind, dtype.kind} <= {"i", "u"}:
        notes.append(f"input {name!r}: {array.dtype} arrays converted to the model's {dtype}")
        return array.astype(dtype)
    raise OnnxShareError(f"inputs {path}: array {name!r} is {array.dtype}, the model takes {dtype}")
