"""Sparse initializers on disk: pruned tensors stored as ``GraphProto.sparse_initializer``.

onnx-ir (1.1) has no sparse initializers, so they live only at the protobuf edges: densified right after
reading a model, and written after the IR has saved one. onnxruntime densifies them when it loads a model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper as onh

from onnx_share.codebook import pruning


def store_sparse_initializers(proto: onnx.ModelProto, names: Iterable[str]) -> list[str]:
    """Move the named main-graph initializers into ``graph.sparse_initializer`` where that is smaller.

    Values are the non-zero elements, indices their INT64 linear (C-order) positions, as onnx.checker wants;
    onnxruntime densifies them at session creation. Initializers with external data, non-float ones and
    those not smaller in sparse form stay dense. Returns the names converted.
    """
    wanted = set(names)
    graph = proto.graph
    converted: list[str] = []
    keep: list[onnx.TensorProto] = []
    for tensor in graph.initializer:
        sparse = None
        if tensor.name in wanted and tensor.data_location != onnx.TensorProto.EXTERNAL:
            sparse = _sparse_form(tensor)
        if sparse is None:
            keep.append(tensor)
            continue
        graph.sparse_initializer.append(sparse)
        converted.append(tensor.name)
    if converted:
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return converted


def store_sparse_initializers_in_file(path: str | Path, names: Iterable[str]) -> list[str]:
    """:func:`store_sparse_initializers` on a saved single-file model, rewritten in place when anything moved."""
    names = list(names)
    if not names:
        return []
    proto = onnx.load(str(path), load_external_data=False)
    converted = store_sparse_initializers(proto, names)
    if converted:
        onnx.save_model(proto, str(path))
    return converted


def densify_sparse_initializers(proto: onnx.ModelProto) -> list[str]:
    """Turn every ``sparse_initializer`` of every graph into a dense initializer (onnx-ir drops sparse ones)."""
    converted: list[str] = []
    for graph in iter_graph_protos(proto.graph):
        for sparse in graph.sparse_initializer:
            graph.initializer.append(_dense_form(sparse))
            converted.append(sparse.values.name)
        del graph.sparse_initializer[:]
    return converted


def _sparse_form(tensor: onnx.TensorProto) -> onnx.SparseTensorProto | None:
    if tensor.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16):
        return None
    dense = onh.to_array(tensor)
    flat = dense.ravel()
    positions = np.flatnonzero(flat != 0).astype(np.int64)
    if pruning.sparse_nbytes(positions.size, dense.dtype.itemsize) >= dense.nbytes:
        return None
    values = onh.from_array(flat[positions], tensor.name)
    values.data_type = tensor.data_type  # keep bfloat16 (numpy_helper may widen the numpy view)
    sparse = onnx.SparseTensorProto()
    sparse.values.CopyFrom(values)
    sparse.indices.CopyFrom(onh.from_array(positions))
    sparse.dims.extend(tensor.dims)
    return sparse


def _dense_form(sparse: onnx.SparseTensorProto) -> onnx.TensorProto:
    values = onh.to_array(sparse.values)
    indices = onh.to_array(sparse.indices).astype(np.int64)
    shape = tuple(sparse.dims)
    dense = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype=values.dtype)
    if indices.ndim == 2:  # [NNZ, rank] coordinates
        indices = np.ravel_multi_index(tuple(indices.T), shape)
    dense[indices] = values
    tensor = onh.from_array(dense.reshape(shape), sparse.values.name)
    tensor.data_type = sparse.values.data_type
    return tensor


def iter_graph_protos(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph below it (If/Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_graph_protos(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from iter_graph_protos(sub)
