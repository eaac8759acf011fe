"""Sparse tensors on disk: pruned weights stored as ``Constant`` nodes with a ``sparse_value``.

A ``Constant`` with ``sparse_value`` outputs the dense tensor, so the model passes onnx's full check with shape
inference (a ``GraphProto.sparse_initializer`` read by a dense input does not: shape inference types it as a
sparse tensor), and onnxruntime densifies it when it loads the model. onnx-ir (1.1) has no sparse tensors, so
they live only at the protobuf edges: densified right after reading a model (:mod:`onnx_share.io.load`; sparse
initializers of other tools too), and written after the IR has saved one (:mod:`onnx_share.io.save`).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper as onh

from onnx_share.io.proto import iter_graph_protos
from onnx_share.numerics import pruning


def densify_sparse_tensors(proto: onnx.ModelProto) -> list[str]:
    """Turn every ``sparse_initializer`` of every graph into a dense initializer, and every ``Constant`` with a
    ``sparse_value`` into one with a dense ``value`` (onnx-ir reads neither); the names converted."""
    converted: list[str] = []
    for graph in iter_graph_protos(proto.graph):
        for sparse in graph.sparse_initializer:
            graph.initializer.append(dense_form(sparse))
            converted.append(sparse.values.name)
        del graph.sparse_initializer[:]
        for node in graph.node:
            if node.op_type != "Constant":
                continue
            for attribute in node.attribute:
                if attribute.name == "sparse_value":
                    dense = dense_form(attribute.sparse_tensor)
                    attribute.Clear()
                    attribute.CopyFrom(onnx.helper.make_attribute("value", dense))
                    converted.append(node.output[0])
    return converted


def sparse_constant(name: str, sparse: onnx.SparseTensorProto) -> onnx.NodeProto:
    """A ``Constant`` node that outputs ``sparse`` densified, as value ``name``."""
    return onnx.helper.make_node("Constant", [], [name], sparse_value=sparse)


def sparse_form(tensor: onnx.TensorProto) -> onnx.SparseTensorProto | None:
    """``tensor`` as a sparse tensor (non-zero values, INT64 linear C-order indices, as onnx.checker wants), or
    None when it is not float or the sparse form is not smaller."""
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


def dense_form(sparse: onnx.SparseTensorProto) -> onnx.TensorProto:
    """The dense tensor a sparse one stands for (linear or [NNZ, rank] coordinate indices)."""
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
