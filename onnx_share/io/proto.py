"""The one protobuf view of a model file: its graph without tensor data, the one subgraph walker, and the bytes
a model takes on disk (file plus the external data files it names).

The optimizer works on onnx-ir (:mod:`onnx_share.io.load`); validation, comparison and the target checks read
graphs as protobuf, because onnxruntime and Polygraphy take protobuf models. Both start from here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx

from onnx_share.errors import OnnxShareError, first_line

# The default ONNX operator domain, by both of its names.
DEFAULT_DOMAINS = ("", "ai.onnx")
# A model given as a path, or as serialized bytes.
ModelFile = str | os.PathLike | bytes


@dataclass
class ProtoModel:
    """A model's graph as protobuf (external tensor data left on disk) and where its data files lie."""

    proto: onnx.ModelProto
    source: str | bytes
    folder: Path | None

    @classmethod
    def read(cls, model: ModelFile) -> ProtoModel:
        """Read ``model`` (a path or serialized bytes) without loading external data."""
        if isinstance(model, bytes):
            return cls(onnx.load_from_string(model), model, None)
        path = Path(model)
        if not path.is_file():
            raise OnnxShareError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}")
        try:
            proto = onnx.load(path, load_external_data=False)
        except Exception as exc:  # protobuf raises several types for damaged files
            raise OnnxShareError(f"{path}: not a valid ONNX model ({first_line(exc)})") from exc
        return cls(proto, str(path), path.resolve().parent)

    def file_bytes(self) -> int:
        """Bytes of the model file plus the external data files its tensors name (serialized size for bytes)."""
        if isinstance(self.source, bytes):
            return len(self.source)
        return model_file_bytes(Path(self.source), external_locations(self.proto))


def iter_graph_protos(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph below it (If/Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_graph_protos(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from iter_graph_protos(sub)


def constant_tensors(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """Initializers and ``Constant`` node tensors of one graph, by value name."""
    found = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS:
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.HasField("t"):
                    found[node.output[0]] = attribute.t
    return found


def sparse_tensors(graph: onnx.GraphProto) -> dict[str, onnx.SparseTensorProto]:
    """Sparse initializers and ``Constant`` nodes with a ``sparse_value`` of one graph, by value name."""
    found = {s.values.name: s for s in graph.sparse_initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS:
            for attribute in node.attribute:
                if attribute.name == "sparse_value":
                    found[node.output[0]] = attribute.sparse_tensor
    return found


def external_locations(proto: onnx.ModelProto) -> set[str]:
    """The external data files (relative locations) that tensors of any graph of ``proto`` name."""
    locations = set()
    for graph in iter_graph_protos(proto.graph):
        for tensor in graph.initializer:
            location = next((e.value for e in tensor.external_data if e.key == "location"), None)
            if location is not None:
                locations.add(location)
    return locations


def model_file_bytes(path: Path, locations: set[str]) -> int:
    """Size of an ONNX file plus the data files named by ``locations`` (relative to its folder; missing ones
    count 0)."""
    folder = path.parent
    return path.stat().st_size + sum((folder / loc).stat().st_size for loc in locations if (folder / loc).is_file())
