"""Raising a model's default-domain opset when no operator it uses changes meaning between the versions.

Most new operator versions only accept more types, or add an optional attribute or trailing optional input
whose default keeps the old behaviour. Those keep every existing node's meaning, so the opset import can be
raised without touching a node. Anything else (an attribute removed or its default changed, inputs moved)
blocks the change, as do the few versions whose meaning changed with an unchanged signature.
"""

from __future__ import annotations

import onnx
import onnx.defs
import onnx.version_converter
import onnx_ir as ir

from onnx_share.errors import first_line
from onnx_share.io.load import MAX_OPSET, default_opset
from onnx_share.io.proto import DEFAULT_DOMAINS


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
        if node.domain in DEFAULT_DOMAINS
    }
    for function in model.functions.values():
        op_types.update(node.op_type for node in function if node.domain in DEFAULT_DOMAINS)
    blockers = []
    for op_type in sorted(op_types):
        try:
            before = onnx.defs.get_schema(op_type, current).since_version
            after = onnx.defs.get_schema(op_type, target).since_version
        except onnx.defs.SchemaError:
            blockers.append(f"{op_type} (unknown operator)")
            continue
        if before != after and not _compatible(op_type, current, target):
            blockers.append(f"{op_type} (changed in opset {after})")
    return blockers


# Versions whose meaning changed although their signature did not.
SEMANTIC_CHANGES: dict[str, int] = {"GroupNormalization": 21}


def _compatible(op_type: str, current: int, target: int) -> bool:
    """Whether ``op_type`` nodes valid at ``current`` mean the same at ``target``."""
    old, new = onnx.defs.get_schema(op_type, current), onnx.defs.get_schema(op_type, target)
    if current < SEMANTIC_CHANGES.get(op_type, 0) <= target:
        return False
    for name, attribute in old.attributes.items():
        changed = new.attributes.get(name)
        if changed is None or changed.type != attribute.type or changed.required != attribute.required:
            return False
        if changed.default_value.SerializeToString() != attribute.default_value.SerializeToString():
            return False
    if any(attr.required for name, attr in new.attributes.items() if name not in old.attributes):
        return False
    return _params_extend(old, new, old.inputs, new.inputs) and _params_extend(old, new, old.outputs, new.outputs)


def _params_extend(old_schema: onnx.defs.OpSchema, new_schema: onnx.defs.OpSchema, old: list, new: list) -> bool:
    """``new`` keeps ``old``'s parameters in order, accepting at least the same types (type parameters may be
    renamed), and adds only optional ones."""
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    if len(new) < len(old):
        return False
    for before, after in zip(old, new, strict=False):
        if before.name != after.name or not _types(old_schema, before.type_str) <= _types(new_schema, after.type_str):
            return False
        if after.option != before.option and after.option != optional:
            return False
    return all(p.option == optional for p in new[len(old) :])


def _types(schema: onnx.defs.OpSchema, type_str: str) -> set[str]:
    for constraint in schema.type_constraints:
        if constraint.type_param_str == type_str:
            return set(constraint.allowed_type_strs)
    return {type_str}


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


def raise_opset_to_best(model: ir.Model, targets: set[int]) -> tuple[int, list[str]]:
    """Raise the opset to the highest of ``targets`` that is safe; returns the opset now in force and the
    blockers of the highest target that was refused (empty when the highest one was reached)."""
    refused: list[str] = []
    for target in sorted(targets, reverse=True):
        blockers = raise_opset(model, target)
        if not blockers:
            break
        refused = refused or blockers
    return default_opset(model) or 0, refused


def convert_opset(proto: onnx.ModelProto, target: int) -> onnx.ModelProto:
    """``proto`` converted to default-domain opset ``target`` by onnx's version converter (which rewrites the
    nodes whose meaning changed), with the IR version that opset needs and only the ``value_info`` the original
    had (the converter infers a shape for every value: bytes the file need not carry); raises ``ValueError``
    saying why not."""
    try:
        converted = onnx.version_converter.convert_version(proto, target)
    except Exception as exc:  # the converter raises ConvertError, RuntimeError or IndexError by adapter
        raise ValueError(f"onnx's version converter failed: {first_line(exc)}") from exc
    converted.ir_version = max(converted.ir_version, min_ir_version(target))
    declared = {info.name for info in proto.graph.value_info}
    kept = [info for info in converted.graph.value_info if info.name in declared]
    del converted.graph.value_info[:]
    converted.graph.value_info.extend(kept)
    return converted


def min_ir_version(opset: int) -> int:
    """The IR version released with ``opset`` (what a model using it must declare at least)."""
    return onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)], True)
