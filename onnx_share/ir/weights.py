"""Weight discovery: which constant float tensors are learned weights of compute ops, and their layout.

A weight is a float32/float16/bfloat16 initializer (main graph or any ``If``/``Loop``/``Scan`` body; the
loader has lifted ``Constant`` nodes to initializers) that feeds the weight input of a compute op (any operand of
``Einsum``), possibly through ``Identity``, a float-to-float ``Cast``, a ``Transpose`` or a reshaping op
(``Reshape``, ``Flatten``, ``Squeeze``, ``Unsqueeze``). Its output-channel axis (the axis that indexes the
consumer's output features) and reduction axis come from the consumer; behind a reshaping op, or for ``Einsum``,
they are unknown (the weight is then compressed per tensor). It may also feed data inputs of other
ops (a ``Slice`` of an LSTM weight, an ``Add``): they read the decoded tensor. Only inputs that set a shape,
an integer ``Cast``, an operator outside the default domain or a graph output forbid rewriting it. Everything
else is reported as skipped with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from onnx_share.io.load import release
from onnx_share.io.proto import DEFAULT_DOMAINS

FLOAT_TYPES = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16})
PASS_THROUGH_OPS = frozenset({"Identity", "Cast", "Transpose"})
# Ops that pass the values on in another shape: a weight reached through them has no known channel axis.
RESHAPING_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
# The axes behind a reshaping op whose output rank the graph does not fix: as many unknown axes as any consumer
# may index (ONNX tensors of weights have no more than this).
UNKNOWN_AXES: tuple[None, ...] = (None,) * 16
# Ops that read only a tensor's shape: a rewritten tensor of the same shape serves them unchanged.
SHAPE_READERS = frozenset({"Shape", "Size"})
RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN"})
# Float inputs that set an output's shape; other shape inputs (Reshape, Slice, Expand, Tile...) are integer.
FLOAT_SHAPE_INPUTS = frozenset({("Resize", 2), ("Upsample", 1)})
FINITE_META_KEY = "onnx_share.finite"


@dataclass(frozen=True)
class WeightUse:
    """One consumer slot that reads a tensor as a weight, with the tensor's axes as that op sees them.

    ``node`` is the consumer; ``axes[i]`` is the weight's axis that is axis i of the tensor the consumer reads
    (None where a reshaping op lies between them).
    """

    op_type: str
    input_index: int
    channel_axis: int | None
    reduction_axis: int | None
    node: ir.Node | None = field(default=None, compare=False)
    axes: tuple[int | None, ...] = field(default=(), compare=False)


@dataclass
class WeightTensor:
    """A compressible weight and where it lives in the model."""

    value: ir.Value
    graph: ir.Graph
    uses: tuple[WeightUse, ...]

    @property
    def name(self) -> str:
        return self.value.name or ""

    @property
    def tensor(self) -> ir.TensorProtocol:
        assert self.value.const_value is not None
        return self.value.const_value

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensor.shape)

    @property
    def dtype(self) -> ir.DataType:
        return self.tensor.dtype

    @property
    def op_types(self) -> tuple[str, ...]:
        return tuple(sorted({use.op_type for use in self.uses}))

    @property
    def channel_axis(self) -> int | None:
        """The output-channel axis all consumers agree on, or None."""
        axes = {use.channel_axis for use in self.uses}
        return axes.pop() if len(axes) == 1 else None

    @property
    def reduction_axis(self) -> int | None:
        """The reduction (input-feature) axis all consumers agree on, or None."""
        axes = {use.reduction_axis for use in self.uses}
        return axes.pop() if len(axes) == 1 else None

    def numpy(self) -> np.ndarray:
        return self.tensor.numpy()


@dataclass(frozen=True)
class SkippedTensor:
    """A constant float tensor left alone, and why."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    consumers: tuple[str, ...]
    reason: str


@dataclass
class Discovery:
    weights: list[WeightTensor]
    skipped: list[SkippedTensor]


