"""The weight comparison reads what the tool writes: bfloat16 weights (onnxruntime returns no bfloat16 arrays)
and pruned weights stored as sparse ``Constant`` nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
from helpers import bfloat16_matmul_model, make_model, tensor_info

from onnx_share.api import compare, optimize


def test_compare_reads_bfloat16_weights(tmp_path: Path, rng: np.random.Generator) -> None:
    source = tmp_path / "bf16.onnx"
    onnx.save_model(bfloat16_matmul_model(rng), source)
    result = optimize(source, {"default": {"bits": 4}, "min_elements": 16})
    out = result.save(tmp_path / "out.onnx")
    (row,) = [t for t in compare(source, out).tensors if t.name == "W"]
    (reported,) = result.report.compressed
    assert abs(row.relative_error - reported.relative_error) < 1e-6


def test_compare_reads_sparse_constants(tmp_path: Path, rng: np.random.Generator) -> None:
    weight = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    model = make_model([oh.make_node("Conv", ["x", "K"], ["y"], pads=[1, 1, 1, 1])],
                       [tensor_info("x", onnx.TensorProto.FLOAT, [1, 4, 5, 5])],
                       [tensor_info("y", onnx.TensorProto.FLOAT, [1, 8, 5, 5])], {"K": weight})
    source = tmp_path / "conv.onnx"
    onnx.save_model(model, source)
    result = optimize(source, {"passes": ["prune"], "prune": {"fraction": 0.9}, "min_elements": 16})
    out = result.save(tmp_path / "out.onnx")
    assert any(n.op_type == "Constant" for n in onnx.load(out).graph.node), "stored sparse"
    (row,) = [t for t in compare(source, out).tensors if t.name == "K"]
    pruned = result.model.graph.initializers["K"].const_value.numpy()
    expected = np.linalg.norm(weight - pruned) / np.linalg.norm(weight)
    assert abs(row.relative_error - expected) < 1e-6
