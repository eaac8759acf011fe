"""Shape folding: ``Shape`` or ``Size`` of a constant becomes the int64 constant it computes, and a constant that
nothing reads any more is dropped. Bit-exact.

Exporters leave float constants behind whose only readers take their shape (tf2onnx's ``const_fold_opt__*``
tensors read by ``Shape``); they can be half of a small model's bytes. ``Shape`` honours ``start``/``end``
(opset 15). Subgraphs are folded too; a constant is dropped only from the graph that owns it, once no node of
any graph and no graph output reads it.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnx_share.io.proto import DEFAULT_DOMAINS
from onnx_share.ir.surgery import NameScope, constant
from onnx_share.passes.base import PassOutcome, WeightPass, change_row


class FoldShapesPass(WeightPass):
    """Replace ``Shape``/``Size`` of constants by constants; drop the constants left unread."""

    name = "fold-shapes"

    def call(self, model: ir.Model) -> PassOutcome:
        result = PassOutcome(model, modified=False)
        names = NameScope(model)
        folded = []
        for graph in model.graphs():
            for node in list(graph):
                if node.op_type not in ("Shape", "Size") or node.domain not in DEFAULT_DOMAINS:
                    continue
                source = node.inputs[0]
                if source is None or source.const_value is None or not source.is_initializer():
                    continue
                value = constant(names, f"{source.name}_{node.op_type.lower()}", _computed(node, source))
                output = node.outputs[0]
                output.replace_all_uses_with(value, replace_graph_outputs=True)
                graph.register_initializer(value)
                graph.remove(node, safe=True)
                value.name, output.name = output.name, value.name  # the folded value keeps the node output's name
                folded.append(source)
        for source in {id(v): v for v in folded}.values():
            if source.uses() or source.is_graph_output() or source.graph is None:
                continue
            nbytes = int(source.const_value.nbytes) if source.const_value is not None else 0
            source.graph.initializers.pop(source.name)
            result.changes.append(change_row(source.name, "fold-shapes", nbytes, 0, readers="Shape/Size only"))
        result.modified = bool(folded)
        return result


def _computed(node: ir.Node, source: ir.Value) -> np.ndarray:
    """What ``node`` computes from the constant ``source``: its shape (sliced by ``start``/``end``) or size."""
    shape = np.array(source.const_value.shape, dtype=np.int64)  # type: ignore[union-attr]
    if node.op_type == "Size":
        return np.array(int(np.prod(shape)), dtype=np.int64)
    start = node.attributes.get_int("start", 0) or 0
    end = node.attributes.get_int("end", None)
    return shape[start:end]