def find_weights(model: ir.Model, *, min_elements: int = 4096) -> Discovery:
    """Classify every constant tensor of every graph in ``model`` as a weight or a skipped tensor."""
    found = Discovery([], [])
    for graph in model.graphs():
        for value in list(graph.initializers.values()):
            tensor = value.const_value
            if tensor is None:
                continue
            uses = _uses_of(value)
            consumers = tuple(sorted({f"{node.op_type}:{index}" for node, index in uses}))
            shape = tuple(int(d) for d in tensor.shape)
            reason = _skip_reason(value, tensor, uses, min_elements)
            weight_uses: list[WeightUse] = []
            if reason is None:
                weight_uses, reason = _weight_uses(value, len(shape))
            if reason is None:
                found.weights.append(WeightTensor(value, graph, tuple(weight_uses)))
            else:
                found.skipped.append(SkippedTensor(value.name or "", shape, tensor.dtype.name, consumers, reason))
    return found


def _uses_of(value: ir.Value) -> list[tuple[ir.Node, int]]:
    return sorted(((use.node, use.idx) for use in value.uses()), key=lambda u: (u[0].op_type, u[1]))


def _skip_reason(
    value: ir.Value, tensor: ir.TensorProtocol, uses: list[tuple[ir.Node, int]], min_elements: int
) -> str | None:
    if tensor.dtype not in FLOAT_TYPES:
        kind = "integer" if tensor.dtype.is_integer() else "unsupported"
        return f"{kind} dtype {tensor.dtype.name}"
    if value.is_graph_input():
        return "is a graph input (can be overridden at run time)"
    if value.is_graph_output():
        return "is a graph output"
    size = int(np.prod([int(d) for d in tensor.shape], dtype=np.int64))
    if size < min_elements:
        return f"{size} elements < min_elements {min_elements}"
    if not uses:
        return "unused"
    if not _finite(value, tensor):
        return "holds NaN or infinite values"
    return None


def _finite(value: ir.Value, tensor: ir.TensorProtocol) -> bool:
    """Whether ``tensor`` holds no NaN or infinity; read once per tensor object (the passes ask again and again,
    and a rewrite replaces the object), the answer kept in ``value.meta``."""
    checked = value.meta.get(FINITE_META_KEY)
    if checked is not None and checked[0] is tensor:
        return checked[1]
    finite = bool(np.isfinite(tensor.numpy()).all())
    value.meta[FINITE_META_KEY] = (tensor, finite)
    release(tensor)
    return finite


def _weight_uses(value: ir.Value, rank: int) -> tuple[list[WeightUse], str | None]:
    """Weight slots reached from ``value`` (through pass-through ops), or a reason it is not a weight."""
    found: list[WeightUse] = []
    stack: list[tuple[ir.Value, tuple[int | None, ...]]] = [(value, tuple(range(rank)))]
    while stack:
        current, axes = stack.pop()  # axes[i]: axis of the original tensor that is axis i of `current`
        for node, index in _uses_of(current):
            if node.op_type in SHAPE_READERS and node.domain in DEFAULT_DOMAINS:
                continue
            through = _pass_through(node, axes)
            if through is not None:
                if node.outputs[0].is_graph_output():
                    return [], f"reaches a graph output through {node.op_type}"
                stack.append((node.outputs[0], through))
                continue
            use = _weight_use(node, index, len(axes))
            if use is None:
                veto = _veto(node, index)
                if veto is not None:
                    return [], veto
                continue  # a data input: it reads the decoded tensor like the original
            found.append(
                WeightUse(
                    use.op_type,
                    use.input_index,
                    None if use.channel_axis is None else axes[use.channel_axis],
                    None if use.reduction_axis is None else axes[use.reduction_axis],
                    node,
                    axes,
                )
            )
    if not found:
        return [], "not a weight of a compute op"
    return found, None


def _veto(node: ir.Node, index: int) -> str | None:
    """Why a non-weight use of a float tensor forbids rewriting it, or None for a plain data input (which
    reads the decoded tensor, of the same name, dtype and shape, like the original)."""
    if node.domain not in DEFAULT_DOMAINS:
        return f"also feeds {node.domain}::{node.op_type} input {index}, an operator onnx-share does not know"
    if (node.op_type, index) in FLOAT_SHAPE_INPUTS:
        return f"also feeds {node.op_type} input {index}, which sets a shape"
    if node.op_type == "Cast":
        return "also feeds a Cast to an integer type"
    return None


