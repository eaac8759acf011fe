"""An inline model read without copying its tensor bytes: ``raw_data`` fields become references into the file itself.

Parsing a model file with protobuf copies every weight into the message (and again into numpy when read), so an
inline model costs its size in memory before any work starts. Here the protobuf wire format of the file
(memory-mapped) is walked instead: every ``TensorProto.raw_data`` of at least ``VIEW_MIN_BYTES`` (initializers
and ``Constant`` tensors, in the main graph and in subgraphs) is left out of a small *skeleton* of the model and
replaced by an external-data reference to the same bytes of the same file (``location`` the file's own name,
``offset`` and ``length`` of the field's bytes). Parsed, the skeleton is the model with its weights as
``ir.ExternalTensor``s: memory-mapped on first use and let go after, like any external data.

Field numbers are those of onnx.proto3 (ModelProto.graph 7; GraphProto.node 1, .initializer 5; NodeProto.attribute
5; AttributeProto.t 5, .g 6, .tensors 10, .graphs 11; TensorProto.raw_data 9, .external_data 13,
.data_location 14; StringStringEntryProto.key 1, .value 2).
"""

from __future__ import annotations

import mmap
from pathlib import Path

# raw_data smaller than this stays in the skeleton (shape constants, biases of small layers).
VIEW_MIN_BYTES = 4096

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
# Which fields of each message hold messages worth descending into: field number -> kind of message.
_CHILDREN = {
    "model": {7: "graph"},
    "graph": {1: "node", 5: "tensor"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph"},
}
_RAW_DATA, _EXTERNAL_DATA, _DATA_LOCATION = 9, 13, 14


def skeleton(path: Path, location: str | None = None) -> bytes | None:
    """The model at ``path`` serialized again with its large ``raw_data`` fields as references into ``path``
    (``location``: the name the references give the file, default its own; see the module docstring); None when
    there is none, or the file is not well-formed protobuf (the caller's parser then says what is wrong)."""
    if path.stat().st_size == 0:
        return None
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            return _Walker(data, location or path.name).message("model", 0, len(data))
        except ValueError:
            return None


def checker_copy(path: Path, folder: Path) -> Path:
    """The skeleton of ``path`` written to ``folder`` for onnx's checker, which reads a model with external data
    from a file and wants each data file to exist but never reads it: there, an empty stand-in."""
    stand_in = folder / "stand-in.data"
    stand_in.write_bytes(b"")
    copy = folder / "skeleton.onnx"
    copy.write_bytes(skeleton(path, stand_in.name) or path.read_bytes())
    return copy


class _Walker:
    """Rewrites messages of the buffer, copying what it does not change verbatim."""

    def __init__(self, data: mmap.mmap, location: str) -> None:
        self.data = data
        self.location = location.encode()

    def message(self, kind: str, start: int, end: int) -> bytes | None:
        """The message in ``[start, end)`` of kind ``kind`` rewritten, or None when nothing in it changes."""
        if kind == "tensor":
            return self.tensor(start, end)
        children = _CHILDREN[kind]
        parts: list[bytes] = []
        copied = start  # bytes in [copied, field start) are copied verbatim when a field changes
        for field, wire, head, value_start, value_end in _fields(self.data, start, end):
            child = children.get(field) if wire == _BYTES else None
            rewritten = None if child is None else self.message(child, value_start, value_end)
            if rewritten is None:
                continue
            parts.append(self.data[copied:head])
            parts.append(_key(field, _BYTES) + _varint(len(rewritten)) + rewritten)
            copied = value_end
        if not parts:
            return None
        parts.append(self.data[copied:end])
        return b"".join(parts)

    def tensor(self, start: int, end: int) -> bytes | None:
        """A TensorProto with a large ``raw_data`` as an external reference to those bytes; None otherwise."""
        raw = None
        for field, wire, head, value_start, value_end in _fields(self.data, start, end):
            if field in (_DATA_LOCATION, _EXTERNAL_DATA):
                return None  # already external (or says where its data is)
            if field == _RAW_DATA and wire == _BYTES:
                raw = (head, value_start, value_end)
        if raw is None or raw[2] - raw[1] < VIEW_MIN_BYTES:
            return None
        head, value_start, value_end = raw
        entries = b"".join(
            _key(_EXTERNAL_DATA, _BYTES) + _varint(len(entry)) + entry
            for entry in (_entry(b"location", self.location), _entry(b"offset", str(value_start).encode()),
                          _entry(b"length", str(value_end - value_start).encode()))
        )
        return (self.data[start:head] + self.data[value_end:end] + entries
                + _key(_DATA_LOCATION, _VARINT) + _varint(_EXTERNAL))


def _fields(data: mmap.mmap, start: int, end: int):
    """(field number, wire type, field start, value start, value end) of each field in ``[start, end)``."""
    pos = start
    while pos < end:
        head = pos
        key, pos = _read_varint(data, pos, end)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            _, pos = _read_varint(data, pos, end)
            yield field, wire, head, pos, pos
            continue
        if wire == _BYTES:
            length, pos = _read_varint(data, pos, end)
            value_start = pos
            pos += length
        elif wire == _FIXED64:
            value_start, pos = pos, pos + 8
        elif wire == _FIXED32:
            value_start, pos = pos, pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end or field == 0:
            raise ValueError("truncated or malformed message")
        yield field, wire, head, value_start, pos


def _read_varint(data: mmap.mmap, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _entry(key: bytes, value: bytes) -> bytes:
    """A StringStringEntryProto."""
    return _key(1, _BYTES) + _varint(len(key)) + key + _key(2, _BYTES) + _varint(len(value)) + value
