"""Uniform weight quantization: a float weight W becomes ``DequantizeLinear(q, scale[, zero_point])``.

``q`` is INT8/INT4/INT2 (symmetric, no zero point: what TensorRT accepts) or UINT8/UINT4/UINT2 with a zero
point. Scales are per tensor, per output channel (``axis``), or per block along the reduction axis
(``block_size``). For a MatMul weight [K, N] blocked along axis 0 with a power-of-two block of 16-256,
onnxruntime fuses ``DequantizeLinear → MatMul`` into ``MatMulNBits``. The output keeps W's name.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx_ir as ir

from onnx_share.config import WeightSpec
from onnx_share.ir.opset import raise_opset_to_best
from onnx_share.ir.selection import select_weights
from onnx_share.ir.surgery import NameScope, constant, node, replace_weight
from onnx_share.ir.weights import WeightTensor
from onnx_share.numerics.metrics import relative_error
from onnx_share.numerics.uniform import UniformGrid, quantize_uniform
from onnx_share.passes.base import (
    PassOutcome,
    WeightPass,
    not_smaller,
    original_values,
    stored_bytes,
    tensor_row,
    working_on,
)
from onnx_share.report.data import TensorReport

# bits -> (signed type, numpy type, unsigned type, numpy type, minimum opset)
QUANT_TYPES: dict[int, tuple[ir.DataType, type, ir.DataType, type, int]] = {
    8: (ir.DataType.INT8, np.int8, ir.DataType.UINT8, np.uint8, 10),
    4: (ir.DataType.INT4, ml_dtypes.int4, ir.DataType.UINT4, ml_dtypes.uint4, 21),
    2: (ir.DataType.INT2, ml_dtypes.int2, ir.DataType.UINT2, ml_dtypes.uint2, 25),
}
PER_AXIS_MIN_OPSET = 13
BLOCKED_MIN_OPSET = 21
HALF_SCALE_MIN_OPSET = 19
FUSABLE_OPS = frozenset({"MatMul", "Gemm"})


class UniformPass(WeightPass):
    """Replace every selected weight whose spec has ``scheme="uniform"`` by a ``DequantizeLinear`` node."""

    name = "uniform"

    def opsets_wanted(self, model: ir.Model) -> set[int]:
        """The default-domain opsets the selected weights' layouts need (``DequantizeLinear`` versions)."""
        chosen = select_weights(model, self.config, "uniform").chosen
        return {_min_opset(weight, spec, _layout(weight, spec)[0]) for weight, spec in chosen}

    def call(self, model: ir.Model) -> PassOutcome:
        chosen = select_weights(model, self.config, "uniform").chosen
        names = NameScope(model)
        result = PassOutcome(model, modified=False)
        plans = [(weight, spec, *_layout(weight, spec)) for weight, spec in chosen]
        needs = [_min_opset(weight, spec, layout) for weight, spec, layout, _ in plans]
        opset, blockers = raise_opset_to_best(model, set(needs))
        for (weight, spec, layout, notes), need in self.progress_bar(list(zip(plans, needs, strict=True))):
            if need > opset:
                result.tensors.append(_refused(weight, spec, need, blockers))
                continue
            with working_on(weight.name):
                result.tensors.append(_rewrite(weight, spec, layout, notes, names))
        result.modified = any(row.scheme is not None for row in result.tensors)
        return result


def _layout(weight: WeightTensor, spec: WeightSpec) -> tuple[tuple[str, int | None, int | None], list[str]]:
    """(granularity, axis, block size) for the weight, falling back where its consumers give no axis."""
    granularity = spec.granularity
    notes: list[str] = []
    if granularity == "auto":
        # 8 bits per output channel; fewer bits in blocks along the reduction axis of MatMul/Gemm weights.
        # onnxruntime fuses both into MatMulNBits for a MatMul weight [K, N]; TensorRT takes per-channel INT8
        # and blocked INT4 (it has no blocked INT8).
        blockable = set(weight.op_types) <= FUSABLE_OPS and len(weight.shape) == 2
        blocked = blockable and spec.bits < 8 and weight.reduction_axis is not None
        granularity = "group" if blocked else "channel"
    if granularity == "group":
        axis = weight.reduction_axis
        if axis is not None and (len(weight.shape) > 1 or weight.shape[axis] > spec.group_size):
            return ("group", axis, min(spec.group_size, weight.shape[axis])), notes
        if axis is not None:  # one block of a 1-D weight: onnxruntime reads a one-element scale as per tensor
            return ("tensor", None, None), ["a single block; used per tensor"]
        notes.append("no single reduction axis for blocks; used per channel")
        granularity = "channel"
    if granularity == "channel":
        axis = weight.channel_axis
        if axis is not None:
            return ("channel", axis, None), notes
        notes.append("no single output-channel axis; used per tensor")
    return ("tensor", None, None), notes


