"""Codebook weights: a float weight W becomes ``Gather(codebook, indices)``, the indices decoded to int32.

Per tensor: 1-D k-means over W gives a codebook of k = 2**bits centroids (in W's dtype) and one index per
weight. Per channel or per group of output channels: the channel axis is moved to the front, each group gets
its own codebook row ([G, k]), ``GatherElements`` decodes [G, M], and ``Reshape`` plus ``Transpose`` restore W's
layout. The decoded value keeps W's name.

The indices are stored as :func:`~onnx_share.numerics.packing.index_storage` says for their width and the
model's opset (raised first when that is safe): a native ONNX type of exactly that width (UINT2, UINT4, UINT8)
decoded by ``Cast(indices → int32)``, or, for the other widths and where the opset lacks the type, bytes
bit-packed by :func:`~onnx_share.numerics.packing.pack_bits` and decoded by ``Cast(→ int32) → MatMul`` (each
index's word of its two bytes) ``→ Div → Mod → Reshape`` (and ``Slice`` when the last group is padded), all
opset-11 operators that onnxruntime constant-folds at session creation. Both give the same int32 indices.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnx_share.config import WeightSpec
from onnx_share.io.load import MAX_OPSET
from onnx_share.ir.opset import raise_opset_to_best
from onnx_share.ir.selection import select_weights
from onnx_share.ir.surgery import NameScope, constant, node, replace_weight
from onnx_share.ir.weights import WeightTensor
from onnx_share.numerics.codebook import Codebook, channel_rows, fit_codebook
from onnx_share.numerics.packing import (
    IndexStorage,
    group_layout,
    index_storage,
    pack_bits,
    storage_opsets,
)
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


class CodebookPass(WeightPass):
    """Replace every selected weight whose spec has ``scheme="codebook"`` by a k-means codebook subgraph."""

    name = "codebook"

    def opsets_wanted(self, model: ir.Model) -> set[int]:
        """The default-domain opsets whose index storage the selected weights' widths need at best."""
        chosen = select_weights(model, self.config, "codebook").chosen
        return {index_storage(spec.index_bits, MAX_OPSET).min_opset for _, spec in chosen}

    def call(self, model: ir.Model) -> PassOutcome:
        chosen = select_weights(model, self.config, "codebook").chosen
        names = NameScope(model)
        result = PassOutcome(model, modified=False)
        opset, blockers = raise_opset_to_best(model, storage_opsets(spec.index_bits for _, spec in chosen))
        if blockers:
            result.notes.append(
                f"narrower index storage needs a newer opset, which is not safe to raise to "
                f"({', '.join(blockers[:5])}); indices are stored as opset {opset} allows (see each tensor's storage)"
            )
        for weight, spec in self.progress_bar(chosen):
            with working_on(weight.name):
                result.tensors.append(self._rewrite(weight, spec, index_storage(spec.index_bits, opset), names))
        result.modified = any(row.scheme is not None for row in result.tensors)
        return result

    def _rewrite(
        self, weight: WeightTensor, spec: WeightSpec, storage: IndexStorage, names: NameScope
    ) -> TensorReport:
        original = weight.numpy()
        notes = []
        axis = None
        if spec.granularity in ("channel", "group"):
            axis = weight.channel_axis
            if axis is None:
                notes.append(f"{spec.granularity} granularity needs one output-channel axis; used per tensor")
        codebook = fit_codebook(
            original, spec.num_clusters, axis, granularity=spec.granularity, group_size=spec.group_size,
            init=spec.init, pin_zero=spec.pin_zero, seed=self.config.seed,
        )
        nodes, initializers = self._decode_graph(weight, codebook, storage, original.dtype, names)
        stored = sum(int(v.const_value.nbytes) for v in initializers if v.const_value is not None)
        refused = not_smaller(weight, stored_bytes(nodes, initializers))
        if refused is not None:
            return refused
        replace_weight(weight, nodes, initializers)
        reference = original_values(weight)
        error, zeros_after = codebook.measure(channel_rows(reference, codebook.axis, codebook.group_size))
        zeros_before = np.count_nonzero(original == 0) / original.size
        if zeros_before:
            notes.append(f"sparsity {zeros_before:.1%} -> {zeros_after / original.size:.1%}")
        return tensor_row(
            weight,
            bytes_before=int(original.nbytes),
            bytes_after=stored,
            scheme="codebook",
            bits=spec.index_bits,
            clusters=spec.num_clusters,
            granularity=codebook.granularity,
            group_size=codebook.group_size,
            storage=storage.label,
            relative_error=error,
            notes=notes,
        )

    @staticmethod
    def _decode_graph(
        weight: WeightTensor,
        codebook: Codebook,
        storage: IndexStorage,
        dtype: np.dtype,
        names: NameScope,
    ) -> tuple[list[ir.Node], list[ir.Value]]:
        """The nodes and initializers that compute W from ``codebook``: codebook table first, then the index
        decode (:func:`_index_graph`), then the gather and, per channel or group, W's layout restored."""
        name, shape = weight.name, weight.shape
        if codebook.axis is None:
            table = constant(names, f"{name}_codebook", codebook.centroids[0].astype(dtype))
            index_nodes, index_constants = _index_graph(name, codebook.indices, shape, storage, names)
            gather = node("Gather", [table, index_nodes[-1].outputs[0]], f"{name}/decode/Gather", names, axis=0)
            return [*index_nodes, gather], [table, *index_constants]
        axis = codebook.axis
        moved = (shape[axis], *shape[:axis], *shape[axis + 1 :])
        table = constant(names, f"{name}_codebook", codebook.centroids.astype(dtype))
        index_nodes, index_constants = _index_graph(name, codebook.indices, codebook.indices.shape, storage, names)
        target_shape = constant(names, f"{name}_shape", np.array(moved, dtype=np.int64))
        gather = node(
            "GatherElements", [table, index_nodes[-1].outputs[0]], f"{name}/decode/GatherElements", names, axis=1
        )
        reshape = node("Reshape", [gather.outputs[0], target_shape], f"{name}/decode/Reshape", names)
        nodes = [*index_nodes, gather, reshape]
        if axis != 0:
            perm = [*range(1, axis + 1), 0, *range(axis + 1, len(shape))]
            nodes.append(node("Transpose", [reshape.outputs[0]], f"{name}/decode/Transpose", names, perm=perm))
        return nodes, [table, *index_constants, target_shape]


