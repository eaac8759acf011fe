"""Input samples for running two models: ``.npz`` files the user gives, or seeded generated ones, checked against
the model's declared inputs."""

from __future__ import annotations

import os
import zipfile
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
    synthetic: bool = True
    made: dict[str, str] = field(default_factory=dict)

    def arrays(self) -> list[InputArray]:
        """Per input: dtype and the shape of each sample, for the report."""
        if not self.samples:
            return []
        return [
            InputArray(name, str(array.dtype), [list(sample[name].shape) for sample in self.samples],
                       self.made.get(name, "given"))
            for name, array in self.samples[0].items()
        ]


def load_inputs(paths: Iterable[str | os.PathLike]) -> list[dict[str, np.ndarray]]:
    """One feed dict per ``.npz`` file (array names are model input names)."""
    samples = []
    for path in paths:
        if not os.path.isfile(path):
            raise OnnxShareError(f"inputs {path}: no such file")
        if not zipfile.is_zipfile(path):
            raise OnnxShareError(f"inputs {path}: not an .npz file (numpy.savez writes one, with arrays named after "
                                 "the model inputs)")
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
    ``config.samples`` seeded ones synthesized from what the graph says (:func:`synthesize_feeds`)."""
    metadata = input_metadata(model, config.input_shapes)
    if not config.inputs:
        return synthesize_feeds(model, metadata, config)
    samples, ignored, notes = [], set(), []
    for path, data in zip(config.inputs, load_inputs(config.inputs), strict=True):
        missing = [name for name in metadata if name not in data]
        if missing:
            raise OnnxShareError(f"inputs {path} has no array for model input(s) {', '.join(missing)}")
        ignored.update(set(data) - set(metadata))
        sample = {}
        for name, (dtype, dims) in metadata.items():
            sample[name] = as_input_dtype(data[name], dtype, name, path, notes)
            notes.extend(_batch_note(name, sample[name], dims, path))
        samples.append(sample)
    source = f"given inputs ({len(samples)} file(s))"
    return Feeds(samples, source, sorted(ignored), sorted(set(notes)), synthetic=False)


def input_metadata(
    model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]
) -> dict[str, tuple[np.dtype, list[int | str]]]:
    """Per graph input: numpy dtype and dims (``shapes`` overriding; -1 or a name for dynamic dimensions).
    An unknown name in ``shapes`` is an error; so is an input that is not a tensor (a sequence, a map), which
    cannot be synthesized or read from ``.npz`` files."""
    initializers = {t.name for t in model.graph.initializer}
    metadata: dict[str, tuple[np.dtype, list[int | str]]] = {}
    for graph_input in model.graph.input:
        if graph_input.name in initializers:
            continue
        if not graph_input.type.HasField("tensor_type"):
            kind = graph_input.type.WhichOneof("value") or "untyped"
            raise NotValidated(f"input {graph_input.name!r} is a {kind.removesuffix('_type')}, not a tensor: "
                               "onnx-share can feed tensors only")
        tensor_type = graph_input.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param or -1 for d in tensor_type.shape.dim]
        metadata[graph_input.name] = (dtype, list(shapes.get(graph_input.name, dims)))
    unknown = sorted(set(shapes) - set(metadata))
    if unknown:
        raise OnnxShareError(f"--input-shapes names {', '.join(unknown)}, not inputs of the model")
    return metadata


def as_input_dtype(array: np.ndarray, dtype: np.dtype, name: str, path: object, notes: list[str]) -> np.ndarray:
    """``array`` in the model input's ``dtype`` (same-kind conversions noted in ``notes``); another kind is an error
    naming the file and the array."""
    if array.dtype == dtype:
        return array
    if array.dtype.kind == dtype.kind or {array.dtype.kind, dtype.kind} <= {"i", "u"}:
        notes.append(f"input {name!r}: {array.dtype} arrays converted to the model's {dtype}")
        return array.astype(dtype)
    raise OnnxShareError(f"inputs {path}: array {name!r} is {array.dtype}, the model takes {dtype}")


class NotValidated(OnnxShareError):
    """The models could not be compared (an input that cannot be made, an original model that fails on the
    synthesized inputs); the rewritten model was still written."""


# Dynamic dimensions of synthesized inputs: the leading (batch) one, and every other one.
DYNAMIC_BATCH = 1
DYNAMIC_DIM = 16
# Synthesized inputs larger than this are refused (a declared dimension of 1e9 would need hundreds of GiB).
MAX_SYNTHESIZED_ELEMENTS = 1 << 27
# Ops through which an input keeps its values (so what it indexes or is compared with is still visible).
VALUE_KEEPING_OPS = frozenset({"Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Expand"})


def synthesize_feeds(
    model: onnx.ModelProto, metadata: Mapping[str, tuple[np.dtype, list[int | str]]], config: ValidationConfig
) -> Feeds:
    """``config.samples`` seeded samples made from what the graph says about each input.

    Integer inputs that index a ``Gather`` on a constant table get values in [0, rows); inputs compared with a
    constant (``Equal``, e.g. a sample rate) get that constant; other integers are 1 and booleans True (masks
    that keep everything); floats are standard normal. Dynamic dimensions come from ``--input-shapes``, else
    are :data:`DYNAMIC_BATCH` for the leading one and :data:`DYNAMIC_DIM` for the others.
    """
    rng = np.random.default_rng(config.seed)
    hints = {name: _value_hint(model.graph, name) for name in metadata}
    notes, made = [], {}
    shapes = {}
    for name, (dtype, dims) in metadata.items():
        if dtype.kind in "OSU":
            raise NotValidated(f"input {name!r} is a string tensor, which cannot be synthesized; give samples "
                               "with --inputs")
        if dtype.name == "bfloat16":
            raise NotValidated(f"input {name!r} is bfloat16, which onnxruntime's Python API cannot be fed")
        shape = [d if isinstance(d, int) and d >= 0 else (DYNAMIC_BATCH if i == 0 else DYNAMIC_DIM)
                 for i, d in enumerate(dims)]
        if shape != dims:
            notes.append(f"input {name!r}: dynamic dimensions set to {shape} (give --input-shapes "
                         f"{name}:[...] to choose)")
        if int(np.prod(shape, dtype=np.int64)) > MAX_SYNTHESIZED_ELEMENTS:
            raise NotValidated(f"input {name!r} would hold {int(np.prod(shape, dtype=np.int64)):,} elements "
                               f"(shape {shape}); give --input-shapes {name}:[...] or samples with --inputs")
        shapes[name] = shape
    samples = []
    for _ in range(config.samples):
        sample = {}
        for name, (dtype, _) in metadata.items():
            sample[name], made[name] = _synthesize(rng, dtype, shapes[name], hints[name])
        samples.append(sample)
    source = f"synthesized inputs (seed {config.seed})"
    return Feeds(samples, source, notes=notes, made=made)


def _synthesize(rng: np.random.Generator, dtype: np.dtype, shape: list[int],
                hint: tuple[str, float | int] | None) -> tuple[np.ndarray, str]:
    kind, value = hint if hint is not None else ("", 0)
    if dtype.kind == "b":
        return np.ones(shape, dtype=bool), "True"
    if dtype.kind in "iu":
        if kind == "rows":
            return rng.integers(0, int(value), size=shape).astype(dtype), f"indices in [0, {int(value)})"
        if kind == "equals":
            return np.full(shape, value, dtype=dtype), f"{value} (compared with it in the graph)"
        return np.ones(shape, dtype=dtype), "1"
    if kind == "equals":
        return np.full(shape, value, dtype=dtype), f"{value} (compared with it in the graph)"
    return rng.standard_normal(shape).astype(dtype), "standard normal"


def _value_hint(graph: onnx.GraphProto, name: str) -> tuple[str, float | int] | None:
    """What the graph says about the values of ``name``: ("rows", n) when it indexes a constant table of n
    rows, ("equals", c) when it is compared with the constant c; followed through value-keeping ops."""
    constants = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            constants[node.output[0]] = node.attribute[0].t
    frontier, seen = [name], set()
    while frontier:
        current = frontier.pop()
        seen.add(current)
        for node in graph.node:
            if current not in node.input:
                continue
            index = list(node.input).index(current)
            if node.op_type == "Gather" and index == 1 and node.input[0] in constants:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                return "rows", int(constants[node.input[0]].dims[axis])
            if node.op_type == "Equal":
                other = node.input[1 - index]
                if other in constants:
                    value = onnx.numpy_helper.to_array(constants[other]).ravel()
                    if value.size:
                        return "equals", value[0].item()
            if node.op_type in VALUE_KEEPING_OPS and index == 0:
                frontier.extend(o for o in node.output if o and o not in seen)
    return None


def _batch_note(name: str, array: np.ndarray, dims: list[int | str], path: object) -> list[str]:
    """Say how an array with a leading batch was read: one run over the whole batch."""
    if array.ndim and array.shape[0] > 1 and dims and not (isinstance(dims[0], int) and dims[0] > 0):
        return [f"inputs {path}: array {name!r} has a leading batch of {array.shape[0]}: run as one batch of "
                f"{array.shape[0]} samples"]
    return []
