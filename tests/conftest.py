"""Shared helpers: build small ONNX models by hand and run them in onnxruntime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGITS_DIR = ROOT / "models" / "digits_cnn"


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    initializers: Mapping[str, np.ndarray] = {},
    opset: int = 17,
    ir_version: int = 8,
) -> onnx.ModelProto:
    graph = oh.make_graph(
        list(nodes), "test", list(inputs), list(outputs),
        initializer=[onh.from_array(v, k) for k, v in initializers.items()],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=ir_version)
    onnx.checker.check_model(model)
    return model


def tensor_info(name: str, elem_type: int, shape: Sequence[int | str | None]) -> onnx.ValueInfoProto:
    return oh.make_tensor_value_info(name, elem_type, list(shape))


def run(model: onnx.ModelProto | str | Path, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run in onnxruntime; fused MatMulNBits computes in fp32 (accuracy level 1) so results are exact."""
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    options = ort.SessionOptions()
    options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session.run(None, dict(feeds))


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs the named intermediate values (type left to inference)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for name in names:
        copy.graph.output.append(oh.make_empty_tensor_value_info(name))
    return copy


def replace_initializers(model: onnx.ModelProto, arrays: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` with the named main-graph initializers' or Constant nodes' values replaced."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    tensors = [(t.name, t) for t in copy.graph.initializer]
    tensors += [(n.output[0], n.attribute[0].t) for n in copy.graph.node if n.op_type == "Constant"]
    for name, tensor in tensors:
        if name in arrays:
            tensor.CopyFrom(onh.from_array(arrays[name].astype(onh.to_array(tensor).dtype), tensor.name))
    return copy


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
