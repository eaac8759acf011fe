"""Bit packing of indices: round trips for every width and length, the byte layout, and which storage a width
gets at an opset."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onnx_share.numerics.packing import (
    PACKED_MIN_OPSET,
    index_storage,
    pack_bits,
    packed_group,
    storage_opsets,
    unpack_bits,
)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.integers(0, 200), st.integers(0, 2**32 - 1))
def test_unpack_inverts_pack(bits: int, count: int, seed: int) -> None:
    indices = np.random.default_rng(seed).integers(0, 2**bits, size=count).astype(np.uint8)
    packed = pack_bits(indices, bits)
    elements, group_bytes = packed_group(bits)
    assert packed.dtype == np.uint8 and packed.size == math.ceil(count / elements) * group_bytes
    assert packed.size - math.ceil(count * bits / 8) < group_bytes  # at most the last group's padding
    np.testing.assert_array_equal(unpack_bits(packed, bits, count), indices)


@pytest.mark.parametrize("bits", range(1, 9))
def test_layout_is_groups_of_little_endian_streams_in_byte_rows(bits: int) -> None:
    """Index p is slot p // G of group p % G; a group's slots form one little-endian bit stream, its byte j stored
    in row j; padding bits are zero."""
    count = 11
    indices = np.random.default_rng(bits).integers(0, 2**bits, size=count).astype(np.uint8)
    packed = pack_bits(indices, bits)
    elements, group_bytes = packed_group(bits)
    groups = math.ceil(count / elements)
    assert packed.shape == (group_bytes, groups)
    slots = np.zeros(groups * elements, dtype=np.int64)
    slots[:count] = indices
    for g in range(groups):
        stream = np.unpackbits(packed[:, g], bitorder="little")
        expected = [(int(v) >> b) & 1 for v in slots.reshape(elements, groups)[:, g] for b in range(bits)]
        np.testing.assert_array_equal(stream, expected + [0] * (8 * group_bytes - len(expected)))


def test_out_of_range_indices_and_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="does not fit in 3 bits"):
        pack_bits(np.array([8], dtype=np.uint8), 3)
    with pytest.raises(ValueError, match="take 3 bytes"):
        unpack_bits(np.zeros(4, dtype=np.uint8), 3, 8)
    with pytest.raises(ValueError, match="1-8 bits"):
        index_storage(9, 21)


@pytest.mark.parametrize(
    ("bits", "opset", "label"),
    [
        (8, 11, "UINT8"), (4, 21, "UINT4"), (2, 25, "UINT2"),  # native types of exactly the width
        (4, 17, "UINT8 packed 4-bit"), (2, 24, "UINT8 packed 2-bit"),  # the opset lacks the type
        (1, 25, "UINT8 packed 1-bit"), (3, 21, "UINT8 packed 3-bit"), (5, 11, "UINT8 packed 5-bit"),
        (6, 26, "UINT8 packed 6-bit"), (7, 17, "UINT8 packed 7-bit"),  # no native type of the width
        (3, 10, "UINT8"), (4, 9, "UINT8"),  # below the decode's opset
    ],
)
def test_storage_choice(bits: int, opset: int, label: str) -> None:
    assert index_storage(bits, opset).label == label


@pytest.mark.parametrize("bits", range(1, 9))
def test_storage_bytes_are_at_the_information_floor(bits: int) -> None:
    count = 10_001
    storage = index_storage(bits, 26)
    assert storage.nbytes(count) - math.ceil(count * bits / 8) < packed_group(bits)[1]
    if storage.packed:
        assert storage.nbytes(count) == pack_bits(np.zeros(count, dtype=np.uint8), bits).size


def test_opsets_worth_raising_to() -> None:
    assert storage_opsets([4]) == {21, PACKED_MIN_OPSET, 1}
    assert storage_opsets([3, 8]) == {PACKED_MIN_OPSET, 1}
