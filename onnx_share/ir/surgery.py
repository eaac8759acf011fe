"""Graph surgery shared by the weight passes: swap a constant weight for a small decoding subgraph."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from onnx_share.io.load import FIRST_IR_WITH_OPTIONAL_INITIALIZER_INPUTS
from onnx_share.ir.weights import WeightTensor


class NameScope:
    """Value and node names already used anywhere in a model (none without one), handing out fresh ones derived
    from a base name (onnxruntime refuses two values, or two nodes, of one name)."""

    def __init__(self, model: ir.Model | None = None) -> None:
        self._taken: set[str] = set()
        self._nodes: set[str] = set()
        for graph in model.graphs() if model is not None else ():
            self._taken.update(v.name for v in graph.inputs if v.name)
            self._taken.update(graph.initializers)
            for node in graph:
                self._taken.update(v.name for v in node.outputs if v.name)
                if node.name:
                    self._nodes.add(node.name)

    def fresh(self, base: str) -> str:
        """A value name not yet used."""
        return _fresh(self._taken, base)

    def fresh_node(self, base: str) -> str:
        """A node name not yet used."""
        return _fresh(self._nodes, base)


def _fresh(taken: set[str], base: str) -> str:
    name, n = base, 1
    while name in taken:
        name = f"{base}_{n}"
        n += 1
    taken.add(name)
    return name


def allow_plain_initializers(model: ir.Model) -> str | None:
    """Raise IR < 4 (where every initializer had to be a graph input too) so new initializers need not be;
    returns a note saying so, or None when nothing changed."""
    if (model.ir_version or 0) >= FIRST_IR_WITH_OPTIONAL_INITIALIZER_INPUTS:
        return None
    note = (
        f"IR version raised from {model.ir_version} to {FIRST_IR_WITH_OPTIONAL_INITIALIZER_INPUTS}: "
        "new initializers are not graph inputs"
    )
    model.ir_version = FIRST_IR_WITH_OPTIONAL_INITIALIZER_INPUTS
    return note


def constant(names: NameScope, base: str, array: np.ndarray) -> ir.Value:
    """A new constant value (to be registered as an initializer) named after ``base``."""
    name = names.fresh(base)
    tensor = ir.tensor(array, name=name)
    if tensor.dtype.bitwidth < 8:  # held packed, as stored (numpy keeps a byte per 4- or 2-bit value)
        tensor = ir.PackedTensor(np.frombuffer(tensor.tobytes(), np.uint8), tensor.dtype, shape=tensor.shape,
                                 name=name)
    return ir.Value(name=name, type=ir.TensorType(tensor.dtype), shape=tensor.shape, const_value=tensor)


def replace_weight(
    weight: WeightTensor,
    nodes: Sequence[ir.Node],
    initializers: Sequence[ir.Value],
) -> None:
    """Make ``nodes`` (whose last output decodes the weight) stand in for the constant ``weight``.

    The decoded value keeps the weight's name, dtype and shape, so later passes and layer-wise comparisons
    still find it; its consumers, in this graph or in subgraphs below it, are rewired to it.
    """
    graph, old = weight.graph, weight.value
    name, dtype, shape = weight.name, weight.dtype, weight.shape
    decoded = nodes[-1].outputs[0]
    graph.initializers.pop(name)
    if len(graph) > 0:
        graph.insert_before(graph.node(0), nodes)
    else:
        graph.extend(nodes)
    old.replace_all_uses_with(decoded)
    decoded.name = name
    decoded.dtype = dtype
    decoded.shape = ir.Shape(shape)
    for value in initializers:
        graph.register_initializer(value)


def node(
    op_type: str, inputs: Sequence[ir.Value], name: str, names: NameScope, *, domain: str = "", **attributes: object
) -> ir.Node:
    """A node (default domain unless ``domain``) named after ``name`` whose one output gets a model-wide unique
    name too."""
    created = ir.node(op_type, list(inputs), attributes or None, domain=domain, name=names.fresh_node(name))
    created.outputs[0].name = names.fresh(name)
    return created


def replace_readers(
    weight: WeightTensor, replacements: Sequence[tuple[ir.Node, ir.Node]], initializers: Sequence[ir.Value]
) -> None:
    """Make each new node stand in for the old node that read ``weight`` (its output takes over the old output's
    uses and name), then drop the old nodes and the weight, and register ``initializers``. The new nodes' inputs
    other than ``initializers`` must be the old nodes' own input values."""
    for old, new in replacements:
        graph = old.graph
        assert graph is not None
        graph.insert_before(old, new)
        output, name = old.outputs[0], old.outputs[0].name
        output.replace_all_uses_with(new.outputs[0], replace_graph_outputs=True)
        output.name = None
        new.outputs[0].name = name
        if output.type is not None:
            new.outputs[0].type = output.type
        if output.shape is not None:
            new.outputs[0].shape = output.shape
        graph.remove(old, safe=True)
    weight.graph.initializers.pop(weight.name)
    for value in initializers:
        weight.graph.register_initializer(value)


