"""onnx's checker guards both ends: a structurally broken input is refused in one line, and what is written
passes the check (the full one with shape inference when the input passed it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import pytest
from helpers import DIGITS_DIR, tensor_info

from onnx_share.api import optimize
from onnx_share.errors import OnnxShareError
from onnx_share.io.checker import CHECK_LEVEL_META_KEY, checker_problem
from onnx_share.io.load import load_model


def _broken(nodes: list[onnx.NodeProto], rng: np.random.Generator) -> onnx.ModelProto:
    graph = oh.make_graph(
        nodes, "broken", [tensor_info("x", onnx.TensorProto.FLOAT, [1, 64])],
        [tensor_info("y", onnx.TensorProto.FLOAT, [1, 64])],
        initializer=[onh.from_array(rng.standard_normal((64, 64)).astype(np.float32), "W")],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("case", ["dangling", "cycle"])
def test_structurally_broken_inputs_are_refused_in_one_line(case: str, tmp_path: Path,
                                                           rng: np.random.Generator) -> None:
    if case == "dangling":
        nodes = [oh.make_node("MatMul", ["x", "W"], ["h"]), oh.make_node("Add", ["h", "nowhere"], ["y"])]
    else:
        nodes = [oh.make_node("Add", ["x", "b"], ["a"]), oh.make_node("MatMul", ["a", "W"], ["b"]),
                 oh.make_node("Identity", ["b"], ["y"])]
    path = tmp_path / "broken.onnx"
    onnx.save_model(_broken(nodes, rng), path)
    with pytest.raises(OnnxShareError, match="not a valid ONNX model") as error:
        optimize(path, {"min_elements": 16})
    assert "\n" not in str(error.value)


def test_the_full_check_is_kept_for_inputs_that_pass_it(tmp_path: Path) -> None:
    model = load_model(DIGITS_DIR / "digits_cnn.onnx")
    assert model.meta[CHECK_LEVEL_META_KEY] == "full"
    path = optimize(DIGITS_DIR / "digits_cnn.onnx", {"default": {"bits": 4}}).save(tmp_path / "out.onnx")
    assert checker_problem(path, full=True) is None


def test_checker_problem_names_what_is_wrong(rng: np.random.Generator) -> None:
    model = _broken([oh.make_node("MatMul", ["x", "W"], ["h"]), oh.make_node("Add", ["h", "nowhere"], ["y"])], rng)
    assert "nowhere" in checker_problem(model, full=False)


def test_a_tensor_whose_data_does_not_fill_its_shape_is_named(tmp_path: Path) -> None:
    weight = onh.from_array(np.ones((10, 10), np.float32), "W")
    weight.dims[:] = [10, 20]
    graph = oh.make_graph([oh.make_node("MatMul", ["x", "W"], ["y"])], "g",
                          [tensor_info("x", onnx.TensorProto.FLOAT, [1, 10])],
                          [tensor_info("y", onnx.TensorProto.FLOAT, [1, 20])], initializer=[weight])
    path = tmp_path / "bad.onnx"
    onnx.save_model(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), path)
    with pytest.raises(OnnxShareError, match=r"initializer 'W': its data does not match its shape \[10, 20\]"):
        optimize(path, {"min_elements": 16})
