"""Magnitude pruning: the smallest-magnitude elements of every selected weight are set to exact 0.0 in place.

The weight keeps its name, shape, dtype and home (main graph or subgraph); only its values change. With
``prune.sparse`` a pruned main-graph initializer is marked (``SPARSE_META_KEY`` in its ``meta``) and the save
step stores it as an ONNX ``sparse_initializer`` (values plus INT64 linear indices) when that is smaller than
dense. A later pass that rewrites the tensor replaces the value, and the mark goes with it.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from onnx_share.io.save import SPARSE_META_KEY
from onnx_share.ir.selection import select_weights
from onnx_share.ir.weights import WeightTensor
from onnx_share.numerics import pruning
from onnx_share.numerics.metrics import relative_error
from onnx_share.passes.base import ORIGINAL_META_KEY, PassOutcome, WeightPass, tensor_row
from onnx_share.report.data import TensorReport

log = logging.getLogger("onnx_share")


class PruneWeightsPass(WeightPass):
    """Zero the smallest-magnitude weights of every selected tensor (per tensor or under one global cut)."""

    name = "prune"

    def call(self, model: ir.Model) -> PassOutcome:
        options = self.config.prune
        result = PassOutcome(model, modified=False)
        if not options.enabled:
            result.notes.append("prune: no fraction or threshold set; nothing pruned")
            return result
        weights = [weight for weight, _ in select_weights(model, self.config).chosen]
        masks = None
        if options.fraction is not None and options.scope == "global":
            masks = pruning.global_fraction_masks([w.numpy() for w in weights], options.fraction)
        unchanged = []
        for i, weight in enumerate(self.progress_bar(weights)):
            original = weight.numpy()
            if masks is not None:
                mask = masks[i]
            elif options.fraction is not None:
                mask = pruning.fraction_mask(original, options.fraction)
            else:
                mask = pruning.threshold_mask(original, options.threshold or 0.0)
            pruned = pruning.apply_mask(original, mask)
            if np.count_nonzero(pruned == 0) == np.count_nonzero(original == 0):
                unchanged.append(weight.name)
                continue
            weight.value.meta.setdefault(ORIGINAL_META_KEY, weight.value.const_value)
            weight.value.const_value = ir.tensor(pruned, dtype=weight.dtype, name=weight.name)
            if options.sparse and weight.graph is model.graph:
                weight.value.meta[SPARSE_META_KEY] = True
            result.changes.append(_row(weight, original, pruned, mask))
            result.modified = True
        if masks is not None:
            result.notes.append(_global_note(result.changes, masks, options.fraction or 0.0))
        if unchanged:
            shown = ", ".join(unchanged[:5]) + (f" and {len(unchanged) - 5} more" if len(unchanged) > 5 else "")
            result.notes.append(f"prune: {len(unchanged)} selected tensor(s) gained no zeros: {shown}")
        return result


def _row(weight: WeightTensor, original: np.ndarray, pruned: np.ndarray, mask: np.ndarray) -> TensorReport:
    dense = int(pruned.nbytes)
    sparse = pruning.sparse_nbytes(int(np.count_nonzero(pruned)), pruned.dtype.itemsize)
    cut = float(np.abs(original[mask].astype(np.float64)).max()) if mask.any() else 0.0
    return tensor_row(
        weight,
        change="prune",
        bytes_before=dense,
        bytes_after=dense,
        relative_error=relative_error(original, pruned),
        details={
            "sparsity_before": pruning.sparsity(original),
            "sparsity_after": pruning.sparsity(pruned),
            "max_pruned_magnitude": cut,
            "sparse_bytes": sparse,
        },
    )


def _global_note(rows: list[TensorReport], masks: list[np.ndarray], fraction: float) -> str:
    total = sum(m.size for m in masks)
    zeroed = sum(int(m.sum()) for m in masks)
    cut = max((float(row.details["max_pruned_magnitude"]) for row in rows), default=0.0)
    return (
        f"prune: global cut |w| <= {cut:.6g} zeroes {zeroed} of {total} weights "
        f"({zeroed / max(total, 1):.1%}, asked {fraction:.1%}) over {len(masks)} tensor(s)"
    )
