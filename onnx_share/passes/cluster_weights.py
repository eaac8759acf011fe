"""Weight clustering: a float weight W becomes ``Gather(codebook, Cast(indices → int32))``.

Per tensor: 1-D k-means over W gives a codebook of k = 2**bits centroids (in W's dtype) and one index per
weight, stored in the smallest ONNX integer type that holds k (UINT2, UINT4, UINT8) with W's shape, so the
``Gather`` output is W's shape. Per channel or per group of output channels: the channel axis is moved to the
front, each group gets its own codebook row ([G, k]), ``GatherElements`` decodes [G, M], and ``Reshape`` plus
``Transpose`` restore W's layout. The decoded value keeps W's name.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
import onnx_ir as ir
from tqdm import tqdm

from onnx_share.codebook.kmeans import kmeans_1d
from onnx_share.config import PIN_ZERO_FRACTION, WeightSpec
from onnx_share.model_io import MAX_OPSET
from onnx_share.opset import raise_opset_to_best
from onnx_share.passes.result import PassOutcome, WeightPass, tensor_row
from onnx_share.report import TensorReport
from onnx_share.rewrite import NameScope, constant, node, replace_weight
from onnx_share.selection import select_weights
from onnx_share.weights import WeightTensor

# (index bits it holds, ONNX type, numpy type, minimum default-domain opset)
IndexStorage = tuple[int, ir.DataType, type, int]
INDEX_STORAGE: tuple[IndexStorage, ...] = (
    (2, ir.DataType.UINT2, ml_dtypes.uint2, 25),
    (4, ir.DataType.UINT4, ml_dtypes.uint4, 21),
    (8, ir.DataType.UINT8, np.uint8, 1),
)


# Elements per block when measuring the error, so no float64 copy of a whole large tensor is made.
ERROR_BLOCK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class Codebook:
    """Centroids [G, k] (G = 1 per tensor) and indices [G, M] over W moved channel-first."""

    centroids: np.ndarray
    indices: np.ndarray
    axis: int | None
    granularity: str
    group_size: int | None

    def decode(self, shape: tuple[int, ...]) -> np.ndarray:
        """The float64 tensor the codebook graph computes, in W's layout."""
        flat = np.take_along_axis(self.centroids, self.indices.astype(np.int64), axis=1)
        if self.axis is None:
            return flat.reshape(shape)
        moved = (shape[self.axis], *shape[: self.axis], *shape[self.axis + 1 :])
        return np.moveaxis(flat.reshape(moved), 0, self.axis)

    def measure(self, rows: np.ndarray) -> tuple[float, int]:
        """‖W − Ŵ‖ / ‖W‖ against ``rows`` (W as laid out by :func:`channel_rows`) and Ŵ's count of exact
        zeros, accumulated in float64 over blocks of about ``ERROR_BLOCK_ELEMENTS`` elements."""
        error = reference = 0.0
        zeros = 0
        width = rows.shape[1]
        rows_per_block = max(1, ERROR_BLOCK_ELEMENTS // max(width, 1))
        for g in range(0, rows.shape[0], rows_per_block):
            table = self.centroids[g : g + rows_per_block]
            for start in range(0, width, ERROR_BLOCK_ELEMENTS):
                stop = start + ERROR_BLOCK_ELEMENTS
                original = rows[g : g + rows_per_block, start:stop].astype(np.float64)
                decoded = np.take_along_axis(table, self.indices[g : g + rows_per_block, start:stop], axis=1)
                error += float(np.sum((original - decoded) ** 2))
                reference += float(np.sum(original**2))
                zeros += int(np.count_nonzero(decoded == 0))
        return (float(np.sqrt(error / reference)) if reference > 0 else 0.0), zeros


def channel_rows(values: np.ndarray, axis: int | None, group_size: int | None) -> np.ndarray:
    """W as [G, M]: one row per codebook (a view of W per tensor; channel-first copy otherwise)."""
    if axis is None:
        return values.reshape(1, -1)
    channels = values.shape[axis]
    return np.moveaxis(values, axis, 0).reshape(channels // (group_size or 1), -1)


def cluster_tensor(values: np.ndarray, spec: WeightSpec, axis: int | None, seed: int = 0) -> Codebook:
    """k-means codebook(s) for ``values`` as ``spec`` asks (``axis``: output channels, None for per tensor).

    Centroids are rounded to ``values``' dtype, as the codebook initializer stores them.
    """
    granularity = "tensor" if axis is None else spec.granularity
    group_size = None
    if granularity != "tensor":
        channels = values.shape[axis]
        group_size = 1 if granularity == "channel" else _divisor_at_most(channels, spec.group_size)
    rows = channel_rows(values, None if granularity == "tensor" else axis, group_size)
    k = spec.num_clusters
    centroids = np.empty((rows.shape[0], k), dtype=np.float64)
    indices = np.empty(rows.shape, dtype=np.uint8)
    for g, row in enumerate(rows):
        result = kmeans_1d(row, k, init=spec.init, seed=seed, pin_zero=_pins_zero(row, spec.pin_zero))
        centroids[g, : len(result.centroids)] = result.centroids
        centroids[g, len(result.centroids) :] = result.centroids[-1]
        indices[g] = result.labels
    centroids = centroids.astype(values.dtype).astype(np.float64)
    return Codebook(centroids, indices, None if granularity == "tensor" else axis, granularity, group_size)


def _pins_zero(values: np.ndarray, requested: bool | None) -> bool:
    """``pin_zero`` as asked, or (None) when at least ``PIN_ZERO_FRACTION`` of the values are exactly zero."""
    if requested is not None:
        return requested
    return np.count_nonzero(values == 0) >= PIN_ZERO_FRACTION * values.size


def _index_storage(bits: int, opset: int = MAX_OPSET) -> IndexStorage:
    """The narrowest index type that holds ``bits`` and that ``opset`` allows."""
    return next(s for s in INDEX_STORAGE if bits <= s[0] and s[3] <= opset)


def _divisor_at_most(n: int, limit: int) -> int:
    """The largest divisor of ``n`` not above ``limit`` (groups must tile the channels exactly)."""
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


class ClusterWeightsPass(WeightPass):
    """Replace every selected weight whose spec has ``scheme="lut"`` by a k-means codebook subgraph."""

    def call(self, model: ir.Model) -> PassOutcome:
        chosen = select_weights(model, self.config, "lut").chosen
        names = NameScope(model)
        result = PassOutcome(model, modified=bool(chosen))
        opset, blockers = raise_opset_to_best(model, {_index_storage(spec.index_bits)[3] for _, spec in chosen})
        if blockers:
            result.notes.append(
                f"packed indices need a newer opset, which is not safe to raise to ({', '.join(blockers[:5])}); "
                f"indices stay at opset {opset} types"
            )
        for weight, spec in tqdm(chosen, desc="clustering", unit="tensor", disable=not self.progress):
            result.tensors.append(self._rewrite(weight, spec, _index_storage(spec.index_bits, opset), names))
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
        codebook = cluster_tensor(original, spec, axis, self.config.seed)
        nodes, initializers = self._decode_graph(weight, codebook, storage, original.dtype, names)
        replace_weight(weight, nodes, initializers)
        error, zeros_after = codebook.measure(channel_rows(original, codebook.axis, codebook.group_size))
        zeros_before = np.count_nonzero(original == 0) / original.size
        if zeros_before:
            notes.append(f"sparsity {zeros_before:.1%} -> {zeros_after / original.size:.1%}")
        return tensor_row(
            weight,
            bytes_before=int(original.nbytes),
            bytes_after=sum(v.const_value.nbytes for v in initializers if v.const_value is not None),
            scheme="lut",
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

