"""2/4/8-bit index storage: values survive the IR, protobuf serialization and onnxruntime bit-exactly."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper as onh
import onnx_ir as ir
import pytest

from onnx_share.passes.codebook import INDEX_STORAGE, _index_storage


@pytest.mark.parametrize(("bits", "expected"), [(1, "UINT2"), (2, "UINT2"), (3, "UINT4"), (4, "UINT4"),
                                                (5, "UINT8"), (8, "UINT8")])
def test_narrowest_storage_for_bits(bits: int, expected: str) -> None:
    assert _index_storage(bits)[1].name == expected


def test_storage_respects_the_opset() -> None:
    assert _index_storage(2, opset=24)[1].name == "UINT4"
    assert _index_storage(4, opset=20)[1].name == "UINT8"


@pytest.mark.parametrize("storage", INDEX_STORAGE, ids=lambda s: s[1].name)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 5)])  # odd element counts exercise the last half byte
def test_packing_round_trip(storage: tuple, shape: tuple[int, ...]) -> None:
    capacity, onnx_type, numpy_type, _ = storage
    values = np.random.default_rng(capacity).integers(0, 2**capacity, size=shape)
    tensor = ir.tensor(values.astype(numpy_type), name="indices")
    assert tensor.dtype == onnx_type
    assert tensor.nbytes == -(-values.size * capacity // 8)  # packed: ceil(n * bits / 8) bytes
    proto = ir.serde.serialize_tensor(tensor)
    assert proto.data_type == onnx_type.value
    assert len(proto.raw_data) == tensor.nbytes
    back = onh.to_array(proto)
    np.testing.assert_array_equal(back.astype(np.int64), values)
    onnx.checker.check_tensor(proto)
