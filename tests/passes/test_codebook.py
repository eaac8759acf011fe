"""Native 2/4/8-bit index types: values survive the IR, protobuf serialization and onnxruntime bit-exactly."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper as onh
import onnx_ir as ir
import pytest

from onnx_share.numerics.packing import NATIVE_INDEX_TYPES

# Which storage a width gets at an opset (packed bytes included): tests/numerics/test_packing.py.


@pytest.mark.parametrize("storage", NATIVE_INDEX_TYPES, ids=lambda s: s[0])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 5)])  # odd element counts exercise the last half byte
def test_packing_round_trip(storage: tuple[str, int, int], shape: tuple[int, ...]) -> None:
    type_name, capacity, _ = storage
    onnx_type = ir.DataType[type_name]
    numpy_type = onnx_type.numpy()
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
