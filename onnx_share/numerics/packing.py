"""Bit-packed indices, and which storage codebook indices of a given width get at a given opset.

:func:`pack_bits` turns n unsigned indices of ``bits`` bits each (1-8) into bytes; :func:`unpack_bits` is its
inverse. Layout, chosen so that the ONNX decode is one small MatMul and broadcast arithmetic: a *group* is
the shortest run of indices that fills whole bytes, e = 8 / gcd(bits, 8) indices in B = bits / gcd(bits, 8)
bytes. The n indices, zero-padded to G·e with G = ceil(n / e), are laid out as [e, G] (index p is slot p // G of
group p % G); each group's e indices form one little-endian bit stream of B bytes (slot t takes bits
[t·bits, (t+1)·bits), least significant first; stream bit j is bit j % 8 of its byte j // 8); the bytes are
stored as [B, G], byte j of every group in row j. So slot t of every group reads at most two rows:

    index[t·G + g] = (Σ_j S[t, j]·byte[j, g]) // 2**shift_t  mod 2**bits

with lo_t = t·bits // 8, shift_t = t·bits % 8, S[t, lo_t] = 1 and S[t, lo_t + 1] = 256 where that row exists
(where it does not, the index lies inside row lo_t); :func:`group_layout` gives S and the shifts. A decoder needs
one int32 ``MatMul`` of the [e, B] matrix S with the [B, G] bytes (none when B = 1: the one row broadcasts), then
``Div`` and ``Mod`` by per-slot constants: no bit shifts, no per-element gathers.

:func:`index_storage` says how a codebook pass stores indices of ``bits`` bits at an opset: the native ONNX type
when one holds exactly that width (UINT2 from opset 25, UINT4 from 21, UINT8), else packed bytes from
``PACKED_MIN_OPSET``, else UINT8; with :meth:`IndexStorage.nbytes` the bytes they take. Plain numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# (ONNX element type, bits per element, first default-domain opset that has it)
NATIVE_INDEX_TYPES: tuple[tuple[str, int, int], ...] = (("UINT2", 2, 25), ("UINT4", 4, 21), ("UINT8", 8, 1))
# The decode subgraph's operators all exist in this form from opset 11 on (Mod and Slice with inputs: 10;
# int32 MatMul: 9).
PACKED_MIN_OPSET = 11


@dataclass(frozen=True)
class IndexStorage:
    """How one tensor's indices are stored: an initializer of ONNX type ``type_name`` taking ``bits`` bits per
    index, bit-packed into UINT8 bytes by :func:`pack_bits` when ``packed`` (a decode subgraph unpacks them);
    available from default-domain opset ``min_opset``."""

    type_name: str
    bits: int
    packed: bool
    min_opset: int

    @property
    def label(self) -> str:
        """What the report says: ``UINT4`` or ``UINT8 packed 3-bit``."""
        return f"{self.type_name} packed {self.bits}-bit" if self.packed else self.type_name

    def nbytes(self, count: int) -> int:
        """Bytes of ``count`` indices in this storage (packed: whole groups; the decode constants not counted)."""
        if self.packed:
            elements, nbytes = packed_group(self.bits)
            return -(-count // elements) * nbytes
        return math.ceil(count * self.bits / 8)


def index_storages(bits: int) -> tuple[IndexStorage, ...]:
    """The storages for ``bits``-bit indices, best first: the native type of exactly that width, packed bytes
    (below 8 bits), UINT8."""
    natives = [IndexStorage(name, width, False, opset) for name, width, opset in NATIVE_INDEX_TYPES]
    exact = [s for s in natives if s.bits == bits]
    packed = [IndexStorage("UINT8", bits, True, PACKED_MIN_OPSET)] if bits < 8 else []
    return (*exact, *packed, natives[-1])


def storage_opsets(widths: Iterable[int]) -> set[int]:
    """The opsets from which some storage of these index widths is available: what is worth raising a model's
    opset to (the highest safe one gives the best storage)."""
    return {s.min_opset for bits in widths for s in index_storages(bits)}


def index_storage(bits: int, opset: int) -> IndexStorage:
    """The storage ``bits``-bit indices (1-8) get at default-domain ``opset``: the first of
    :func:`index_storages` that the opset has."""
    if not 1 <= bits <= 8:
        raise ValueError(f"index width must be 1-8 bits, got {bits}")
    return next(s for s in index_storages(bits) if s.min_opset <= opset)


def packed_group(bits: int) -> tuple[int, int]:
    """(indices, bytes) of the shortest run of ``bits``-bit indices that fills whole bytes."""
    common = math.gcd(bits, 8)
    return 8 // common, bits // common


def group_layout(bits: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 arrays for the decode of the module docstring: S [e, B], which joins each slot's low byte row and
    the next into one word, and each slot's bit offset in its low byte [e]."""
    elements, nbytes = packed_group(bits)
    start = np.arange(elements) * bits
    low = start // 8
    words = np.zeros((elements, nbytes), dtype=np.int32)
    words[np.arange(elements), low] = 1
    spans = low + 1 < nbytes
    words[np.arange(elements)[spans], low[spans] + 1] = 256
    return words, (start % 8).astype(np.int32)


def pack_bits(indices: np.ndarray, bits: int) -> np.ndarray:
    """``indices`` (uint8, any shape, each below 2**bits) flattened → [B, G] uint8 bytes, ``bits`` per index in the
    layout of the module docstring, zero-padded to whole groups."""
    if not 1 <= bits <= 8:
        raise ValueError(f"index width must be 1-8 bits, got {bits}")
    flat = np.ascontiguousarray(indices, dtype=np.uint8).reshape(-1)
    if flat.size and int(flat.max()) >> bits:
        raise ValueError(f"an index ({int(flat.max())}) does not fit in {bits} bits")
    elements, nbytes = packed_group(bits)
    groups = -(-flat.size // elements)
    packed = np.zeros((nbytes, groups), dtype=np.uint8)
    for slot in range(elements):
        values = flat[slot * groups : (slot + 1) * groups]  # the last slot may be short: its tail stays zero
        low, shift = divmod(slot * bits, 8)
        word = values.astype(np.uint16) << shift
        packed[low, : len(values)] |= word.astype(np.uint8)  # the low byte (astype keeps the low 8 bits)
        if shift + bits > 8:
            packed[low + 1, : len(values)] |= (word >> 8).astype(np.uint8)
    return packed


def unpack_bits(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The first ``count`` ``bits``-bit indices (uint8, 1-D) of bytes written by :func:`pack_bits`, computed as the
    ONNX decode computes them."""
    elements, nbytes = packed_group(bits)
    groups = -(-count // elements)
    if packed.size != groups * nbytes:
        raise ValueError(f"{count} {bits}-bit indices take {groups * nbytes} bytes, got {packed.size}")
    words, shift = group_layout(bits)
    slots = words @ packed.reshape(nbytes, groups).astype(np.int32)
    return ((slots // (1 << shift)[:, None]) % (1 << bits)).reshape(-1)[:count].astype(np.uint8)
