"""Static checks of what a deployment target rejects or runs slowly, one finding (one line) per node and problem.

The checks read the graph only (tensor types from ONNX shape inference, small constants such as zero points
and scales from the file), so they run anywhere: no GPU, no TensorRT. Each rule is a function of one node.

TensorRT (its ONNX parser and quantize/dequantize layers): zero points must be 0; DequantizeLinear takes
INT8, INT4 or FP8 data; block quantization is INT4 only, along one of the last two axes, in blocks of 64 or
128, and along one axis only; INT4 is weight-only; UINT8 exists only as a network input or output (and as
the source of a Cast to FLOAT/FLOAT16); Gather takes no 8-, 4- or 2-bit data; types TensorRT lacks (UINT4,
UINT2, INT2, INT16, unsigned 16/32/64-bit...) are rejected; so are operators outside the ONNX domains (onnxruntime's
com.microsoft ops such as GatherBlockQuantized).

onnxruntime (CPU, measured with 1.31): the IR version and opset it loads; ``DequantizeLinear → MatMul`` is
fused into ``MatMulNBits`` only for a 2-D weight with one consumer, quantized per tensor, per axis 1, or in
power-of-two blocks of 16-256 along axis 0, and not under ``Gemm`` with ``transB=1``; weight-only
``DequantizeLinear → Conv`` is dequantized on every run, and so is a table under ``DequantizeLinear → Gather``
(``com.microsoft::GatherBlockQuantized`` reads it quantized, within the limits :func:`ort_gather_block` checks);
FLOAT4E2M1 has no CPU kernel; Gather indices must be INT32/INT64.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnx.numpy_helper as onh

from onnx_share.errors import OnnxShareError
from onnx_share.io.load import MAX_IR_VERSION, MAX_OPSET
from onnx_share.io.proto import DEFAULT_DOMAINS, ModelFile, ProtoModel, constant_tensors
from onnx_share.targets import TARGETS

Severity = Literal["error", "warning"]
T = onnx.TensorProto

TRT_DEQUANTIZE_TYPES = frozenset({T.INT8, T.INT4, T.FLOAT8E4M3FN, T.FLOAT4E2M1})
TRT_MISSING_TYPES = frozenset({
    T.UINT4, T.UINT2, T.INT2, T.INT16, T.UINT16, T.UINT32, T.UINT64, T.STRING, T.COMPLEX64, T.COMPLEX128,
    T.FLOAT8E5M2, T.FLOAT8E5M2FNUZ, T.FLOAT8E4M3FNUZ, T.FLOAT8E8M0, T.FLOAT6E2M3, T.FLOAT6E3M2,
})
TRT_INT4_BLOCK_SIZES = (64, 128)
LOW_BIT_TYPES = frozenset({
    T.INT8, T.UINT8, T.INT4, T.UINT4, T.INT2, T.UINT2, T.FLOAT8E4M3FN, T.FLOAT8E4M3FNUZ, T.FLOAT8E5M2,
    T.FLOAT8E5M2FNUZ, T.FLOAT8E8M0, T.FLOAT4E2M1,
})
GATHER_OPS = frozenset({"Gather", "GatherElements", "GatherND"})
ORT_NBITS_TYPES = frozenset({T.INT8, T.UINT8, T.INT4, T.UINT4, T.INT2, T.UINT2})
ORT_NBITS_BLOCKS = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Finding:
    """One problem of one node for one target."""

    node: str
    op_type: str
    rule: str
    severity: Severity
    reason: str

    def line(self) -> str:
        return f"{self.severity}: {self.node} ({self.op_type}) [{self.rule}] {self.reason}"


class GraphView:
    """One graph with what the rules ask about its tensors: types, constants, consumers, graph I/O."""

    def __init__(self, graph: onnx.GraphProto, folder: Path | None, types: dict[str, int],
                 outer: GraphView | None = None) -> None:
        self.graph, self.folder, self.outer = graph, folder, outer
        self.types = dict(outer.types) if outer else {}
        self.types.update(types)
        for value in [*graph.input, *graph.output, *graph.value_info]:
            if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type:
                self.types[value.name] = value.type.tensor_type.elem_type
        self.constants = constant_tensors(graph)
        for name, tensor in self.constants.items():
            self.types[name] = tensor.data_type
        self.io = {v.name for v in graph.input} | {v.name for v in graph.output}
        self.consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
        self.producers: dict[str, onnx.NodeProto] = {}
        for node in graph.node:
            for index, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node, index))
            for name in node.output:
                self.producers[name] = node

    def dtype(self, name: str) -> int | None:
        return self.types.get(name) or None

    def tensor(self, name: str) -> onnx.TensorProto | None:
        if name in self.constants:
            return self.constants[name]
        return self.outer.tensor(name) if self.outer and name not in self.producers else None

    def array(self, name: str) -> np.ndarray | None:
        tensor = self.tensor(name)
        if tensor is None:
            return None
        return onh.to_array(tensor, base_dir=str(self.folder) if self.folder else "")

    def shape(self, name: str) -> list[int] | None:
        tensor = self.tensor(name)
        if tensor is not None:
            return list(tensor.dims)
        for value in [*self.graph.input, *self.graph.output, *self.graph.value_info]:
            if value.name == name and value.type.tensor_type.HasField("shape"):
                dims = value.type.tensor_type.shape.dim
                return [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
        return None

    def is_network_io(self, name: str) -> bool:
        return self.outer is None and name in self.io


Rule = Callable[[GraphView, onnx.NodeProto], Iterator[Finding]]


def check_model(model: ModelFile, target: str) -> list[Finding]:
    """Every finding of ``target``'s rules over all nodes of ``model`` (main graph and subgraphs)."""
    if target not in RULES:
        raise OnnxShareError(f"unknown target {target!r}; targets are {', '.join(TARGETS)}")
    loaded = ProtoModel.read(model)
    findings = list(MODEL_RULES[target](loaded.proto))
    try:
        inferred = onnx.shape_inference.infer_shapes(loaded.proto, data_prop=True)
    except Exception:  # a model shape inference cannot follow is still checked with the types it declares
        inferred = loaded.proto
    for view, node in _walk(GraphView(inferred.graph, loaded.folder, {})):
        for rule in RULES[target]:
            findings.extend(rule(view, node))
    return findings


