"""Inputs synthesized from what the graph says: Gather indices in range, constants a graph compares with,
documented sizes for dynamic dimensions; inputs that cannot be made or that the original fails on are
"not validated", in one line naming the input."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import pytest
from helpers import tensor_info

from onnx_share.check.feeds import DYNAMIC_BATCH, DYNAMIC_DIM, NotValidated, input_metadata, synthesize_feeds
from onnx_share.check.validation import compare_models
from onnx_share.config import ValidationConfig


def _model(nodes, inputs, outputs, initializers, opset: int = 17) -> onnx.ModelProto:
    graph = oh.make_graph(nodes, "g", inputs, outputs,
                          initializer=[onh.from_array(v, k) for k, v in initializers.items()])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=8)


def _embedding_model() -> onnx.ModelProto:
    nodes = [
        oh.make_node("Cast", ["ids"], ["ids32"], to=onnx.TensorProto.INT32),
        oh.make_node("Gather", ["table", "ids32"], ["emb"]),
        oh.make_node("Equal", ["rate", "expected"], ["is16k"]),
        oh.make_node("Cast", ["is16k"], ["gain"], to=onnx.TensorProto.FLOAT),
        oh.make_node("Mul", ["emb", "gain"], ["y"]),
    ]
    inputs = [tensor_info("ids", onnx.TensorProto.INT64, ["batch", "tokens"]),
              tensor_info("rate", onnx.TensorProto.INT64, [1])]
    initializers = {"table": np.arange(50 * 4, dtype=np.float32).reshape(50, 4),
                    "expected": np.array([16000], np.int64)}
    return _model(nodes, inputs, [tensor_info("y", onnx.TensorProto.FLOAT, ["batch", "tokens", 4])], initializers)


def test_inputs_are_made_from_what_the_graph_says() -> None:
    model = _embedding_model()
    config = ValidationConfig(samples=3)
    feeds = synthesize_feeds(model, input_metadata(model, {}), config)
    assert len(feeds.samples) == 3
    for sample in feeds.samples:
        assert sample["ids"].shape == (DYNAMIC_BATCH, DYNAMIC_DIM) and DYNAMIC_DIM > 1
        assert sample["ids"].min() >= 0 and sample["ids"].max() < 50
        assert sample["rate"].tolist() == [16000]
    assert feeds.made == {"ids": "indices in [0, 50)", "rate": "16000 (compared with it in the graph)"}
    assert any("dynamic dimensions set to [1, 16]" in note for note in feeds.notes)


def test_a_comparison_on_synthesized_inputs_is_called_a_smoke_test(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save_model(_embedding_model(), path)
    report = compare_models(path, path, ValidationConfig())
    assert report.synthetic and report.passed
    assert [a.made for a in report.input_arrays] == ["indices in [0, 50)", "16000 (compared with it in the graph)"]


def test_an_original_that_fails_on_synthesized_inputs_is_not_validated(tmp_path) -> None:
    # Reflect padding of 4 needs at least 5 samples; a documented default that is too short for a model fails it.
    nodes = [oh.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")]
    model = _model(nodes, [tensor_info("x", onnx.TensorProto.FLOAT, [1, "samples"])],
                   [tensor_info("y", onnx.TensorProto.FLOAT, [1, None])],
                   {"pads": np.array([0, 40, 0, 40], np.int64)})
    path = tmp_path / "pad.onnx"
    onnx.save_model(model, path)
    with pytest.raises(NotValidated) as error:
        compare_models(path, path, ValidationConfig())
    message = str(error.value)
    assert "'x' [1, 16] (standard normal)" in message and "--inputs" in message and "\n" not in message
    compare_models(path, path, ValidationConfig(input_shapes={"x": (1, 100)}))  # with a shape it runs


def test_string_and_huge_inputs_are_not_validated() -> None:
    strings = _model([oh.make_node("Identity", ["s"], ["t"])], [tensor_info("s", onnx.TensorProto.STRING, [1])],
                     [tensor_info("t", onnx.TensorProto.STRING, [1])], {})
    with pytest.raises(NotValidated, match="'s' is a string tensor"):
        synthesize_feeds(strings, input_metadata(strings, {}), ValidationConfig())
    huge = _model([oh.make_node("Identity", ["x"], ["y"])], [tensor_info("x", onnx.TensorProto.FLOAT, [10**9])],
                  [tensor_info("y", onnx.TensorProto.FLOAT, [10**9])], {})
    with pytest.raises(NotValidated, match="would hold 1,000,000,000 elements"):
        synthesize_feeds(huge, input_metadata(huge, {}), ValidationConfig())