def _index_graph(
    name: str, indices: np.ndarray, shape: tuple[int, ...], storage: IndexStorage, names: NameScope
) -> tuple[list[ir.Node], list[ir.Value]]:
    """Nodes whose last output is ``indices`` (uint8) as int32 of ``shape``, and the initializers they read.

    Native storage: the indices in their ONNX type with ``shape``, then ``Cast``. Packed: the [B, G] UINT8 bytes of
    :func:`pack_bits`, then ``Cast`` to int32; where an index may span two bytes (B > 1) ``MatMul`` by the [e, B]
    matrix of :func:`group_layout` makes each slot's word of its two byte rows (B = 1: the one row, broadcast);
    ``Div`` by [e, 1] powers of two and ``Mod`` 2**bits give the [e, G] indices; ``Reshape`` to ``shape`` (through
    1-D and ``Slice`` when the last group is padded).
    """
    if not storage.packed:
        index_type = ir.DataType[storage.type_name].numpy()
        stored = constant(names, f"{name}_indices", indices.reshape(shape).astype(index_type))
        return [node("Cast", [stored], f"{name}/decode/Cast", names, to=ir.DataType.INT32)], [stored]
    slot_words, shift = group_layout(storage.bits)
    stored = constant(names, f"{name}_indices", pack_bits(indices, storage.bits))
    decode = _Subgraph(name, names, [stored])
    words = decode.step("Cast", stored, to=ir.DataType.INT32)
    if stored.shape[0] > 1:
        words = decode.step("MatMul", decode.constant("index_words", slot_words), words)
    scale = decode.constant("index_slot_scale", (1 << shift[:, None]).astype(np.int32))
    below = decode.step("Div", words, scale)
    decoded = decode.step("Mod", below, decode.constant("index_modulus", np.int32(1 << storage.bits)))
    if stored.shape[1] * len(shift) != indices.size:
        flat = decode.step("Reshape", decoded, decode.constant("index_flat", np.array([-1], dtype=np.int64)))
        start = decode.constant("index_start", np.array([0], dtype=np.int64))
        stop = decode.constant("index_stop", np.array([indices.size], dtype=np.int64))
        decoded = decode.step("Slice", flat, start, stop)
    decode.step("Reshape", decoded, decode.constant("index_shape", np.array(shape, dtype=np.int64)))
    return decode.nodes, decode.initializers


class _Subgraph:
    """Nodes and initializers of one weight's decode, appended in order, named after the weight."""

    def __init__(self, weight_name: str, names: NameScope, initializers: list[ir.Value]) -> None:
        self.weight_name = weight_name
        self.names = names
        self.nodes: list[ir.Node] = []
        self.initializers = initializers

    def constant(self, base: str, array: np.ndarray | np.generic) -> ir.Value:
        """A new initializer named ``{weight}_{base}``."""
        self.initializers.append(constant(self.names, f"{self.weight_name}_{base}", np.asarray(array)))
        return self.initializers[-1]

    def step(self, op_type: str, *inputs: ir.Value, **attributes: object) -> ir.Value:
        """Append an ``op_type`` node named ``{weight}/decode/{op_type}``; its output."""
        self.nodes.append(node(op_type, inputs, f"{self.weight_name}/decode/{op_type}", self.names, **attributes))
        return self.nodes[-1].outputs[0]