def _walk(view: GraphView) -> Iterator[tuple[GraphView, onnx.NodeProto]]:
    for node in view.graph.node:
        yield view, node
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                yield from _walk(GraphView(subgraph, view.folder, {}, view))


def _finding(node: onnx.NodeProto, rule: str, reason: str, severity: Severity = "error") -> Finding:
    label = node.name or f"<{node.op_type} -> {next((o for o in node.output if o), '?')}>"
    return Finding(label, node.op_type, rule, severity, reason)


def _type_name(data_type: int | None) -> str:
    return T.DataType.Name(data_type) if data_type else "unknown type"


def _attribute(node: onnx.NodeProto, name: str, default: int | None = None) -> int | None:
    return next((a.i for a in node.attribute if a.name == name), default)


def _input(node: onnx.NodeProto, index: int) -> str | None:
    return node.input[index] if len(node.input) > index and node.input[index] else None


# ---- TensorRT -------------------------------------------------------------------------------------------


def trt_zero_point(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """Quantize/DequantizeLinear: TensorRT quantizes symmetrically, so a zero point must be a constant 0."""
    zero_point = _input(node, 2)
    if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or zero_point is None:
        return
    values = view.array(zero_point)
    if values is None:
        yield _finding(node, "zero-point", f"zero point {zero_point} is computed at run time; TensorRT needs a "
                       "constant zero point of 0")
    elif np.any(values.astype(np.float64) != 0):
        first = values.astype(np.float64).ravel()[np.flatnonzero(values.astype(np.float64))[0]]
        yield _finding(node, "zero-point", f"zero point {zero_point} is non-zero (e.g. {first:g}); TensorRT takes "
                       "symmetric quantization only (zero point 0 or omitted)")


def trt_dequantize_type(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """DequantizeLinear data must be INT8, INT4 or FP8 (FP4 on recent TensorRT)."""
    if node.op_type != "DequantizeLinear":
        return
    data_type = view.dtype(node.input[0])
    if data_type is not None and data_type not in TRT_DEQUANTIZE_TYPES:
        yield _finding(node, "dequantize-type", f"dequantizes {_type_name(data_type)} data {node.input[0]}; "
                       "TensorRT's DequantizeLinear takes INT8, INT4 or FP8")


def trt_blocked(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """Blocked quantization: INT4 weights only, blocks of 64/128 along one of the last two axes, one axis."""
    if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
        return
    data, scale = node.input[0], node.input[1]
    data_shape, scale_shape = view.shape(data), view.shape(scale)
    block_size = _attribute(node, "block_size", 0) or 0
    if not block_size and not (data_shape and scale_shape and len(scale_shape) == len(data_shape) > 1):
        if node.op_type == "DequantizeLinear" and view.dtype(data) == T.INT4 and view.tensor(data) is None:
            yield _finding(node, "int4-weight-only", f"INT4 data {data} is computed at run time; TensorRT takes "
                           "INT4 for constant weights only")
        return
    data_type = view.dtype(data) if node.op_type == "DequantizeLinear" else view.dtype(node.output[0])
    if node.op_type == "DequantizeLinear" and data_type not in TRT_DEQUANTIZE_TYPES:
        return  # the dequantize-type rule already rejects the data type
    if data_type is not None and data_type != T.INT4:
        yield _finding(node, "block-type", f"block quantization of {_type_name(data_type)} data; TensorRT blocks "
                       "INT4 weights only (use per-channel scales for INT8)")
        return
    if block_size and block_size not in TRT_INT4_BLOCK_SIZES:
        yield _finding(node, "int4-block-size", f"INT4 block size {block_size}; TensorRT takes blocks of 64 or 128")
    if data_shape is None:
        return
    rank = len(data_shape)
    axis = (_attribute(node, "axis", 1) or 0) % max(rank, 1)
    if axis < rank - 2:
        yield _finding(node, "int4-block-axis", f"blocks along axis {axis} of a rank-{rank} tensor; TensorRT blocks "
                       "only along one of the last two axes")
    if scale_shape is not None and len(scale_shape) == rank:
        reduced = [i for i, (d, s) in enumerate(zip(data_shape, scale_shape, strict=True)) if d != s and d >= 0]
        if len(reduced) > 1:
            yield _finding(node, "int4-block-axes", f"blocks along axes {reduced} (scale {scale_shape} for data "
                           f"{data_shape}); TensorRT blocks along one axis only")
    if node.op_type == "DequantizeLinear" and view.tensor(data) is None:
        yield _finding(node, "int4-weight-only", f"INT4 data {data} is computed at run time; TensorRT takes INT4 for "
                       "constant weights only")


def trt_uint8(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """UINT8 only at the network's edges: no UINT8 intermediate tensor, UINT8 constants only cast to float."""
    for name in node.output:
        if name and view.dtype(name) == T.UINT8 and not view.is_network_io(name):
            yield _finding(node, "uint8-tensor", f"produces UINT8 tensor {name} inside the network; TensorRT takes "
                           "UINT8 only as a network input or output")
    if node.op_type == "DequantizeLinear":
        return  # its data type is the dequantize-type rule's
    for name in node.input:
        if not name or view.tensor(name) is None or view.dtype(name) != T.UINT8:
            continue
        target = _attribute(node, "to") if node.op_type == "Cast" else None
        if target in (T.FLOAT, T.FLOAT16):
            continue
        what = f"casts it to {_type_name(target)}" if node.op_type == "Cast" else f"{node.op_type} reads it"
        yield _finding(node, "uint8-tensor", f"UINT8 constant {name}: {what}; TensorRT converts UINT8 only to "
                       "FLOAT or FLOAT16")


def trt_gather_data(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """Gather, GatherElements and GatherND take no 8-, 4- or 2-bit data in TensorRT."""
    if node.op_type in GATHER_OPS and (data_type := view.dtype(node.input[0])) in LOW_BIT_TYPES:
        yield _finding(node, "gather-data-type", f"gathers from {_type_name(data_type)} data {node.input[0]}; "
                       "TensorRT's Gather takes no 8-, 4- or 2-bit data")


def trt_missing_types(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """Tensors of types TensorRT has no equivalent for (constants and graph inputs where read, else where made;
    quantize/dequantize data and zero points are the dequantize-type and zero-point rules')."""
    if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
        return
    for name in node.input:
        if name and (view.tensor(name) is not None or name in view.io) and view.dtype(name) in TRT_MISSING_TYPES:
            yield _finding(node, "unsupported-type", f"reads {_type_name(view.dtype(name))} tensor {name}; "
                           f"TensorRT has no {_type_name(view.dtype(name))} type")
    for name in node.output:
        if name and view.dtype(name) in TRT_MISSING_TYPES:
            yield _finding(node, "unsupported-type", f"produces {_type_name(view.dtype(name))} tensor {name}; "
                           f"TensorRT has no {_type_name(view.dtype(name))} type")


# ---- onnxruntime ----------------------------------------------------------------------------------------


def trt_contrib_ops(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """Operators outside the ONNX domains (onnxruntime's com.microsoft contrib ops): TensorRT's parser lacks them."""
    if node.domain not in DEFAULT_DOMAINS:
        yield _finding(node, "contrib-op", f"{node.domain}::{node.op_type} is not an ONNX operator; TensorRT's parser "
                       "has no importer for it (optimize with --target tensorrt or portable)")


def ort_loadable(model: onnx.ModelProto) -> Iterator[Finding]:
    """IR version and default-domain opset onnxruntime loads."""
    label = onnx.NodeProto(name="(model)", op_type="model")
    if model.ir_version > MAX_IR_VERSION:
        yield _finding(label, "ir-version", f"IR version {model.ir_version}; onnxruntime loads up to "
                       f"{MAX_IR_VERSION}")
    opset = next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), None)
    if opset is not None and opset > MAX_OPSET:
        yield _finding(label, "opset", f"default-domain opset {opset}; onnxruntime loads up to {MAX_OPSET}")


def ort_dequantize_matmul(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """Weight-only DequantizeLinear into MatMul/Gemm that onnxruntime will not fuse into MatMulNBits."""
    if node.op_type != "DequantizeLinear" or view.tensor(node.input[0]) is None:
        return
    uses = view.consumers.get(node.output[0], [])
    matmuls = [(n, i) for n, i in uses if n.op_type in ("MatMul", "Gemm") and i == 1]
    if not matmuls:
        return
    reason = _matmulnbits_blocker(view, node, uses)
    if reason is not None:
        yield _finding(node, "dq-matmul-not-fused", f"not fused into MatMulNBits ({reason}): the weight "
                       f"{node.input[0]} is dequantized on every run", "warning")


def _matmulnbits_blocker(view: GraphView, node: onnx.NodeProto, uses: list[tuple[onnx.NodeProto, int]]) -> str | None:
    if len(uses) > 1:
        return f"its output feeds {len(uses)} nodes"
    consumer = uses[0][0]
    if consumer.op_type == "Gemm" and (_attribute(consumer, "transB", 0) or _attribute(consumer, "transA", 0)):
        return "Gemm with transB=1"
    data_type, shape = view.dtype(node.input[0]), view.shape(node.input[0])
    if data_type not in ORT_NBITS_TYPES:
        return f"{_type_name(data_type)} data"
    if shape is None or len(shape) != 2:
        return f"a rank-{len(shape) if shape else '?'} weight"
    scale_shape = view.shape(node.input[1]) or []
    block_size = _attribute(node, "block_size", 0) or 0
    axis = (_attribute(node, "axis", 1) or 0) % 2
    if block_size:
        if axis != 0:
            return "blocks along axis 1; only blocks along axis 0 (K) fuse"
        if block_size not in ORT_NBITS_BLOCKS:
            return f"block size {block_size}; only powers of two from 16 to 256 fuse"
    elif int(np.prod(scale_shape, dtype=np.int64)) > 1 and axis != 1:
        return "scales per axis 0; only per-axis scales along axis 1 (N) fuse"
    return None


def ort_dequantize_conv(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """Weight-only DequantizeLinear into Conv/ConvTranspose: not fused, so dequantized on every run."""
    if node.op_type != "DequantizeLinear" or view.tensor(node.input[0]) is None:
        return
    for consumer, index in view.consumers.get(node.output[0], []):
        if consumer.op_type in ("Conv", "ConvTranspose") and index == 1:
            activation = view.producers.get(consumer.input[0])
            if activation is None or activation.op_type != "DequantizeLinear":
                yield _finding(node, "dq-conv", f"weight {node.input[0]} feeds {consumer.op_type} "
                               f"{consumer.name or consumer.output[0]!r} and is dequantized on every run "
                               "(onnxruntime fuses it only when the activation is quantized too)", "warning")


def ort_dequantize_gather(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """A constant table dequantized whole on every run although only ``Gather`` reads rows of it."""
    if node.op_type != "DequantizeLinear" or view.tensor(node.input[0]) is None:
        return
    uses = view.consumers.get(node.output[0], [])
    if uses and all(n.op_type == "Gather" and i == 0 for n, i in uses):
        yield _finding(node, "dq-gather", f"the table {node.input[0]} is dequantized whole on every run for Gather "
                       "to read a few rows (optimize with --target onnxruntime: GatherBlockQuantized reads the "
                       "rows it needs)", "warning")


def ort_gather_block(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """``com.microsoft::GatherBlockQuantized`` as onnxruntime 1.32's CPU kernel takes it (measured): UINT8 data
    with ``bits`` 2, 4 or 8 packed along the last axis, quantized along it; INT4/UINT4 data with ``bits`` 4;
    ``block_size`` a power of two from 16; ``gather_axis`` 0 for UINT8 data."""
    if node.op_type != "GatherBlockQuantized" or node.domain != "com.microsoft":
        return
    data_type, shape = view.dtype(node.input[0]), view.shape(node.input[0]) or []
    bits, block = _attribute(node, "bits", 4), _attribute(node, "block_size", 128) or 0
    problems = []
    if block < 16 or block & (block - 1):
        problems.append(f"block_size {block} (a power of two from 16)")
    if data_type == T.UINT8:
        if bits not in (2, 4, 8):
            problems.append(f"bits {bits} with UINT8 data (2, 4 or 8)")
        if _attribute(node, "gather_axis", 0) != 0 or (_attribute(node, "quantize_axis", 1) or 0) % max(
            len(shape), 1
        ) != len(shape) - 1:
            problems.append("UINT8 data gathered along an axis other than 0 or quantized along one but the last")
    elif data_type in (T.INT4, T.UINT4):
        if bits != 4:
            problems.append(f"bits {bits} with {_type_name(data_type)} data (4)")
    elif data_type is not None:
        problems.append(f"{_type_name(data_type)} data (UINT8, INT4 or UINT4)")
    if problems:
        yield _finding(node, "gather-block", f"onnxruntime's GatherBlockQuantized rejects {'; '.join(problems)}")


def ort_float4(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """FLOAT4E2M1 tensors have no onnxruntime CPU kernel."""
    for name in [*node.input, *node.output]:
        if name and view.dtype(name) == T.FLOAT4E2M1:
            yield _finding(node, "float4", f"tensor {name} is FLOAT4E2M1, which has no onnxruntime CPU kernel")
            return


def ort_bfloat16_dequantize(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """DequantizeLinear with bfloat16 scales (a bfloat16 output) has no onnxruntime CPU kernel."""
    if node.op_type == "DequantizeLinear" and len(node.input) > 1 and view.dtype(node.input[1]) == T.BFLOAT16:
        yield _finding(node, "bfloat16-dequantize", f"scale {node.input[1]} is BFLOAT16: onnxruntime has no CPU "
                       "kernel for DequantizeLinear with bfloat16 scales (use float32 scales and a Cast)")


def ort_gather_indices(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """Gather indices must be INT32 or INT64 (cast packed codebook indices first)."""
    if node.op_type in GATHER_OPS and len(node.input) > 1:
        data_type = view.dtype(node.input[1])
        if data_type is not None and data_type not in (T.INT32, T.INT64):
            yield _finding(node, "gather-indices", f"indices {node.input[1]} are {_type_name(data_type)}; "
                           "onnxruntime's Gather takes INT32 or INT64 indices (Cast them)")


def ort_int64_indices(view: GraphView, node: onnx.NodeProto) -> Iterator[Finding]:
    """A Cast of constant codebook indices to INT64: constant folding then holds 8 bytes per weight."""
    if node.op_type != "Cast" or _attribute(node, "to") != T.INT64 or view.tensor(node.input[0]) is None:
        return
    if any(n.op_type in GATHER_OPS and i == 1 for n, i in view.consumers.get(node.output[0], [])):
        yield _finding(node, "int64-indices", f"casts constant indices {node.input[0]} to INT64; onnxruntime folds "
                       "this at session creation, and INT32 halves that peak", "warning")


RULES: dict[str, tuple[Rule, ...]] = {
    "tensorrt": (trt_zero_point, trt_dequantize_type, trt_blocked, trt_uint8, trt_gather_data, trt_missing_types,
                 trt_contrib_ops),
    "onnxruntime": (ort_dequantize_matmul, ort_dequantize_conv, ort_dequantize_gather, ort_gather_block, ort_float4,
                    ort_bfloat16_dequantize, ort_gather_indices, ort_int64_indices),
}
MODEL_RULES: dict[str, Callable[[onnx.ModelProto], Iterator[Finding]]] = {
    "tensorrt": lambda model: iter(()),
    "onnxruntime": ort_loadable,
}
