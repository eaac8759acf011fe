"""Inline models read in place: large raw_data fields become references into the model file itself."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import pytest
from helpers import make_model, run, tensor_info

import onnx_share
from onnx_share.errors import OnnxShareError
from onnx_share.io.load import ModelFileTensor, input_files, load_model
from onnx_share.io.wire import VIEW_MIN_BYTES, skeleton


def _model(path: Path) -> Path:
    """A MatMul over an initializer, an Add of a Constant node's tensor, an If whose branch holds a large initializer,
    and a small bias that stays in the skeleton."""
    rng = np.random.default_rng(0)
    big = rng.standard_normal((64, 64)).astype(np.float32)
    constant = rng.standard_normal((1, 64)).astype(np.float32) * np.ones((64, 1), np.float32)
    branch_weight = rng.standard_normal((64, 64)).astype(np.float32)
    branch = oh.make_graph([oh.make_node("MatMul", ["h", "B"], ["y_then"])], "then", [],
                           [tensor_info("y_then", 1, [1, 64])], initializer=[onh.from_array(branch_weight, "B")])
    other = oh.make_graph([oh.make_node("Identity", ["h"], ["y_else"])], "else", [],
                          [tensor_info("y_else", 1, [1, 64])])
    nodes = [
        oh.make_node("MatMul", ["x", "W"], ["m"]),
        oh.make_node("Constant", [], ["c"], value=onh.from_array(constant, "c")),
        oh.make_node("Add", ["m", "c"], ["a"]),
        oh.make_node("Add", ["a", "bias"], ["h"]),
        oh.make_node("If", ["flag"], ["y"], then_branch=branch, else_branch=other),
    ]
    inputs = [tensor_info("x", 1, [64, 64]), tensor_info("flag", 9, [])]
    model = make_model(nodes, inputs, [tensor_info("y", 1, [1, 64])], {"W": big, "bias": np.ones(64, np.float32)})
    onnx.save(model, path)
    return path


def test_large_tensors_are_read_in_place_and_equal_the_parsed_ones(tmp_path: Path) -> None:
    path = _model(tmp_path / "m.onnx")
    viewed, parsed = load_model(path), load_model(onnx.load(path))
    tensors = {v.name: v.const_value for g in viewed.graphs() for v in g.initializers.values()}
    expected = {v.name: v.const_value.numpy() for g in parsed.graphs() for v in g.initializers.values()}
    assert tensors.keys() == expected.keys()
    for name, tensor in tensors.items():
        np.testing.assert_array_equal(tensor.numpy(), expected[name])
        assert isinstance(tensor, ModelFileTensor) == (tensor.nbytes >= VIEW_MIN_BYTES), name
    assert sum(isinstance(t, ModelFileTensor) for t in tensors.values()) == 3  # W, the Constant, the branch's B
    assert input_files(path, viewed) == [path], "the model file counts once"
    assert len(skeleton(path)) < path.stat().st_size // 4


def test_viewed_model_optimizes_to_the_same_bytes_and_input_stays(tmp_path: Path) -> None:
    path = _model(tmp_path / "m.onnx")
    before = path.read_bytes()
    config = {"default": {"bits": 4}, "validation": {"enabled": False}, "min_elements": 1024}
    viewed = onnx_share.optimize(path, config).save(tmp_path / "a.onnx")
    parsed = onnx_share.optimize(onnx.load(path), config).save(tmp_path / "b.onnx")
    assert viewed.read_bytes() == parsed.read_bytes()
    assert path.read_bytes() == before
    feed = {"x": np.ones((64, 64), np.float32), "flag": np.array(True)}
    assert run(viewed, feed)[0].shape == (64, 64)


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_a_linked_model_file_is_read(tmp_path: Path, link: str) -> None:
    """onnx-ir refuses external data through links; the model file a user names may be one (package installers
    hard-link from their cache)."""
    source = _model(tmp_path / "m.onnx")
    (tmp_path / "elsewhere").mkdir()
    linked = tmp_path / "elsewhere" / "linked.onnx"
    (os.symlink if link == "symbolic" else os.link)(source, linked)
    out = onnx_share.optimize(linked, {"default": {"bits": 4}, "validation": {"enabled": False},
                                       "min_elements": 1024}).save(tmp_path / "out.onnx")
    assert out.is_file()


def test_damaged_files_are_refused_by_the_parser(tmp_path: Path) -> None:
    path = _model(tmp_path / "m.onnx")
    data = path.read_bytes()
    truncated = tmp_path / "t.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    assert skeleton(truncated) is None
    with pytest.raises(OnnxShareError, match="not a valid ONNX model"):
        load_model(truncated)


def test_a_raw_data_length_that_does_not_fit_the_shape_is_refused(tmp_path: Path) -> None:
    model = make_model([oh.make_node("MatMul", ["x", "W"], ["y"])], [tensor_info("x", 1, [1, 64])],
                       [tensor_info("y", 1, [1, 64])], {"W": np.ones((64, 64), np.float32)})
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:-4]
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(OnnxShareError, match="does not match its shape"):
        load_model(tmp_path / "m.onnx")


def test_a_hard_linked_external_data_file_is_refused_in_one_line(tmp_path: Path) -> None:
    model = make_model([oh.make_node("MatMul", ["x", "W"], ["y"])], [tensor_info("x", 1, [1, 64])],
                       [tensor_info("y", 1, [1, 64])], {"W": np.ones((64, 64), np.float32)})
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    os.link(tmp_path / "m.onnx.data", tmp_path / "alias.data")
    with pytest.raises(OnnxShareError, match="2 hard links"):
        load_model(tmp_path / "m.onnx")
