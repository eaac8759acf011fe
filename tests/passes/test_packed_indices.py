"""Bit-packed codebook indices: decoded by onnxruntime bit-exactly as the native-type path and the numpy codebook
decode, for every width, odd element counts, per tensor, channel and group; real sub-byte storage at opsets
without UINT4/UINT2, and the same storage in ``inspect``'s estimate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnx_ir as ir
import pytest
from helpers import make_model, run, tensor_info, with_outputs

import onnx_share
from onnx_share.config import OptimizeConfig
from onnx_share.io.load import load_model
from onnx_share.numerics.codebook import fit_codebook
from onnx_share.numerics.packing import index_storage, index_storages, packed_group
from onnx_share.passes.compress import CompressPass
from onnx_share.passes.inspection import inspect_model
from onnx_share.report.data import TensorReport

FLOAT = onnx.TensorProto.FLOAT
LAYOUTS = {
    "tensor": {"granularity": "tensor"},
    "channel": {"granularity": "channel"},
    "group": {"granularity": "group", "group_size": 3},
}


# Operators that block raising the opset: Softmax changed meaning in opset 13, Clip moved min/max to inputs in 11.
BLOCKERS = {
    "Softmax": oh.make_node("Softmax", ["h"], ["y"], axis=1),
    "Clip": oh.make_node("Clip", ["h"], ["y"], min=-1.0, max=1.0),
}


def _matmul(rng: np.random.Generator, rows: int, cols: int, opset: int, then: str | None = None) -> onnx.ModelProto:
    """x [2, rows] @ W [rows, cols], then the ``BLOCKERS`` node named ``then``."""
    weight = rng.normal(size=(rows, cols)).astype(np.float32)
    nodes = [oh.make_node("MatMul", ["x", "W"], ["h" if then else "y"])]
    nodes += [BLOCKERS[then]] if then else []
    return make_model(nodes, [tensor_info("x", FLOAT, [2, rows])], [tensor_info("y", FLOAT, [2, cols])],
                      {"W": weight}, opset=opset, ir_version=6)


def _decode_in_onnxruntime(model: onnx.ModelProto) -> np.ndarray:
    """The rewritten weight W as onnxruntime computes it from the stored indices and codebook."""
    x = np.zeros((2, model.graph.input[0].type.tensor_type.shape.dim[1].dim_value), dtype=np.float32)
    return run(with_outputs(model, ["W"]), {"x": x})[1]


def _stored(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer if t.name.startswith("W_")}


def _compress(model: onnx.ModelProto, config: dict) -> tuple[onnx.ModelProto, TensorReport, list[str]]:
    """``model`` through the compress pass alone (no opset conversion), its row and notes."""
    loaded = load_model(model)
    outcome = CompressPass(OptimizeConfig.from_dict({**config, "min_elements": 16}))(loaded)
    (row,) = outcome.tensors
    return ir.to_proto(loaded), row, outcome.notes


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("bits", range(1, 9))
def test_packed_decode_is_bit_exact(bits: int, layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """W [385, 9]: 3465 indices (odd), 385 per channel row. Packed at opset 11 (Softmax blocks a raise) against the
    same codebook stored as UINT8, as UINT4/UINT2 where the width has a native type, and the numpy decode."""
    rng = np.random.default_rng(bits)
    model = _matmul(rng, 385, 9, opset=11, then="Softmax")
    config = {"default": {"bits": bits, **LAYOUTS[layout]}}
    packed, row, _ = _compress(model, config)
    with monkeypatch.context() as patch:
        patch.setattr("onnx_share.passes.forms.index_storage", lambda width, opset: index_storages(width)[-1])
        as_uint8, uint8_row, _ = _compress(model, config)
    assert uint8_row.storage == "UINT8"

    expected = index_storage(bits, 11)
    assert row.storage == expected.label and expected.packed == (bits < 8)
    assert row.bytes_after == sum(len(t.raw_data) for t in _stored(packed).values())
    assert len(_stored(packed)["W_indices"].raw_data) == expected.nbytes(385 * 9)

    weight = onh.to_array(model.graph.initializer[0])
    spec = LAYOUTS[layout]
    codebook = fit_codebook(weight, 2**bits, None if layout == "tensor" else 1,
                            granularity=spec.get("granularity", "tensor"), group_size=spec.get("group_size", 1))
    decoded = _decode_in_onnxruntime(packed)
    np.testing.assert_array_equal(decoded, _decode_in_onnxruntime(as_uint8))
    np.testing.assert_array_equal(decoded, codebook.decode(weight.shape).astype(np.float32))
    if bits in (2, 4):  # the opset can be raised without the Softmax: UINT2 / UINT4
        native, native_row, _ = _compress(_matmul(np.random.default_rng(bits), 385, 9, opset=17), config)
        assert native_row.storage == f"UINT{bits}"
        np.testing.assert_array_equal(decoded, _decode_in_onnxruntime(native))


@pytest.mark.parametrize("opset", [11, 17])
@pytest.mark.parametrize("bits", [3, 5, 7])
def test_sub_byte_storage_below_opset_21(bits: int, opset: int, tmp_path: Path) -> None:
    """An odd-sized weight at opsets without UINT4 is stored at bits/8 bytes per weight and runs."""
    rng = np.random.default_rng(opset)
    model = _matmul(rng, 301, 257, opset=opset)
    result = onnx_share.optimize(model, {"default": {"bits": bits, "granularity": "tensor"}, "min_elements": 16})
    path = result.save(tmp_path / "out.onnx")
    out = onnx.load(path)
    assert out.opset_import[0].version == opset
    count = 301 * 257
    indices = _stored(out)["W_indices"]
    assert indices.data_type == onnx.TensorProto.UINT8
    assert len(indices.raw_data) == math.ceil(count / packed_group(bits)[0]) * packed_group(bits)[1]
    floor = count * bits / 8 + 4 * 2**bits  # the indices' information and the codebook
    assert floor < path.stat().st_size < floor + 2048 < count  # + the decode graph; UINT8 would take count bytes
    weight = onh.to_array(model.graph.initializer[0])
    decoded = _decode_in_onnxruntime(out)
    np.testing.assert_array_equal(decoded, fit_codebook(weight, 2**bits).decode(weight.shape).astype(np.float32))
    x = rng.normal(size=(2, 301)).astype(np.float32)
    np.testing.assert_allclose(run(out, {"x": x})[0], x @ decoded, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bits", [2, 4])
def test_native_width_without_its_type_is_packed(bits: int) -> None:
    """Softmax blocks raising opset 11 to 21/25: 4- and 2-bit indices are packed, in the same bytes."""
    out, row, notes = _compress(_matmul(np.random.default_rng(bits), 64, 49, opset=11, then="Softmax"),
                                {"default": {"bits": bits, "granularity": "tensor"}})
    assert row.storage == f"UINT8 packed {bits}-bit" and any("Softmax" in note for note in notes)
    assert out.opset_import[0].version == 11
    assert len(_stored(out)["W_indices"].raw_data) == math.ceil(64 * 49 * bits / 8)
    assert run(out, {"x": np.ones((2, 64), dtype=np.float32)})[0].shape == (2, 49)


def test_native_types_stay_unpacked_where_the_opset_has_them() -> None:
    """4 bits at opset 21: UINT4 decoded by one Cast, no unpacking ops."""
    model = _matmul(np.random.default_rng(0), 64, 49, opset=17)
    result = onnx_share.optimize(model, {"default": {"bits": 4, "granularity": "tensor"}, "min_elements": 16})
    out = ir.to_proto(result.model)
    assert out.opset_import[0].version == 21 and result.report.compressed[0].storage == "UINT4"
    assert _stored(out)["W_indices"].data_type == onnx.TensorProto.UINT4
    assert [n.op_type for n in out.graph.node] == ["Cast", "Gather", "MatMul"]


@pytest.mark.parametrize(
    ("bits", "opset", "then"),
    [(3, 17, "Softmax"), (4, 17, "Softmax"), (4, 9, "Softmax"), (6, 11, "Softmax"), (8, 11, "Softmax"),
     (3, 9, "Clip")],  # packed, UINT4, packed after a raise to 11, packed, UINT8, UINT8 (no raise to 11)
)
def test_inspect_estimates_the_storage_the_pass_chooses(bits: int, opset: int, then: str) -> None:
    model = _matmul(np.random.default_rng(0), 97, 81, opset=opset, then=then)
    config = {"default": {"bits": bits, "granularity": "tensor"}, "min_elements": 16}
    (estimate,), _ = inspect_model(model, OptimizeConfig.from_dict(config))
    out, row, _ = _compress(model, config)
    stored = _stored(out).values()
    assert row.bytes_after == sum(len(t.raw_data) for t in stored)
    headers = sum(len(t.name) + 2 * len(t.dims) + 8 for t in stored)
    nodes = sum(n.ByteSize() for n in out.graph.node if n.name.startswith("W/decode/"))
    assert estimate.estimated_bytes == row.bytes_after + headers + nodes  # the bytes the decode graph writes
