"""Codebook weights: a float weight W becomes ``Gather(codebook, Cast(indices → int32))``.

Per tensor: 1-D k-means over W gives a codebook of k = 2**bits centroids (in W's dtype) and one index per
weight, stored in the smallest ONNX integer type that holds k (UINT2, UINT4, UINT8) with W's shape, so the
``Gather`` output is W's shape. Per channel or per group of output channels: the channel axis is moved to the
front, each group gets its own codebook row ([G, k]), ``GatherElements`` decodes [G, M], and ``Reshape`` plus
``Transpose`` restore W's layout. The decoded value keeps W's name.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx_ir as ir

from onnx_share.config import WeightSpec
from onnx_share.io.load import MAX_OPSET
from onnx_share.ir.opset import raise_opset_to_best
from onnx_share.ir.selection import select_weights
from onnx_share.ir.surgery import NameScope, constant, node, replace_weight
from onnx_share.ir.weights import WeightTensor
from onnx_share.numerics.codebook import Codebook, channel_rows, fit_codebook
from onnx_share.passes.base import (
    PassOutcome,
    WeightPass,
    not_smaller,
    original_values,
    tensor_row,
    working_on,
)
from onnx_share.report.data import TensorReport

# (index bits it holds, ONNX type, numpy type, minimum default-domain opset)
IndexStorage = tuple[int, ir.DataType, type, int]
INDEX_STORAGE: tuple[IndexStorage, ...] = (
    (2, ir.DataType.UINT2, ml_dtypes.uint2, 25),
    (4, ir.DataType.UINT4, ml_dtypes.uint4, 21),
    (8, ir.DataType.UINT8, np.uint8, 1),
)


def _index_storage(bits: int, opset: int = MAX_OPSET) -> IndexStorage:
    """The narrowest index type that holds ``bits`` and that ``opset`` allows."""
    return next(s for s in INDEX_STORAGE if bits <= s[0] and s[3] <= opset)


class CodebookPass(WeightPass):
    """Replace every selected weight whose spec has ``scheme="codebook"`` by a k-means codebook subgraph."""

    name = "codebook"

    def opsets_wanted(self, model: ir.Model) -> set[int]:
        """The default-domain opsets whose index types the selected weights' widths need."""
        chosen = select_weights(model, self.config, "codebook").chosen
        return {_index_storage(spec.index_bits)[3] for _, spec in chosen}

    def call(self, model: ir.Model) -> PassOutcome:
        chosen = select_weights(model, self.config, "codebook").chosen
        names = NameScope(model)
        result = PassOutcome(model, modified=False)
        opset, blockers = raise_opset_to_best(model, {_index_storage(spec.index_bits)[3] for _, spec in chosen})
        if blockers:
            result.notes.append(
                f"packed indices need a newer opset, which is not safe to raise to ({', '.join(blockers[:5])}); "
                f"indices stay at opset {opset} types"
            )
        for weight, spec in self.progress_bar(chosen):
            with working_on(weight.name):
                result.tensors.append(self._rewrite(weight, spec, _index_storage(spec.index_bits, opset), names))
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
        stored = sum(v.const_value.nbytes for v in initializers if v.const_value is not None)
        refused = not_smaller(weight, stored)
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
            storage=storage[1].name,
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
        name, shape = weight.name, weight.shape
        index_type = storage[2]
        if codebook.axis is None:
            table = constant(names, f"{name}_codebook", codebook.centroids[0].astype(dtype))
            indices = constant(names, f"{name}_indices", codebook.indices.reshape(shape).astype(index_type))
            cast = node("Cast", [indices], f"{name}/decode/Cast", names, to=ir.DataType.INT32)
            gather = node("Gather", [table, cast.outputs[0]], f"{name}/decode/Gather", names, axis=0)
            return [cast, gather], [table, indices]
        axis = codebook.axis
        moved = (shape[axis], *shape[:axis], *shape[axis + 1 :])
        table = constant(names, f"{name}_codebook", codebook.centroids.astype(dtype))
        indices = constant(names, f"{name}_indices", codebook.indices.astype(index_type))
        target_shape = constant(names, f"{name}_shape", np.array(moved, dtype=np.int64))
        cast = node("Cast", [indices], f"{name}/decode/Cast", names, to=ir.DataType.INT32)
        gather = node(
            "GatherElements", [table, cast.outputs[0]], f"{name}/decode/GatherElements", names, axis=1
        )
        reshape = node("Reshape", [gather.outputs[0], target_shape], f"{name}/decode/Reshape", names)
        nodes = [cast, gather, reshape]
        if axis != 0:
            perm = [*range(1, axis + 1), 0, *range(axis + 1, len(shape))]
            nodes.append(node("Transpose", [reshape.outputs[0]], f"{name}/decode/Transpose", names, perm=perm))
        return nodes, [table, indices, target_shape]

