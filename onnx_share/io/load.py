"""The one loader: a path, ``onnx.ModelProto`` or ``ir.Model`` becomes an ``ir.Model`` the passes can work on.

External data stays on disk (memory-mapped on first use) after its locations are checked, and so do the large
inline tensors of a model file (read in place through :mod:`onnx_share.io.wire`); sparse initializers
are densified; ``Constant`` nodes holding a tensor become initializers of their graph, so everything downstream
sees one kind of weight; IR < 4 initializer inputs are detached; IR and opset versions onnxruntime cannot load
are refused.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
from pathlib import Path

import onnx
import onnx_ir as ir
import onnx_ir.passes.common

from onnx_share.errors import OnnxShareError, first_line
from onnx_share.io.checker import CHECK_LEVEL_META_KEY, check_level, structure_problem
from onnx_share.io.sparse import densify_sparse_tensors
from onnx_share.io.wire import checker_copy, skeleton

# onnxruntime 1.31 loads IR versions up to 13 and default-domain opsets up to 26 (measured; see DESIGN.md).
# Older opsets load too (below 7 with a warning); whether their kernels exist shows when the model runs.
MAX_IR_VERSION = 13
MAX_OPSET = 26
# Before IR 4 every initializer had to be listed among the graph inputs, without meaning it could be fed.
FIRST_IR_WITH_OPTIONAL_INITIALIZER_INPUTS = 4

ModelSource = str | os.PathLike | onnx.ModelProto | ir.Model


def load_model(source: ModelSource) -> ir.Model:
    """Load ``source`` (a path, an ``onnx.ModelProto`` or an ``ir.Model``) and check onnxruntime can read it.

    External data stays on disk (memory-mapped on first use); a location that resolves outside the model's
    folder, or a missing data file, is refused before anything reads it, and so is a model that fails onnx's
    checker (an undefined input, a cycle...). ``Constant`` nodes (in every graph; not those that are graph
    outputs) become initializers under the same value name.
    """
    checked: onnx.ModelProto | Path | None = None
    proto = None
    name = "model"
    if isinstance(source, ir.Model):
        model = source
    elif isinstance(source, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(source)  # the IR wraps protos it reads, and the caller's proto must stay unchanged
        densify_sparse_tensors(proto)
        model = ir.serde.deserialize_model(proto)
        checked = proto
    else:
        checked, name = Path(source), str(source)
        model, proto = _load_path(checked)
    check_loadable(model)
    if proto is not None and checked is not None:
        viewed = isinstance(checked, Path) and _views_itself(model, checked)
        _check_structure(proto, checked, name, model, viewed=viewed)
    _detach_legacy_initializer_inputs(model)
    try:
        onnx_ir.passes.common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
    except ValueError as exc:  # a Constant whose attribute the IR cannot turn into a tensor
        raise OnnxShareError(f"cannot read a Constant node: {exc}") from exc
    if proto is not None:
        _check_tensor_data(model)
    if isinstance(checked, Path):
        _mark_own_file_tensors(model, checked)
    return model


def input_files(path: str | os.PathLike, model: ir.Model) -> list[Path]:
    """The model file at ``path`` and every external data file the loaded ``model`` reads (not the model file
    again, whose inline tensors it views)."""
    path = Path(path)
    return [path, *(path.parent / location for location in sorted(_locations(model) - {path.name}))]


def _locations(model: ir.Model) -> set[str]:
    return {
        value.const_value.location
        for graph in model.graphs()
        for value in graph.initializers.values()
        if isinstance(value.const_value, ir.ExternalTensor)
    }


class ModelFileTensor(ir.ExternalTensor):
    """A tensor of the model file itself, read in place (:mod:`onnx_share.io.wire`): an external tensor without
    onnx-ir's guards against links, which are for the data files a model names; the model file the caller names
    may be a symbolic link, or one of several hard links (as package installers that link from a cache make)."""

    __slots__ = ()

    def _check_path_containment(self) -> None:
        return


def _mark_own_file_tensors(model: ir.Model, path: Path) -> None:
    """Make the references into the model file at ``path`` :class:`ModelFileTensor` s."""
    for graph in model.graphs():
        for value in graph.initializers.values():
            tensor = value.const_value
            if isinstance(tensor, ir.ExternalTensor) and tensor.location == path.name:
                value.const_value = ModelFileTensor(
                    tensor.location, tensor.offset, tensor.length, tensor.dtype, shape=tensor.shape,
                    name=tensor.name, base_dir=tensor.base_dir,
                )


def _views_itself(model: ir.Model, path: Path) -> bool:
    """Whether ``model`` (read from ``path``) reads tensors from its own file (:mod:`onnx_share.io.wire`)."""
    return path.name in _locations(model)


def _detach_legacy_initializer_inputs(model: ir.Model) -> None:
    """IR < 4 lists every initializer as a graph input; such weights are constants, not run-time inputs."""
    if model.ir_version >= FIRST_IR_WITH_OPTIONAL_INITIALIZER_INPUTS:
        return
    if any(v.is_initializer() for g in model.graphs() for v in g.inputs):
        onnx_ir.passes.common.RemoveInitializersFromInputsPass()(model)
    model.ir_version = FIRST_IR_WITH_OPTIONAL_INITIALIZER_INPUTS


def _check_structure(
    proto: onnx.ModelProto, source: onnx.ModelProto | Path, name: str, model: ir.Model, *, viewed: bool = False
) -> None:
    """Refuse a graph that cannot run (a value nothing defines, a cycle); note on ``model`` the level of onnx's
    checker ``source`` passes, which its outputs will be held to. ``viewed``: ``source`` is a file whose tensors
    the model views in place; the checker gets its skeleton (it would parse the whole file)."""
    problem = structure_problem(proto.graph)
    if problem is not None:
        raise OnnxShareError(f"{name}: not a valid ONNX model: {problem}")
    if viewed:
        assert isinstance(source, Path)
        with tempfile.TemporaryDirectory(prefix=".onnx-share-check.") as folder:
            model.meta[CHECK_LEVEL_META_KEY] = check_level(checker_copy(source, Path(folder)))[0]
        return
    model.meta[CHECK_LEVEL_META_KEY] = check_level(source)[0]


def _load_path(path: Path) -> tuple[ir.Model, onnx.ModelProto]:
    if not path.exists():
        raise OnnxShareError(f"{path}: no such file")
    if path.is_dir():
        raise OnnxShareError(f"{path}: is a directory, expected an .onnx file")
    if path.stat().st_size == 0:
        raise OnnxShareError(f"{path}: empty file, not an ONNX model")
    try:
        viewed = skeleton(path)  # large inline tensors read in place, not copied into the proto
        proto = onnx.load(path, load_external_data=False) if viewed is None else onnx.load_from_string(viewed)
        densify_sparse_tensors(proto)  # onnx-ir reads no sparse tensors
        model = ir.serde.deserialize_model(proto)
        ir.external_data.set_base_dir(model.graph, path.parent)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ValueError... depending on damage
        root = exc
        while root.__cause__ is not None:
            root = root.__cause__
        raise OnnxShareError(f"{path}: not a valid ONNX model ({type(root).__name__}: {first_line(root)})") from exc
    if model.ir_version is None or model.ir_version < 1 or (len(model.graph) == 0 and not model.graph.outputs):
        raise OnnxShareError(f"{path}: not an ONNX model (no IR version or empty graph)")
    _check_external_data(model, path)
    return model, proto


def _check_tensor_data(model: ir.Model) -> None:
    """Refuse an inline tensor whose data does not fill its declared shape, naming it."""
    for graph in model.graphs():
        for value in graph.initializers.values():
            tensor = value.const_value
            if tensor is None or isinstance(tensor, ir.ExternalTensor):
                continue
            try:
                tensor.numpy()
            except ValueError as exc:
                raise OnnxShareError(
                    f"initializer {value.name!r}: its data does not match its shape {list(tensor.shape)} ({exc})"
                ) from exc


def _check_external_data(model: ir.Model, path: Path) -> None:
    """Refuse external data outside the model's folder, missing, truncated or not the size its shape needs. The
    model file itself, as :mod:`onnx_share.io.wire` names it, is the file the caller gave, wherever a link leads."""
    root = path.parent.resolve()
    for graph in model.graphs():
        for value in graph.initializers.values():
            tensor = value.const_value
            if not isinstance(tensor, ir.ExternalTensor):
                continue
            location = Path(tensor.location)
            target = (root / location).resolve()
            own_file = tensor.location == path.name
            if not own_file and (location.is_absolute() or not target.is_relative_to(root)):
                raise OnnxShareError(
                    f"initializer {value.name!r}: external data location {str(location)!r} "
                    f"points outside the model's folder {root}; refusing to read it"
                )
            if not target.is_file():
                raise OnnxShareError(f"initializer {value.name!r}: external data file {target} is missing")
            if not own_file and target.stat().st_nlink > 1:
                raise OnnxShareError(
                    f"initializer {value.name!r}: external data file {target} has {target.stat().st_nlink} hard "
                    "links, which onnx-ir refuses (one could alias a file outside the model's folder); copy it to a "
                    "file of its own"
                )
            if tensor.length is not None and tensor.length != tensor.nbytes:
                raise OnnxShareError(
                    f"initializer {value.name!r}: its data ({tensor.length} bytes) does not match its shape "
                    f"{list(tensor.shape)} ({tensor.nbytes} bytes)"
                )
            end = (tensor.offset or 0) + (tensor.length if tensor.length is not None else tensor.nbytes)
            if target.stat().st_size < end:
                raise OnnxShareError(
                    f"initializer {value.name!r}: external data file {target} is truncated "
                    f"({target.stat().st_size} bytes, needs {end})"
                )


def release(tensor: ir.TensorProtocol | None) -> None:
    """Let go of the memory map of an external-data tensor (read again from the file if asked for later), so
    the pages of a tensor read once do not stay resident; nothing for other tensors."""
    if not isinstance(tensor, ir.ExternalTensor):
        return
    try:
        tensor.release()
    except BufferError:  # a view of its pages is still referenced: by a reference cycle (numba's first compile
        gc.collect()  # leaves some), or for real, and then the map stays until the view goes
        with contextlib.suppress(BufferError):
            tensor.release()


def check_loadable(model: ir.Model) -> None:
    """Refuse IR versions and default-domain opsets that onnxruntime cannot load."""
    if model.ir_version > MAX_IR_VERSION:
        raise OnnxShareError(
            f"IR version {model.ir_version} is newer than onnxruntime loads (<= {MAX_IR_VERSION}); "
            f"re-export with ir_version <= {MAX_IR_VERSION}"
        )
    opset = default_opset(model)
    if opset is not None and opset > MAX_OPSET:
        raise OnnxShareError(f"default-domain opset {opset} is newer than onnxruntime loads (<= {MAX_OPSET})")


def default_opset(model: ir.Model) -> int | None:
    """The model's ``ai.onnx`` opset version, or None when it imports none."""
    imports = model.opset_imports
    return imports.get("", imports.get("ai.onnx"))