def add_to_bias(consumer: ir.Node, weight_input: int, shift: np.ndarray, names: NameScope) -> str | None:
    """Add ``shift`` (one value per output channel of the weight at input ``weight_input``) to what ``consumer``
    adds to that weight's product: a ``Conv``'s B or a ``Gemm``'s C (created when absent; C divided by ``beta``, the
    product by ``alpha``), the constant of the one ``Add`` that reads a ``MatMul``'s output, or the W or R half of
    an ``LSTM``/``RNN`` B (a ``GRU``'s W half: its recurrent bias is gated by the reset gate). A bias other nodes
    also read is copied, not changed in place. Returns why nothing was added, or None."""
    op = consumer.op_type
    if op == "Conv":
        return _shifted_input(consumer, 2, shift, names)
    if op in ("LSTM", "RNN", "GRU"):
        if op == "GRU" and weight_input == 2:
            return "a GRU's recurrent bias is gated by its reset gate"
        return _shifted_recurrent_bias(consumer, weight_input, shift, names)
    if op == "Gemm":
        alpha = consumer.attributes.get_float("alpha", 1.0)
        beta = consumer.attributes.get_float("beta", 1.0)
        if not beta:
            return "Gemm's beta is 0: its C is ignored"
        return _shifted_input(consumer, 2, shift * alpha / beta, names)
    if op == "MatMul":
        readers = list(consumer.outputs[0].uses())
        if len(readers) != 1 or readers[0].node.op_type != "Add" or consumer.outputs[0].is_graph_output():
            return "the MatMul's output is not read by one Add alone"
        add = readers[0].node
        return _shifted_input(add, 1 - readers[0].idx, shift, names, create=False)
    return f"{op} has no bias to correct"


def _shifted_recurrent_bias(node: ir.Node, weight_input: int, shift: np.ndarray, names: NameScope) -> str | None:
    """Add ``shift`` [directions * gates * hidden] to the W half (``weight_input`` 1) or R half (2) of a recurrent
    op's B [directions, 2 * gates * hidden] (created as zeros when absent)."""
    weight = node.inputs[1]
    assert weight is not None and weight.shape is not None
    directions, width = int(weight.shape[0]), int(weight.shape[1])
    full = np.zeros((directions, 2 * width))
    full[:, slice(0, width) if weight_input == 1 else slice(width, 2 * width)] = shift.reshape(directions, width)
    return _shifted_input(node, 3, full, names)


def _shifted_input(node: ir.Node, index: int, shift: np.ndarray, names: NameScope, *, create: bool = True
                   ) -> str | None:
    """Replace ``node``'s constant input ``index`` (a per-channel bias) by itself plus ``shift``; create it from
    ``shift`` when absent and ``create``."""
    graph = node.graph
    assert graph is not None
    current = node.inputs[index] if index < len(node.inputs) else None
    if current is None:
        if not create:
            return "no bias input"
        dtype = node.inputs[1].dtype if node.inputs[1] is not None else None
        values = shift.astype(dtype.numpy() if dtype is not None else np.float32)
    else:
        tensor = ir.convenience.get_const_tensor(current)
        if tensor is None:
            return "its bias is not a constant"
        bias = tensor.numpy()
        if bias.size != shift.size:
            return f"its bias has shape {list(bias.shape)}, not one value per output channel"
        values = (bias.astype(np.float64) + shift.reshape(bias.shape)).astype(bias.dtype)
    if current is not None and current.name in graph.initializers and len(current.uses()) == 1:
        current.const_value = ir.tensor(values, name=current.name)  # read by this node alone: changed in place
        return None
    base = current.name if current is not None and current.name else f"{node.name or node.op_type}_bias"
    value = constant(names, base, values)
    graph.register_initializer(value)
    if index >= len(node.inputs):
        node.resize_inputs(index + 1)
    node.replace_input_with(index, value)
    return None