def _min_opset(weight: WeightTensor, spec: WeightSpec, layout: tuple[str, int | None, int | None]) -> int:
    """The oldest DequantizeLinear that takes this integer type, scale dtype and layout."""
    _, axis, block_size = layout
    needed = [QUANT_TYPES[spec.bits][4]]
    if axis is not None:
        needed.append(BLOCKED_MIN_OPSET if block_size is not None else PER_AXIS_MIN_OPSET)
    if weight.dtype == ir.DataType.FLOAT16:
        needed.append(HALF_SCALE_MIN_OPSET)
    return max(needed)


def _rewrite(
    weight: WeightTensor,
    spec: WeightSpec,
    layout: tuple[str, int | None, int | None],
    notes: list[str],
    names: NameScope,
) -> TensorReport:
    granularity, axis, block_size = layout
    original = weight.numpy()
    grid = quantize_uniform(
        original, spec.bits, symmetric=spec.symmetric, axis=axis, block_size=block_size,
        scale_dtype=np.float32 if weight.dtype == ir.DataType.BFLOAT16 else original.dtype,
    )
    nodes, initializers = _dequantize_graph(weight, spec, grid, names)
    refused = not_smaller(weight, stored_bytes(nodes, initializers))
    if refused is not None:
        return refused
    replace_weight(weight, nodes, initializers)
    decoded = grid.dequantize(np.float32).astype(original.dtype)
    if weight.dtype == ir.DataType.BFLOAT16:
        notes.append("float32 scales and a Cast to bfloat16: onnxruntime has no bfloat16 DequantizeLinear kernel")
    return tensor_row(
        weight,
        bytes_before=int(original.nbytes),
        bytes_after=sum(int(v.const_value.nbytes) for v in initializers if v.const_value is not None),
        scheme="uniform",
        bits=spec.bits,
        clusters=2**spec.bits,
        granularity=granularity,
        group_size=block_size,
        storage=_quant_type(weight, spec)[0].name,
        relative_error=relative_error(original_values(weight), decoded),
        notes=notes,
    )


def _quant_type(weight: WeightTensor, spec: WeightSpec) -> tuple[ir.DataType, type]:
    """The integer type of the stored grid: signed for symmetric grids, unsigned with a zero point otherwise.
    An unsigned 2-bit grid read through a ``Transpose`` is stored in UINT4: onnxruntime 1.32 fails to load the
    constant-folded UINT2 ``DequantizeLinear`` → ``Transpose`` ("element type mismatch")."""
    container = 4 if spec.bits == 2 and not spec.symmetric and _feeds_transpose(weight) else spec.bits
    signed, signed_np, unsigned, unsigned_np, _ = QUANT_TYPES[container]
    return (signed, signed_np) if spec.symmetric else (unsigned, unsigned_np)


def _feeds_transpose(weight: WeightTensor) -> bool:
    """Whether the weight reaches a ``Transpose``, directly or through ``Identity``/``Cast``."""
    values = [weight.value]
    while values:
        for use in values.pop().uses():
            if use.node.op_type == "Transpose":
                return True
            if use.node.op_type in ("Identity", "Cast"):
                values.extend(use.node.outputs)
    return False


def _dequantize_graph(
    weight: WeightTensor, spec: WeightSpec, grid: UniformGrid, names: NameScope
) -> tuple[list[ir.Node], list[ir.Value]]:
    name = weight.name
    _, quant_np = _quant_type(weight, spec)
    quantized = constant(names, f"{name}_quantized", grid.quantized.astype(quant_np))
    scale = constant(names, f"{name}_scale", grid.scale)
    inputs = [quantized, scale]
    if grid.zero_point is not None:
        inputs.append(constant(names, f"{name}_zero_point", grid.zero_point.astype(quant_np)))
    attributes: dict[str, int] = {}
    if grid.axis is not None:
        attributes["axis"] = grid.axis
    if grid.block_size is not None:
        attributes["block_size"] = grid.block_size
    dequantize = node("DequantizeLinear", inputs, f"{name}/decode/DequantizeLinear", names, **attributes)
    if weight.dtype != ir.DataType.BFLOAT16:
        return [dequantize], inputs
    cast = node("Cast", [dequantize.outputs[0]], f"{name}/decode/Cast", names, to=ir.DataType.BFLOAT16)
    return [dequantize, cast], inputs


def _refused(weight: WeightTensor, spec: WeightSpec, need: int, blockers: list[str]) -> TensorReport:
    return tensor_row(
        weight,
        skipped=(
            f"uniform {spec.bits}-bit in this layout needs opset {need}, which is not safe to raise to "
            f"({', '.join(blockers[:5])})"
        ),
    )
