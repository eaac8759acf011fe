"""Sparse tensors on disk: a pruned tensor's sparse form keeps its dtype, runs like the dense one as a sparse
``Constant``, and sparse initializers and sparse Constants of other tools are densified on load."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
from helpers import make_model, run, tensor_info

from onnx_share.io.sparse import densify_sparse_tensors, sparse_constant, sparse_form
from onnx_share.numerics import pruning

FLOAT16 = onnx.TensorProto.FLOAT16


def _pruned_model(rng: np.random.Generator) -> tuple[onnx.ModelProto, np.ndarray]:
    w = rng.normal(size=(40, 40)).astype(np.float16)
    pruned = pruning.apply_mask(w, pruning.fraction_mask(w, 0.95))
    dense = make_model([oh.make_node("MatMul", ["x", "W"], ["y"])], [tensor_info("x", FLOAT16, [1, 40])],
                       [tensor_info("y", FLOAT16, [1, 40])], {"W": pruned})
    return dense, pruned


def test_fp16_sparse_constant_keeps_dtype_and_runs_like_dense(rng: np.random.Generator) -> None:
    dense, pruned = _pruned_model(rng)
    form = sparse_form(dense.graph.initializer[0])
    assert form is not None and form.values.data_type == FLOAT16
    sparse = onnx.ModelProto()
    sparse.CopyFrom(dense)
    del sparse.graph.initializer[:]
    sparse.graph.node.insert(0, sparse_constant("W", form))
    onnx.checker.check_model(sparse, full_check=True)
    x = rng.normal(size=(1, 40)).astype(np.float16)
    np.testing.assert_array_equal(run(sparse, {"x": x})[0], run(dense, {"x": x})[0])
    assert densify_sparse_tensors(sparse) == ["W"]
    np.testing.assert_array_equal(onh.to_array(sparse.graph.node[0].attribute[0].t), pruned)


def test_sparse_initializers_are_densified(rng: np.random.Generator) -> None:
    dense, pruned = _pruned_model(rng)
    form = sparse_form(dense.graph.initializer[0])
    del dense.graph.initializer[:]
    dense.graph.sparse_initializer.append(form)
    assert densify_sparse_tensors(dense) == ["W"]
    np.testing.assert_array_equal(onh.to_array(dense.graph.initializer[0]), pruned)


def test_a_form_that_is_not_smaller_stays_dense(rng: np.random.Generator) -> None:
    w = rng.normal(size=(40, 40)).astype(np.float32)
    half = pruning.apply_mask(w, pruning.fraction_mask(w, 0.5))  # 12 bytes per kept value > 4 dense
    assert sparse_form(onh.from_array(half, "W")) is None
