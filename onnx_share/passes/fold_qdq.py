"""QDQ folding: a constant float weight W feeding ``QuantizeLinear`` becomes the integer initializer that
``QuantizeLinear(W)`` computes (read by the ``DequantizeLinear`` directly), ``DequantizeLinear → QuantizeLinear``
pairs with equal parameters are removed, and the value-preserving ``Cast`` pairs and ``Identity`` nodes this
exposes go too. Every rewrite is exact: the model's outputs stay bit-identical.

``QuantizeLinear`` is computed as onnxruntime computes it (measured with 1.31): ``x / scale`` in float32 (float16
inputs too; the ``precision`` attribute is ignored), round half to even, add the zero point, saturate to the
integer type. Where another reading of the spec would give other integers (bfloat16, which onnxruntime has no
kernel for, or an explicit ``precision``), the weight is folded only if both readings agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np
import onnx_ir as ir

from onnx_share.config import OptimizeConfig
from onnx_share.io.proto import DEFAULT_DOMAINS
from onnx_share.ir.surgery import NameScope, allow_plain_initializers
from onnx_share.passes.base import PassOutcome, change_row
from onnx_share.report.data import TensorReport

# Integer types QuantizeLinear can produce; folding and DQ→Q removal handle these (float8/float4 are left alone).
QUANT_INT_TYPES = frozenset({
    ir.DataType.INT8, ir.DataType.UINT8, ir.DataType.INT16, ir.DataType.UINT16,
    ir.DataType.INT4, ir.DataType.UINT4, ir.DataType.INT2, ir.DataType.UINT2,
})
FOLDABLE_INPUT_TYPES = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16})
# Nodes whose only effect is their output: removed when a rewrite leaves them unread.
PURE_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "Cast", "Identity"})
PER_AXIS_MIN_OPSET = 13
BLOCKED_MIN_OPSET = 21
DQ_OUTPUT_DTYPE_MIN_OPSET = 23


class Refused(Exception):
    """A pattern that matched but cannot be rewritten exactly; the message says why."""


@dataclass(frozen=True)
class QuantParams:
    """The quantization a Q or DQ node applies: scale and zero point as stored, plus how they broadcast."""

    scale: np.ndarray
    zero_point: np.ndarray | None  # None: absent (zero)
    qtype: ir.DataType  # the integer side's type
    axis: int | None  # None: per tensor
    block_size: int  # 0: not blocked

    def same_as(self, other: QuantParams, rank: int | None) -> bool:
        """Equal scale (dtype and values), zero point (absent = 0), type, axis and block size."""
        if self.qtype != other.qtype or self.block_size != other.block_size:
            return False
        if self.scale.dtype != other.scale.dtype or not _same_values(self.scale, other.scale):
            return False
        if not _same_values(_zeros_if_none(self.zero_point, self.scale), _zeros_if_none(other.zero_point, other.scale)):
            return False
        if self.axis is None or other.axis is None:
            return self.axis is None and other.axis is None
        if self.axis == other.axis:
            return True
        return rank is not None and self.axis % rank == other.axis % rank


def quantize_linear(
    x: np.ndarray, params: QuantParams, division_dtype: np.dtype | None = None
) -> np.ndarray:
    """``QuantizeLinear(x)`` exactly: ``saturate(round_half_even(x / scale) + zero_point)``.

    The division runs in float32 on the exactly widened operands (what onnxruntime does), or rounded to
    ``division_dtype`` when given. Raises :class:`Refused` where the result is not defined (NaN) or the
    parameters do not fit ``x``.
    """
    scale = _broadcast(params.scale, x.shape, params.axis, params.block_size).astype(np.float32)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if division_dtype is None:
            ratio = x.astype(np.float32) / scale
        else:
            ratio = (x.astype(division_dtype) / scale.astype(division_dtype)).astype(np.float32)
    if np.isnan(ratio).any():
        raise Refused("x / scale has NaN elements; QuantizeLinear of NaN is implementation-defined")
    quantized = np.rint(ratio).astype(np.float64)
    if params.zero_point is not None:
        quantized = quantized + _broadcast(params.zero_point, x.shape, params.axis, params.block_size).astype(
            np.float64
        )
    low, high = int(params.qtype.min), int(params.qtype.max)
    return np.clip(quantized, low, high).astype(np.int64).astype(params.qtype.numpy())


def represents_exactly(source: ir.DataType, target: ir.DataType) -> bool:
    """Whether every value of ``source`` (NaN, infinities and -0 included) is a value of ``target``."""
    if source == target:
        return True
    if source == ir.DataType.BOOL:
        return target.is_integer() or _float_info(target) is not None
    if source.is_integer():
        low, high = int(source.min), int(source.max)
        if target.is_integer():
            return int(target.min) <= low and high <= int(target.max)
        info = _float_info(target)
        return info is not None and max(-low, high) <= min(2 ** (info.nmant + 1), float(info.max))
    source_info, target_info = _float_info(source), _float_info(target)
    if source_info is None or target_info is None:
        return False
    return (
        target_info.nmant >= source_info.nmant
        and float(target_info.smallest_subnormal) <= float(source_info.smallest_subnormal)
        and float(target_info.max) >= float(source_info.max)
        and (source not in HAS_INF or target in HAS_INF)
        and (source in NO_NAN or target not in NO_NAN)
        and (source in NO_NEGATIVE_ZERO or target not in NO_NEGATIVE_ZERO)
    )


HAS_INF = frozenset({ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16, ir.DataType.BFLOAT16,
                     ir.DataType.FLOAT8E5M2})
NO_NAN = frozenset({ir.DataType.FLOAT4E2M1})
NO_NEGATIVE_ZERO = frozenset({ir.DataType.FLOAT8E4M3FNUZ, ir.DataType.FLOAT8E5M2FNUZ})
CAST_FLOAT_TYPES = frozenset({
    ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.FLOAT8E4M3FN,
    ir.DataType.FLOAT8E4M3FNUZ, ir.DataType.FLOAT8E5M2, ir.DataType.FLOAT8E5M2FNUZ, ir.DataType.FLOAT4E2M1,
})


def _float_info(dtype: ir.DataType) -> Any:
    return ml_dtypes.finfo(dtype.numpy()) if dtype in CAST_FLOAT_TYPES else None


class FoldQdqPass(ir.passes.InPlacePass):
    """Fold constant QuantizeLinear, remove cancelling DequantizeLinear → QuantizeLinear pairs, then drop
    the value-preserving Casts and Identity nodes, in every graph and subgraph, until nothing changes."""

    @classmethod
    def from_config(cls, config: OptimizeConfig, *, progress: bool = False) -> FoldQdqPass:
        """The pass as the pipeline builds it (it has no options)."""
        return cls()

    def call(self, model: ir.Model) -> PassOutcome:
        rewriter = _Rewriter(model)
        changed = True
        while changed:
            changed = rewriter.remove_dq_q_pairs()
            changed |= rewriter.fold_constant_quantize()
            changed |= rewriter.remove_redundant_casts_and_identities()
        result = PassOutcome(model, modified=bool(rewriter.changes))
        result.changes.extend(rewriter.changes)
        result.notes.extend(rewriter.notes)
        result.notes.extend(note for node, note in rewriter.refusals.items() if node.graph is not None)
        return result


class _Rewriter:
    def __init__(self, model: ir.Model) -> None:
        self.model = model
        self.opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))
        self.names = NameScope(model)
        self.changes: list[TensorReport] = []
        self.notes: list[str] = []
        # why a matched node was left alone, by node: reported only if the node is still there at the end
        self.refusals: dict[ir.Node, str] = {}

    def _nodes(self, op_type: str) -> list[ir.Node]:
        return [
            node
            for graph in self.model.graphs()
            for node in graph
            if node.op_type == op_type and node.domain in DEFAULT_DOMAINS
        ]

    # DequantizeLinear → QuantizeLinear

    def remove_dq_q_pairs(self) -> bool:
        changed = False
        for quantize in self._nodes("QuantizeLinear"):
            if quantize.graph is None or not quantize.inputs or quantize.inputs[0] is None:
                continue
            dequantize = quantize.inputs[0].producer()
            if dequantize is None or dequantize.op_type != "DequantizeLinear" or dequantize.domain not in (
                DEFAULT_DOMAINS
            ):
                continue
            try:
                self._remove_dq_q(dequantize, quantize)
            except Refused as exc:
                self.refusals[quantize] = (
                    f"kept DequantizeLinear {dequantize.name or dequantize.outputs[0].name!r} → QuantizeLinear "
                    f"{quantize.name or quantize.outputs[0].name!r}: {exc}"
                )
                continue
            changed = True
        return changed

    def _remove_dq_q(self, dequantize: ir.Node, quantize: ir.Node) -> None:
        quantized = dequantize.inputs[0]
        if quantized is None:
            raise Refused("no input")
        dq_params = self._params(dequantize, quantize=False)
        q_params = self._params(quantize, quantize=True)
        middle = dequantize.outputs[0]
        rank = _rank(middle) if _rank(middle) is not None else _rank(quantized)
        if dq_params.qtype not in QUANT_INT_TYPES:
            raise Refused(f"{dq_params.qtype.name} is not an integer quantization type")
        if not dq_params.same_as(q_params, rank):
            raise Refused("scale, zero point, type, axis or block size differ")
        _check_round_trip(dq_params, self._dequantized_dtype(dequantize, dq_params))
        output = quantize.outputs[0]
        name = output.name
        if not _bypass(output, quantized, self.names, allow_identity=True):
            raise Refused("its output is a graph output")
        freed = _drop_dead(quantize) + _drop_dead(dequantize)
        self.changes.append(change_row(
            name, "remove-dequantize-quantize", freed, 0,
            dequantize=dequantize.name or middle.name, quantize=quantize.name or name,
        ))

    def _dequantized_dtype(self, dequantize: ir.Node, params: QuantParams) -> ir.DataType:
        output_dtype = _int_attr(dequantize, "output_dtype", 0) if self.opset >= DQ_OUTPUT_DTYPE_MIN_OPSET else 0
        return ir.DataType(output_dtype) if output_dtype else _np_to_ir(params.scale.dtype)

    def _params(self, node: ir.Node, *, quantize: bool) -> QuantParams:
        """Constant scale/zero point and the attributes of a Q or DQ node, as this opset reads them."""
        inputs = list(node.inputs) + [None] * (3 - len(node.inputs))
        scale_tensor = _constant(inputs[1])
        if scale_tensor is None:
            raise Refused("scale is not a constant")
        zero_tensor = _constant(inputs[2]) if inputs[2] is not None else None
        if inputs[2] is not None and zero_tensor is None:
            raise Refused("zero point is not a constant")
        scale = scale_tensor.numpy()
        zero_point = None if zero_tensor is None else zero_tensor.numpy()
        if zero_tensor is not None:
            qtype = zero_tensor.dtype
        elif quantize:
            output_dtype = _int_attr(node, "output_dtype", 0) if self.opset >= BLOCKED_MIN_OPSET else 0
            qtype = ir.DataType(output_dtype) if output_dtype else ir.DataType.UINT8
        else:
            found = _dtype_of(inputs[0]) if inputs[0] is not None else None
            if found is None:
                raise Refused("the quantized input's type is unknown")
            qtype = found
        block_size = _int_attr(node, "block_size", 0) if self.opset >= BLOCKED_MIN_OPSET else 0
        axis: int | None = _int_attr(node, "axis", 1) if self.opset >= PER_AXIS_MIN_OPSET else None
        if block_size == 0 and scale.size == 1 and scale.ndim <= 1:
            axis = None
        elif axis is None:
            raise Refused(f"opset {self.opset} allows only a per-tensor scale")
        if zero_point is not None and zero_point.shape != scale.shape and zero_point.size != 1:
            raise Refused("zero point and scale shapes differ")
        return QuantParams(scale, zero_point, qtype, axis, block_size)

    # QuantizeLinear on a constant float weight

    def fold_constant_quantize(self) -> bool:
        by_weight: dict[ir.Value, list[ir.Node]] = {}
        for node in self._nodes("QuantizeLinear"):
            weight = node.inputs[0] if node.inputs else None
            tensor = _constant(weight) if weight is not None else None
            if weight is not None and tensor is not None and tensor.dtype in FOLDABLE_INPUT_TYPES:
                by_weight.setdefault(weight, []).append(node)
        changed = False
        for weight, quantizers in by_weight.items():
            others = sorted({f"{u.node.op_type}:{u.idx}" for u in weight.uses() if u.node not in quantizers or u.idx})
            if others or weight.is_graph_output():
                reason = f"also feeds {', '.join(others)}" if others else "is a graph output"
                self.refusals[quantizers[0]] = (f"kept float weight {weight.name!r} behind QuantizeLinear: it "
                                                f"{reason}, so folding would store it twice")
                continue
            try:
                folded = [(node, self._quantized(weight, node)) for node in quantizers]
            except Refused as exc:
                self.refusals[quantizers[0]] = f"kept QuantizeLinear of {weight.name!r}: {exc}"
                continue
            self._replace_quantizers(weight, folded)
            changed = True
        return changed

    def _quantized(self, weight: ir.Value, node: ir.Node) -> tuple[np.ndarray, QuantParams]:
        tensor = _constant(weight)
        assert tensor is not None
        params = self._params(node, quantize=True)
        if params.qtype not in QUANT_INT_TYPES:
            raise Refused(f"output type {params.qtype.name} is not an integer type")
        if params.scale.dtype != tensor.dtype.numpy():
            raise Refused(f"x is {tensor.dtype.name} but the scale is {_np_to_ir(params.scale.dtype).name} "
                          "(onnxruntime has no kernel for mixed types)")
        values = tensor.numpy()
        try:
            quantized = quantize_linear(values, params)
        except ValueError as exc:
            raise Refused(f"scale does not fit the weight's shape ({exc})") from exc
        readings = []
        precision = _int_attr(node, "precision", 0)
        if precision and precision != ir.DataType.FLOAT:
            readings.append(ir.DataType(precision).numpy())
        if tensor.dtype == ir.DataType.BFLOAT16:
            readings.append(ml_dtypes.bfloat16)
        for dtype in readings:
            if not np.array_equal(quantized, quantize_linear(values, params, dtype)):
                raise Refused(f"dividing in {np.dtype(dtype).name} (a valid reading of the spec here) gives other "
                              "integers than float32 division")
        return quantized, params

    def _replace_quantizers(
        self, weight: ir.Value, folded: list[tuple[ir.Node, tuple[np.ndarray, QuantParams]]]
    ) -> None:
        tensor = _constant(weight)
        assert tensor is not None
        weight_name = weight.name
        created: list[ir.Value] = []
        freed = 0
        for node, (quantized, params) in folded:
            output = node.outputs[0]
            graph = node.graph
            assert graph is not None
            name = output.name or self.names.fresh(f"{weight_name}_quantized")
            if output.is_graph_output():
                name = self.names.fresh(f"{name}_folded")
            value = ir.Value(name=None, type=ir.TensorType(params.qtype), shape=ir.Shape(quantized.shape),
                             const_value=ir.tensor(quantized, dtype=params.qtype, name=name))
            if not output.is_graph_output():
                output.name = None  # the folded initializer takes over its name
            value.name = name
            graph.register_initializer(value)
            _bypass(output, value, self.names, allow_identity=True)
            freed += _drop_dead(node)
            created.append(value)
        self._ensure_plain_initializers()
        freed += _remove_constant(weight, tensor)
        params = folded[0][1][1]
        granularity = "tensor" if params.axis is None else "block" if params.block_size else "axis"
        self.changes.append(change_row(
            weight_name, "fold-quantize", freed, sum(int(v.const_value.nbytes) for v in created),
            quantized=[v.name for v in created], dtype=params.qtype.name, granularity=granularity,
        ))

    def _ensure_plain_initializers(self) -> None:
        note = allow_plain_initializers(self.model)
        if note is not None:
            self.notes.append(note)

    # Cast and Identity

    def remove_redundant_casts_and_identities(self) -> bool:
        changed = False
        for graph in self.model.graphs():
            for node in list(graph):
                if node.graph is None or node.domain not in DEFAULT_DOMAINS or len(node.outputs) != 1:
                    continue
                if node.op_type == "Identity" and len(node.inputs) == 1 and node.inputs[0] is not None:
                    changed |= self._remove(node, node.inputs[0], "remove-identity", allow_identity=False)
                elif node.op_type == "Cast" and node.inputs and node.inputs[0] is not None:
                    source = self._cast_source(node)
                    if source is not None:
                        changed |= self._remove(node, source, "remove-cast", allow_identity=True)
        return changed

    @staticmethod
    def _cast_source(cast: ir.Node) -> ir.Value | None:
        """The value ``cast`` reproduces exactly: its input (Cast to the same type), or the input of a
        preceding ``Cast`` A → B when this one casts back to A and B holds every A value."""
        to = _int_attr(cast, "to", 0)
        if not to:
            return None
        target = ir.DataType(to)
        value = cast.inputs[0]
        assert value is not None
        if _dtype_of(value) == target:
            return value
        previous = value.producer()
        if previous is None or previous.op_type != "Cast" or previous.domain not in DEFAULT_DOMAINS:
            return None
        source = previous.inputs[0] if previous.inputs else None
        middle = _int_attr(previous, "to", 0)
        if source is None or not middle or _dtype_of(source) != target:
            return None
        return source if represents_exactly(target, ir.DataType(middle)) else None

    def _remove(self, node: ir.Node, replacement: ir.Value, kind: str, *, allow_identity: bool) -> bool:
        output = node.outputs[0]
        name = output.name
        if not _bypass(output, replacement, self.names, allow_identity=allow_identity):
            return False
        _drop_dead(node)
        self.changes.append(change_row(name, kind, 0, 0, node=node.name))
        return True


def _check_round_trip(params: QuantParams, dequantized: ir.DataType) -> None:
    """Refuse unless ``Q(DQ(a)) == a`` for every integer ``a`` under any rounding of the float steps.

    DQ computes n·s with n = a − z (rounded to the float type, relative error ≤ 2^-p), Q divides by s (another
    rounding) and rounds to an integer: exact while |n|·(2^(1-p) + 2^-2p) < 1/2, with n·s finite and normal.
    """
    info = _float_info(dequantized)
    if info is None:
        raise Refused(f"dequantizes to {dequantized.name}")
    bits = min(info.nmant, ml_dtypes.finfo(params.scale.dtype).nmant, 23) + 1
    zero = np.zeros(1) if params.zero_point is None else params.zero_point.astype(np.float64)
    low, high = int(params.qtype.min), int(params.qtype.max)
    largest = float(max(high - zero.min(), zero.max() - low))
    magnitudes = np.abs(params.scale.astype(np.float64))
    if not np.isfinite(magnitudes).all() or magnitudes.min() < float(info.tiny):
        raise Refused("a scale is zero, subnormal or not finite")
    if largest * (2.0 ** (1 - bits) + 2.0 ** (-2 * bits)) >= 0.5:
        raise Refused(f"{dequantized.name} cannot hold every dequantized {params.qtype.name} value exactly enough")
    if largest * magnitudes.max() * (1 + 2.0 ** (1 - bits)) > float(info.max):
        raise Refused(f"dequantized values overflow {dequantized.name}")


def _bypass(old: ir.Value, new: ir.Value, names: NameScope, *, allow_identity: bool) -> bool:
    """Make every reader of ``old`` read ``new``; False if ``old`` is a graph output that cannot move.

    A graph output keeps its name: ``new`` is renamed to it when ``new`` is an intermediate value of the same
    graph; otherwise (a graph input, an initializer, an outer-scope value, another output) an ``Identity``
    keeps the output, if ``allow_identity``.
    """
    if not old.is_graph_output():
        old.replace_all_uses_with(new)
        return True
    graph = old.graph
    producer = new.producer()
    if (
        producer is not None
        and producer.graph is graph
        and not (new.is_graph_output() or new.is_graph_input() or new.is_initializer())
    ):
        name = old.name
        if new.type is None:
            new.type = old.type
        if new.shape is None:
            new.shape = old.shape
        old.replace_all_uses_with(new, replace_graph_outputs=True)
        old.name = None
        new.name = name
        return True
    if not allow_identity or graph is None:
        return False
    anchor = old.producer()
    identity = ir.node("Identity", [new], name=names.fresh(f"{old.name}/Identity"))
    keep = identity.outputs[0]
    keep.type, keep.shape = old.type, old.shape
    if anchor is not None and anchor.graph is graph:
        graph.insert_before(anchor, identity)
    else:
        graph.append(identity)
    name = old.name
    old.replace_all_uses_with(keep, replace_graph_outputs=True)
    old.name = None
    keep.name = name
    return True


def _drop_dead(node: ir.Node) -> int:
    """Remove ``node`` if nothing reads it, then the constants and pure nodes this leaves unread; bytes freed."""
    graph = node.graph
    if graph is None or any(v.uses() or v.is_graph_output() for v in node.outputs):
        return 0
    inputs = [v for v in node.inputs if v is not None]
    graph.remove(node, safe=True)
    freed = 0
    for value in dict.fromkeys(inputs):
        if value.uses() or value.is_graph_output() or value.is_graph_input():
            continue
        if value.is_initializer():
            tensor = _constant(value)
            freed += _remove_constant(value, tensor) if tensor is not None else 0
            continue
        producer = value.producer()
        if producer is not None and producer.op_type in PURE_OPS and producer.domain in DEFAULT_DOMAINS:
            freed += _drop_dead(producer)
    return freed


def _remove_constant(value: ir.Value, tensor: ir.TensorProtocol) -> int:
    """Drop an unread initializer; bytes freed (0 if something still reads it, or it is gone already)."""
    if value.uses() or value.is_graph_output() or value.is_graph_input() or not value.is_initializer():
        return 0
    owner = value.graph
    assert owner is not None and value.name is not None
    owner.initializers.pop(value.name)
    return int(tensor.nbytes)


def _constant(value: ir.Value | None) -> ir.TensorProtocol | None:
    """The tensor of an initializer that is not an overridable graph input (the loader lifted Constant nodes)."""
    if value is None or value.is_graph_input() or not value.is_initializer():
        return None
    return value.const_value


def _dtype_of(value: ir.Value, depth: int = 8) -> ir.DataType | None:
    """The element type of ``value``: from its producer where that fixes it, else as declared."""
    producer = value.producer()
    if producer is not None and producer.domain in DEFAULT_DOMAINS and depth > 0:
        op = producer.op_type
        if op == "Cast":
            to = _int_attr(producer, "to", 0)
            return ir.DataType(to) if to else None
        if op == "Identity" and producer.inputs and producer.inputs[0] is not None:
            return _dtype_of(producer.inputs[0], depth - 1)
        inputs = list(producer.inputs)
        if op == "QuantizeLinear":
            if len(inputs) > 2 and inputs[2] is not None:
                return _dtype_of(inputs[2], depth - 1)
            output_dtype = _int_attr(producer, "output_dtype", 0)
            return ir.DataType(output_dtype) if output_dtype else ir.DataType.UINT8
        if op == "DequantizeLinear" and len(inputs) > 1 and inputs[1] is not None:
            output_dtype = _int_attr(producer, "output_dtype", 0)
            return ir.DataType(output_dtype) if output_dtype else _dtype_of(inputs[1], depth - 1)
    if value.const_value is not None and not value.is_graph_input():
        return value.const_value.dtype
    return value.dtype


def _broadcast(param: np.ndarray, shape: tuple[int, ...], axis: int | None, block_size: int) -> np.ndarray:
    """``param`` (scale or zero point) laid out to broadcast against a tensor of ``shape``."""
    if axis is None:
        return param.reshape(())
    rank = len(shape)
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    axis %= rank
    if block_size == 0:
        if param.shape != (shape[axis],):
            raise ValueError(f"per-axis parameter of shape {param.shape} for axis {axis} of {shape}")
        return param.reshape([shape[axis] if d == axis else 1 for d in range(rank)])
    blocks = math.ceil(shape[axis] / block_size)
    expected = tuple(blocks if d == axis else shape[d] for d in range(rank))
    if param.shape != expected:
        raise ValueError(f"blocked parameter of shape {param.shape}, expected {expected}")
    return np.repeat(param, block_size, axis=axis).take(range(shape[axis]), axis=axis)


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    if a.size == b.size == 1:
        return bool(a.reshape(-1)[0] == b.reshape(-1)[0])
    return a.shape == b.shape and np.array_equal(a, b)


def _zeros_if_none(zero_point: np.ndarray | None, scale: np.ndarray) -> np.ndarray:
    return np.zeros(scale.shape, dtype=np.int64) if zero_point is None else zero_point.astype(np.int64)


def _rank(value: ir.Value | None) -> int | None:
    if value is None or value.shape is None:
        return None
    return len(value.shape)


def _np_to_ir(dtype: np.dtype) -> ir.DataType:
    return ir.DataType.from_numpy(dtype)


def _int_attr(node: ir.Node, name: str, default: int) -> int:
    attr = node.attributes.get(name)
    return attr.as_int() if attr is not None else default
