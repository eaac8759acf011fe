"""What a rewrite did to each weight, read from the two model files: bytes before/after and decoded values.

A float constant of the original (initializer or ``Constant``, main graph) is *unchanged* when the rewritten
model holds a constant of the same name, *rewritten* when the rewritten model computes that name from
constants alone (a decode subgraph: ``Gather`` on a codebook, ``DequantizeLinear``, a low-rank ``MatMul``...)
or stores it as a sparse initializer,
*replaced* when the name is gone but constants named ``<name>_*`` stand in for it (onnx-share's passes name
what they create after the weight, e.g. the two factors of a low-rank split), and *removed* when nothing does
(merged into another tensor or folded away). Decoded values come from
running the decode subgraphs alone in onnxruntime, so this works for any scheme, not only onnx-share's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnx.numpy_helper as onh

from onnx_share.check.layerwise import names_read
from onnx_share.check.runners import onnxrt_session
from onnx_share.io.proto import ProtoModel, constant_tensors, sparse_tensors
from onnx_share.io.sparse import dense_form
from onnx_share.numerics.metrics import relative_error
from onnx_share.report.data import TensorReport, WeightHistogram

FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
                         onnx.TensorProto.DOUBLE})
# Element types narrower than a byte: bits per element.
PACKED_BITS = {onnx.TensorProto.INT4: 4, onnx.TensorProto.UINT4: 4, onnx.TensorProto.FLOAT4E2M1: 4,
               onnx.TensorProto.INT2: 2, onnx.TensorProto.UINT2: 2}
MAX_CENTROIDS = 256
DECODE_BATCH_BYTES = 256 * 2**20


@dataclass
class _Decode:
    nodes: list[onnx.NodeProto]
    leaves: list[str]


class WeightDiff:
    """The weights of an original model matched against their stand-ins in a rewritten one."""

    def __init__(self, original: ProtoModel, rewritten: ProtoModel) -> None:
        self.original, self.rewritten = original, rewritten
        self.before = constant_tensors(original.proto.graph)
        self.after = constant_tensors(rewritten.proto.graph)
        self.sparse = sparse_tensors(rewritten.proto.graph)
        self.producers = {o: n for n in rewritten.proto.graph.node for o in n.output if o}
        consumers: dict[str, set[str]] = {}
        for node in original.proto.graph.node:
            for name in node.input:
                consumers.setdefault(name, set()).add(node.op_type)
        self.consumers = consumers

    def rows(self, *, errors: bool = True) -> list[TensorReport]:
        """One row per float constant of the original, largest first; ``errors``: decode every rewritten
        weight to measure its relative error ‖W−Ŵ‖/‖W‖."""
        rows = []
        for name, tensor in self.before.items():
            if tensor.data_type not in FLOAT_TYPES:
                continue
            row = TensorReport(
                name=name,
                consumers=sorted(self.consumers.get(name, ())),
                shape=list(tensor.dims),
                dtype=onnx.TensorProto.DataType.Name(tensor.data_type),
                bytes_before=tensor_nbytes(tensor),
                bytes_after=0,
            )
            if name in self.after:
                row.bytes_after = tensor_nbytes(self.after[name])
                row.skipped = "unchanged" if row.bytes_after == row.bytes_before else None
                if row.skipped is None:
                    row.scheme = f"stored as {onnx.TensorProto.DataType.Name(self.after[name].data_type)}"
            elif name in self.sparse:
                sparse = self.sparse[name]
                row.scheme = "sparse"
                row.storage = onnx.TensorProto.DataType.Name(sparse.indices.data_type)
                row.bytes_after = tensor_nbytes(sparse.values) + tensor_nbytes(sparse.indices)
            elif (decode := self.decode_graph(name)) is not None:
                self._describe(row, decode)
            elif stand_ins := sorted(n for n in self.after if n.startswith(f"{name}_")):
                row.scheme = "replaced"
                row.bytes_after = sum(tensor_nbytes(self.after[n]) for n in stand_ins)
                row.notes.append(f"by {', '.join(stand_ins[:6])}{' …' if len(stand_ins) > 6 else ''}")
            else:
                row.skipped = "removed (merged or folded)" if name not in self.producers else "now computed at run time"
            rows.append(row)
        rows.sort(key=lambda r: -r.bytes_before)
        if errors:
            by_name = {r.name: r for r in rows}
            decodable = [r.name for r in rows if r.skipped is None and r.name not in self.after]
            for name, decoded in self.decoded(decodable):
                by_name[name].relative_error = relative_error(self.original_array(name), decoded)
        return rows

    def decode_graph(self, name: str) -> _Decode | None:
        """The nodes and constants that compute ``name`` in the rewritten model, if only constants feed it."""
        nodes, leaves, stack, seen = [], [], [name], set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            if current in self.after:
                leaves.append(current)
                continue
            node = self.producers.get(current)
            if node is None:
                return None
            nodes.append(node)
            stack.extend(names_read(node))
        order = {id(n): i for i, n in enumerate(self.rewritten.proto.graph.node)}
        return _Decode(sorted(nodes, key=lambda n: order[id(n)]), leaves)

    def decoded(self, names: Sequence[str]) -> Iterator[tuple[str, np.ndarray]]:
        """(name, decoded array) for each rewritten weight in ``names``, decoding a few hundred MB at a time."""
        batch: list[str] = []
        size = 0
        for name in names:
            if name in self.sparse:
                yield name, onh.to_array(dense_form(self.sparse[name]))
                continue
            batch.append(name)
            size += tensor_nbytes(self.before[name]) if name in self.before else 0
            if size >= DECODE_BATCH_BYTES:
                yield from self._decode_batch(batch)
                batch, size = [], 0
        if batch:
            yield from self._decode_batch(batch)

    def histograms(
        self, rows: Sequence[TensorReport], *, count: int = 6, bins: int = 120, max_values: int = 1_000_000,
        seed: int = 0,
    ) -> list[WeightHistogram]:
        """Before/after histograms of the ``count`` largest rewritten weights among ``rows`` (a seeded sample of
        at most ``max_values`` each, the same positions in both), with codebook levels where there is one."""
        largest = {t.name: t for t in sorted(rows, key=lambda t: -t.bytes_before)[:count]}
        found = []
        for name, decoded in self.decoded(list(largest)):
            original = self.original_array(name)
            flat_original, flat_decoded = original.ravel(), decoded.ravel().astype(original.dtype)
            if flat_original.size > max_values:
                picks = np.random.default_rng(seed).choice(flat_original.size, max_values, replace=False)
                flat_original, flat_decoded = flat_original[picks], flat_decoded[picks]
            before, after = flat_original.astype(np.float64), flat_decoded.astype(np.float64)
            low = float(min(before.min(initial=0.0), after.min(initial=0.0)))
            high = float(max(before.max(initial=0.0), after.max(initial=0.0)))
            edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
            centroids, note = self._centroids(name, after)
            row = largest[name]
            how = f"{row.scheme} {row.bits}-bit" if row.bits is not None else str(row.scheme or row.change)
            found.append(WeightHistogram(
                name=name,
                label=f"{name} {row.shape} · {how}",
                edges=edges.tolist(),
                before=np.histogram(before, edges)[0].tolist(),
                after=np.histogram(after, edges)[0].tolist(),
                relative_error=relative_error(original, decoded),
                sampled=int(before.size),
                total=int(original.size),
                centroids=None if centroids is None else centroids.tolist(),
                note=note,
            ))
        return found

    def original_array(self, name: str) -> np.ndarray:
        return _array(self.before[name], self.original.folder)

    def _decode_batch(self, names: list[str]) -> Iterator[tuple[str, np.ndarray]]:
        graph = self.rewritten.proto.graph
        found = {n: d for n in names if n in self.before and (d := self.decode_graph(n)) is not None}
        names, decodes = list(found), list(found.values())
        if not names:
            return
        wanted_nodes = {id(n) for d in decodes for n in d.nodes}
        leaves = {leaf for d in decodes for leaf in d.leaves}
        initializers = []
        for leaf in sorted(leaves):
            tensor = onnx.TensorProto()
            tensor.CopyFrom(self.after[leaf])
            tensor.name = leaf
            initializers.append(tensor)
        # onnxruntime returns no bfloat16 arrays: every decoded weight comes out as float32 (exact for 16-bit floats)
        casts = [onnx.helper.make_node("Cast", [n], [f"{n}/as_float32"], to=onnx.TensorProto.FLOAT) for n in names]
        sub = onnx.helper.make_graph(
            [*(n for n in graph.node if id(n) in wanted_nodes), *casts], "decode", [],
            [onnx.helper.make_empty_tensor_value_info(c.output[0]) for c in casts], initializer=initializers,
        )
        proto = self.rewritten.proto
        model = onnx.helper.make_model(sub, opset_imports=list(proto.opset_import), ir_version=proto.ir_version)
        model.functions.extend(proto.functions)
        session = onnxrt_session(model.SerializeToString(), self.rewritten.folder)()
        yield from zip(names, session.run([c.output[0] for c in casts], {}), strict=True)

    def _describe(self, row: TensorReport, decode: _Decode) -> None:
        ops = {n.op_type for n in decode.nodes}
        row.bytes_after = sum(tensor_nbytes(self.after[leaf]) for leaf in decode.leaves)
        if ops & {"Gather", "GatherElements"}:
            row.scheme = "codebook"
            tables = [self.after[n.input[0]] for n in decode.nodes
                      if n.op_type in ("Gather", "GatherElements") and n.input[0] in self.after]
            row.clusters = int(tables[0].dims[-1]) if tables and tables[0].dims else None
        elif "DequantizeLinear" in ops:
            row.scheme = "uniform"
        else:
            row.scheme = "+".join(sorted(ops))
        integers = [self.after[leaf] for leaf in decode.leaves if self.after[leaf].data_type not in FLOAT_TYPES]
        if integers:
            largest = max(integers, key=tensor_nbytes)
            row.storage = onnx.TensorProto.DataType.Name(largest.data_type)
            row.bits = PACKED_BITS.get(largest.data_type, onnx.helper.tensor_dtype_to_np_dtype(largest.data_type)
                                       .itemsize * 8)
        if row.clusters:  # a codebook of k entries needs ceil(log2 k) index bits, whatever the storage type
            row.bits = max(1, (row.clusters - 1).bit_length())
            elements = int(np.prod(row.shape, dtype=np.int64))
            if integers and row.storage == "UINT8" and tensor_nbytes(largest) < elements:
                row.storage = f"UINT8 packed {row.bits}-bit"  # fewer bytes than indices: bit-packed

    def _centroids(self, name: str, sample: np.ndarray) -> tuple[np.ndarray | None, str | None]:
        """The codebook's levels: the float table a Gather reads, or the grid of a per-tensor DequantizeLinear;
        else the distinct decoded values when there are few."""
        decode = self.decode_graph(name)
        for node in decode.nodes if decode is not None else ():
            if node.op_type in ("Gather", "GatherElements") and node.input[0] in self.after:
                table = _array(self.after[node.input[0]], self.rewritten.folder)
                if table.size <= MAX_CENTROIDS:
                    return np.unique(table.astype(np.float64)), None
                return None, f"{table.size} codebook entries (one codebook per channel or group): not drawn"
            if node.op_type == "DequantizeLinear":
                return self._grid(node)
        distinct = np.unique(sample)
        if distinct.size <= MAX_CENTROIDS:
            return distinct, None
        return None, None

    def _grid(self, node: onnx.NodeProto) -> tuple[np.ndarray | None, str | None]:
        scale_name = node.input[1]
        if scale_name not in self.after:
            return None, None
        scale = _array(self.after[scale_name], self.rewritten.folder).astype(np.float64)
        if scale.size != 1:
            return None, f"{scale.size} scales (per channel or block): grid levels differ per group, not drawn"
        data_type = self.after[node.input[0]].data_type if node.input[0] in self.after else None
        if data_type is None:
            return None, None
        bits = PACKED_BITS.get(data_type, onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize * 8)
        if bits > 8:
            return None, None
        signed = onnx.TensorProto.DataType.Name(data_type).startswith("INT")
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        zero = 0.0
        if len(node.input) > 2 and node.input[2] in self.after:
            zero = float(_array(self.after[node.input[2]], self.rewritten.folder).astype(np.float64).ravel()[0])
        return (np.arange(low, high + 1, dtype=np.float64) - zero) * float(scale.ravel()[0]), None


def tensor_nbytes(tensor: onnx.TensorProto) -> int:
    """Bytes of the tensor's data (packed for 4- and 2-bit types), from its header alone."""
    count = int(np.prod(tensor.dims, dtype=np.int64))
    if tensor.data_type in PACKED_BITS:
        return -(-count * PACKED_BITS[tensor.data_type] // 8)
    if tensor.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
        return len(tensor.SerializeToString())
    return count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize


def _array(tensor: onnx.TensorProto, folder: object) -> np.ndarray:
    return onh.to_array(tensor, base_dir=str(folder) if folder is not None else "")
