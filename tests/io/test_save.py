"""Saving: sparse storage decided at save time from IR metadata (single file and external data alike),
ordinary file permissions, and never writing onto a data file the input reads."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import make_model, run, tensor_info

from onnx_share.api import optimize
from onnx_share.errors import OnnxShareError

PRUNE_ONLY = {"passes": ["prune"], "prune": {"fraction": 0.9}, "min_elements": 16}


def _matmul_model(rng: np.random.Generator) -> onnx.ModelProto:
    weight = rng.standard_normal((128, 128)).astype(np.float32)
    return make_model(
        [onnx.helper.make_node("MatMul", ["x", "W"], ["y"])],
        [tensor_info("x", onnx.TensorProto.FLOAT, [2, 128])],
        [tensor_info("y", onnx.TensorProto.FLOAT, [2, 128])],
        {"W": weight},
    )


@pytest.mark.parametrize("external_data", [False, True])
def test_pruned_tensor_is_stored_sparse_when_smaller(tmp_path: Path, rng: np.random.Generator,
                                                     external_data: bool) -> None:
    model = _matmul_model(rng)
    result = optimize(model, PRUNE_ONLY)
    path = result.save(tmp_path / "pruned.onnx", external_data=external_data)
    saved = onnx.load(path, load_external_data=False)
    constants = [n for n in saved.graph.node if n.op_type == "Constant"]
    assert [(n.output[0], n.attribute[0].name) for n in constants] == [("W", "sparse_value")]
    assert [t.name for t in saved.graph.initializer] == []
    dense = onnx.numpy_helper.to_array(model.graph.initializer[0])
    pruned = result.model.graph.initializers["W"].const_value.numpy()
    stored = onnx.numpy_helper.to_array(constants[0].attribute[0].sparse_tensor.values)
    assert stored.size == np.count_nonzero(pruned) <= 0.1 * dense.size + 1
    onnx.checker.check_model(saved, full_check=True)
    x = rng.standard_normal((2, 128)).astype(np.float32)
    np.testing.assert_allclose(run(path, {"x": x})[0], x @ pruned, rtol=1e-5, atol=1e-5)
    assert result.report.file_bytes_after < dense.nbytes / 2
    assert result.model.graph.initializers["W"].const_value is not None, "the IR model keeps its initializer"


def test_pruned_tensor_rewritten_later_is_not_stored_sparse(tmp_path: Path, rng: np.random.Generator) -> None:
    config = {**PRUNE_ONLY, "passes": ["prune", "compress"], "default": {"bits": 4}}
    path = optimize(_matmul_model(rng), config).save(tmp_path / "out.onnx")
    assert not [n for n in onnx.load(path).graph.node if n.op_type == "Constant"]


def test_outputs_get_ordinary_permissions(tmp_path: Path, rng: np.random.Generator) -> None:
    old = os.umask(0o022)
    try:
        path = optimize(_matmul_model(rng), PRUNE_ONLY).save(tmp_path / "out.onnx", external_data=True)
    finally:
        os.umask(old)
    for written in (path, path.with_name("out.onnx.data")):
        assert stat.S_IMODE(written.stat().st_mode) == 0o644


def test_a_data_file_the_input_reads_is_never_written(tmp_path: Path, rng: np.random.Generator) -> None:
    model = _matmul_model(rng)
    source = tmp_path / "in.onnx"
    onnx.save_model(model, source, save_as_external_data=True, location="out.onnx.data", size_threshold=0)
    data = (tmp_path / "out.onnx.data").read_bytes()
    result = optimize(source, {"default": {"bits": 4}, "min_elements": 16})
    with pytest.raises(OnnxShareError, match="read by the input model"):
        result.save(tmp_path / "out.onnx", external_data=True)
    assert (tmp_path / "out.onnx.data").read_bytes() == data
    assert not (tmp_path / "out.onnx").exists()
    x = rng.standard_normal((2, 128)).astype(np.float32)
    run(source, {"x": x})  # the input still loads and runs