def _pass_through(node: ir.Node, axes: tuple[int | None, ...]) -> tuple[int | None, ...] | None:
    """How ``node`` maps the original tensor's axes (None: an axis that is no axis of the original), if it is a
    value-preserving pass-through; a reshaping op maps none (:data:`UNKNOWN_AXES` when its output rank is unknown
    too)."""
    if node.domain not in DEFAULT_DOMAINS:
        return None
    if node.op_type in RESHAPING_OPS:
        rank = _reshaped_rank(node, len(axes))
        return UNKNOWN_AXES if rank is None else (None,) * rank
    if node.op_type not in PASS_THROUGH_OPS:
        return None
    if node.op_type == "Cast":
        to = node.attributes.get("to")
        return axes if to is not None and ir.DataType(to.as_int()) in FLOAT_TYPES else None
    if node.op_type == "Transpose":
        perm_attr = node.attributes.get("perm")
        perm = perm_attr.as_ints() if perm_attr is not None else list(reversed(range(len(axes))))
        return tuple(axes[p] for p in perm)
    return axes


def _reshaped_rank(node: ir.Node, rank: int) -> int | None:
    """The output rank of a reshaping op reading a rank-``rank`` tensor as its data input, when the graph fixes it
    (a constant shape or axes input, an attribute, or an inferred output shape); None otherwise."""
    if node.outputs[0].shape is not None:
        return len(node.outputs[0].shape)
    if node.op_type == "Flatten":
        return 2
    second = ir.convenience.get_const_tensor(node.inputs[1]) if len(node.inputs) > 1 else None
    if node.op_type == "Reshape":
        return None if second is None else int(second.numpy().size)
    attribute = node.attributes.get("axes")
    count = len(attribute.as_ints()) if attribute is not None else None if second is None else int(second.numpy().size)
    if count is None:
        return None
    return rank + count if node.op_type == "Unsqueeze" else rank - count


def _weight_use(node: ir.Node, index: int, rank: int) -> WeightUse | None:
    """The weight slot ``node`` input ``index`` is, with axes in the coordinates of that input."""
    if node.domain not in DEFAULT_DOMAINS:
        return None
    op = node.op_type
    axes: tuple[int | None, int | None] | None = None
    if op == "Conv" and index == 1:
        axes = (0, 1)
    elif op == "ConvTranspose" and index == 1:
        axes = (1, 0)
    elif op == "MatMul" and index in (0, 1):
        if rank >= 2:
            axes = (rank - 1, rank - 2) if index == 1 else (rank - 2, rank - 1)
        else:
            axes = (None, 0)
    elif op == "Gemm" and index in (0, 1):
        transposed = _int_attr(node, "transB" if index == 1 else "transA", 0)
        axes = ((0, 1) if transposed else (1, 0)) if index == 1 else ((1, 0) if transposed else (0, 1))
    elif op in RECURRENT_OPS and index in (1, 2):
        axes = (1, 2)
    elif op == "Einsum":
        axes = (None, None)  # any operand: the equation says which axis is which; not read here
    elif op == "Gather" and index == 0 and not _is_constant_expression(node.inputs[1]):
        gather_axis = _int_attr(node, "axis", 0)
        axes = (gather_axis % rank if rank else None, None)
    if axes is None:
        return None
    return WeightUse(op, index, axes[0], axes[1])


def _is_constant_expression(value: ir.Value | None) -> bool:
    """Whether ``value`` is computed from constants alone (e.g. decoded codebook indices): no graph input, and no
    node without inputs other than a constant, anywhere above it."""
    stack, seen = [value], set()
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen or ir.convenience.get_const_tensor(current) is not None:
            continue
        seen.add(id(current))
        producer = current.producer()
        if producer is None or current.is_graph_input() or not producer.inputs:  # an input, or a random source
            return False
        stack.extend(producer.inputs)
    return True


def _int_attr(node: ir.Node, name: str, default: int) -> int:
    attr = node.attributes.get(name)
    return attr.as_int() if attr is not None else default
