"""Raising a model's default-domain opset when no operator it uses changes meaning between the versions."""

from __future__ import annotations

import onnx
import onnx.defs
import onnx_ir as ir

from onnx_share.model_io import MAX_OPSET, default_opset


def opset_blockers(model: ir.Model, target: int) -> list[str]:
    """Default-domain operators whose definition changes between the model's opset and ``target``.

    An empty list means the opset import can simply be raised: every node keeps its exact semantics.
    """
    current = default_opset(model)
    if current is None or current >= target:
        return []
    if target > MAX_OPSET:
        return [f"opset {target} > {MAX_OPSET} (onnxruntime's newest)"]
    op_types = {
        node.op_type
        for node in ir.traversal.RecursiveGraphIterator(model.graph)
        if node.domain in ("", "ai.onnx")
    }
    for function in model.functions.values():
        op_types.update(node.op_type for node in function if node.domain in ("", "ai.onnx"))
    blockers = []
    for op_type in sorted(op_types):
        try:
            before = onnx.defs.get_schema(op_type, current).since_version
            after = onnx.defs.get_schema(op_type, target).since_version
        except onnx.defs.SchemaError:
            blockers.append(f"{op_type} (unknown operator)")
            continue
        if before != after:
            blockers.append(f"{op_type} (changed in opset {after})")
    return blockers


def raise_opset(model: ir.Model, target: int) -> list[str]:
    """Raise the default-domain opset to at least ``target`` when that is safe.

    Returns the operators that block the change (empty when the model now has opset >= ``target``).
    """
    current = default_opset(model)
    if current is not None and current >= target:
        return []
    blockers = opset_blockers(model, target)
    if blockers:
        return blockers
    model.opset_imports.pop("ai.onnx", None)
    model.opset_imports[""] = target
    model.ir_version = max(model.ir_version or 0, min_ir_version(target))
    return []


def min_ir_version(opset: int) -> int:
    """The IR version released with ``opset`` (what a model using it must declare at least)."""
    return onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)], True)
