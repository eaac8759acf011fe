"""Sparse initializer storage: the sparse form of a pruned tensor keeps its dtype and runs like the dense one."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
from helpers import make_model, run, tensor_info

from onnx_share.io.sparse import densify_sparse_initializers, store_sparse_initializers
from onnx_share.numerics import pruning

FLOAT16 = onnx.TensorProto.FLOAT16


def test_fp16_sparse_form_keeps_dtype(rng: np.random.Generator) -> None:
    w = rng.normal(size=(40, 40)).astype(np.float16)
    pruned = pruning.apply_mask(w, pruning.fraction_mask(w, 0.95))
    dense = make_model([oh.make_node("MatMul", ["x", "W"], ["y"])], [tensor_info("x", FLOAT16, [1, 40])],
                       [tensor_info("y", FLOAT16, [1, 40])], {"W": pruned})
    sparse = onnx.ModelProto()
    sparse.CopyFrom(dense)
    assert store_sparse_initializers(sparse, ["W"]) == ["W"]
    assert sparse.graph.sparse_initializer[0].values.data_type == FLOAT16
    x = rng.normal(size=(1, 40)).astype(np.float16)
    np.testing.assert_array_equal(run(sparse, {"x": x})[0], run(dense, {"x": x})[0])
    densify_sparse_initializers(sparse)
    np.testing.assert_array_equal(onh.to_array(sparse.graph.initializer[0]), pruned)
