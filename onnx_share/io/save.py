"""Writing models: atomically (temp files, then renames), with ordinary permissions, never onto a file the input
reads, with external data when asked or when the model would not fit in one protobuf, and with pruned tensors
stored sparse where the IR marks them so and that is smaller.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection
from pathlib import Path

import onnx
import onnx_ir as ir

from onnx_share.errors import OnnxShareError
from onnx_share.io.checker import CHECK_LEVEL_META_KEY, checker_problem
from onnx_share.io.load import release
from onnx_share.io.proto import iter_graph_protos
from onnx_share.io.sparse import sparse_constant, sparse_form

# Protobuf cannot serialize a message of 2 GiB or more: larger models must keep weights in external data.
PROTOBUF_LIMIT_BYTES = 2**31 - 1
EXTERNAL_DATA_ALIGNMENT = 65536
# Set (to True) in an initializer's ``meta`` by a pass that would rather see it stored as a sparse initializer.
SPARSE_META_KEY = "onnx_share.sparse"


def estimated_size_bytes(model: ir.Model) -> int:
    """Bytes of tensor data in all graphs: a lower bound for the serialized size."""
    return sum(
        value.const_value.nbytes
        for graph in model.graphs()
        for value in graph.initializers.values()
        if value.const_value is not None
    )


def data_file(path: Path) -> Path:
    """Where the external data of a model saved at ``path`` goes."""
    return path.with_name(path.name + ".data")


def save_model(
    model: ir.Model,
    path: str | os.PathLike,
    *,
    external_data: bool | None = None,
    protected: Collection[Path] = (),
) -> Path:
    """Write ``model`` to ``path``; its external data, if any, to ``<path>.data``.

    ``external_data``: True writes every large tensor to the data file with 64 KiB aligned offsets; None does
    so only when the model would not fit in one protobuf (2 GiB). Main-graph initializers whose ``meta`` has
    :data:`SPARSE_META_KEY` are stored sparse (``Constant`` nodes with a ``sparse_value``) where that is
    smaller. Every file is written under a temporary name in the output folder and renamed into place, with the
    permissions a new file gets under the umask, once it passed onnx's checker at the level the input passed
    (full, with shape inference; basic; none). ``protected``: files (the input and the data files it reads) that must
    not be written.
    """
    path = Path(path)
    check_output_path(path)
    if external_data is None:
        external_data = estimated_size_bytes(model) >= PROTOBUF_LIMIT_BYTES
    targets = [path, data_file(path)] if external_data else [path]
    for target in targets:
        if any(same_file(target, other) for other in protected):
            raise OnnxShareError(f"{target} is read by the input model; choose another output path")
    try:
        with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
            staged = Path(tmp) / path.name
            sparse = _stage_sparse(model)
            types = _untype_initializers(model)
            inlined = {} if external_data else _inline_external_tensors(model)
            try:
                if external_data:
                    ir.save(model, staged, external_data=data_file(path).name, alignment=EXTERNAL_DATA_ALIGNMENT)
                else:
                    ir.save(model, staged)
            finally:
                for value, (dtype, shape) in types.items():
                    value.type, value.shape = dtype, shape
                for value, _ in sparse:
                    model.graph.register_initializer(value)
                for value, tensor in inlined.items():
                    value.const_value = tensor
                    release(tensor)
            typed_outputs = {v.name for g in model.graphs() for v in g.initializers.values() if v.is_graph_output()}
            if sparse or typed_outputs:
                _finish_proto(staged, [form for _, form in sparse], typed_outputs)
            level = model.meta.get(CHECK_LEVEL_META_KEY, "basic")
            problem = None if level == "none" else checker_problem(staged, full=level == "full")
            if problem is not None:
                raise OnnxShareError(f"the rewritten model fails onnx's checker, so {path} was not written: {problem}")
            mode = 0o666 & ~_umask()
            for target in targets[::-1]:  # the data file first: the model file appears only once complete
                source = Path(tmp) / target.name
                os.chmod(source, mode)
                os.replace(source, target)
    except OSError as exc:
        raise OnnxShareError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def check_output_path(path: Path) -> None:
    """Refuse, before any work, an output path that is a folder or whose folder is missing or not writable."""
    if path.is_dir():
        raise OnnxShareError(f"{path}: is a directory; give the output file path")
    folder = path.parent
    if not folder.is_dir():
        raise OnnxShareError(f"{folder}: output folder does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OnnxShareError(f"{folder}: output folder is not writable")


def _inline_external_tensors(model: ir.Model) -> dict[ir.Value, ir.ExternalTensor]:
    """Put an in-memory view of every external-data initializer in its place (onnx-ir writes an external tensor as a
    reference even into a one-file model), returning the external tensors to put back."""
    swapped = {}
    for graph in model.graphs():
        for value in graph.initializers.values():
            tensor = value.const_value
            if isinstance(tensor, ir.ExternalTensor):
                swapped[value] = tensor
                value.const_value = ir.Tensor(tensor.numpy(), dtype=tensor.dtype, name=tensor.name)
    return swapped


def _untype_initializers(model: ir.Model) -> dict[ir.Value, tuple[ir.TypeProtocol | None, ir.Shape | None]]:
    """Clear the type and shape of every initializer value, returning them: onnx-ir would otherwise write a
    ``value_info`` entry per initializer, which repeats what the tensor says and makes files bigger."""
    types = {}
    for graph in model.graphs():
        for value in graph.initializers.values():
            if not value.is_graph_input() and not value.is_graph_output():
                types[value] = (value.type, value.shape)
                value.type, value.shape = None, None
    return types


def _stage_sparse(model: ir.Model) -> list[tuple[ir.Value, onnx.SparseTensorProto]]:
    """Take the marked main-graph initializers whose sparse form is smaller out of the graph (their values stay
    wired to their readers), with those forms; they are written as sparse ``Constant`` nodes after the IR has
    saved the rest, and go back into the graph."""
    taken = []
    for name, value in list(model.graph.initializers.items()):
        if value.meta.get(SPARSE_META_KEY) and value.const_value is not None:
            form = sparse_form(ir.serde.serialize_tensor(value.const_value))
            if form is not None:
                taken.append((model.graph.initializers.pop(name), form))
    return taken


def _finish_proto(staged: Path, forms: list[onnx.SparseTensorProto], typed_outputs: set[str]) -> None:
    """What the IR cannot write: sparse ``Constant`` nodes for ``forms``, and no ``value_info`` repeating an
    initializer that is a graph output (its type is in the output's entry)."""
    proto = onnx.load(staged, load_external_data=False)
    nodes = [sparse_constant(form.values.name, form) for form in forms] + list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    for graph in iter_graph_protos(proto.graph):
        kept = [info for info in graph.value_info if info.name not in typed_outputs]
        del graph.value_info[:]
        graph.value_info.extend(kept)
    onnx.save_model(proto, staged)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, with the permissions a new file gets under the umask."""
    path = Path(path)
    check_output_path(path)
    try:
        with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
            staged = Path(tmp) / path.name
            staged.write_text(text, encoding="utf-8")
            os.chmod(staged, 0o666 & ~_umask())
            os.replace(staged, path)
    except OSError as exc:
        raise OnnxShareError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (also through links), for refusing to overwrite the input."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()
