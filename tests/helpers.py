"""Shared test helpers: build small ONNX models by hand, run them in onnxruntime, compare outputs, and make
matrices of a known rank. Imported by the tests as ``from helpers import ...`` (``tests`` is on pytest's
``pythonpath``); fixtures live in ``conftest.py``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
DIGITS_DIR = ROOT / "models" / "digits_cnn"
KNOWN_S = np.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.25])  # singular values for with_singular_values


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


def is_string(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind in "OSU"


def assert_identical(name: str, reference, candidate) -> None:
    """``candidate`` has ``reference``'s type, dtype, shape and bits (sequence outputs element by element)."""
    if isinstance(reference, list):  # a sequence output
        assert isinstance(candidate, list) and len(candidate) == len(reference), name
        for ref, new in zip(reference, candidate, strict=True):
            assert_identical(name, ref, new)
        return
    assert candidate.dtype == reference.dtype and candidate.shape == reference.shape, name
    if is_string(reference):
        assert candidate.tolist() == reference.tolist(), name
    else:
        np.testing.assert_array_equal(candidate, reference, err_msg=f"output {name} changed bits")


def with_singular_values(rng: np.random.Generator, rows: int, cols: int, s: np.ndarray) -> np.ndarray:
    """A [rows, cols] float64 matrix whose singular values are exactly ``s`` (then zeros)."""
    u, _ = np.linalg.qr(rng.normal(size=(rows, len(s))))
    v, _ = np.linalg.qr(rng.normal(size=(cols, len(s))))
    return (u * s) @ v.T


def low_rank_matrix(rng: np.random.Generator, rows: int, cols: int, rank: int) -> np.ndarray:
    return rng.normal(size=(rows, rank)) @ rng.normal(size=(rank, cols))


def bfloat16_matmul_model(rng: np.random.Generator) -> onnx.ModelProto:
    """x[1, 64] @ Cast(W: bfloat16 [64, 64] → float) at opset 21: a bfloat16 weight behind a Cast."""
    import ml_dtypes

    weight = rng.standard_normal((64, 64)).astype(ml_dtypes.bfloat16)
    tensor = oh.make_tensor("W", onnx.TensorProto.BFLOAT16, [64, 64], weight.view(np.uint16).tobytes(), raw=True)
    graph = oh.make_graph(
        [oh.make_node("Cast", ["W"], ["Wf"], to=onnx.TensorProto.FLOAT), oh.make_node("MatMul", ["x", "Wf"], ["y"])],
        "g", [tensor_info("x", onnx.TensorProto.FLOAT, [1, 64])], [tensor_info("y", onnx.TensorProto.FLOAT, [1, 64])],
        initializer=[tensor],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 21)], ir_version=10)
