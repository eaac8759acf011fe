"""Magnitude pruning: the smallest-magnitude elements of every selected weight are set to exact 0.0 in place.

The weight keeps its name, shape, dtype and home (initializer or ``Constant`` node, main graph or subgraph);
only its values change. A pruned main-graph initializer that no later pass rewrites can be stored as an ONNX
``sparse_initializer`` (values plus INT64 linear indices) when that is smaller than dense: onnx-ir has no
sparse initializers, so :func:`store_sparse_initializers` converts them on the serialized proto at save time,
and :func:`densify_sparse_initializers` turns them back into dense ones before onnx-ir reads a model.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir
from tqdm import tqdm

from onnx_share.codebook import pruning
from onnx_share.codebook.metrics import relative_error
from onnx_share.config import PruneConfig
from onnx_share.passes.result import PassOutcome, WeightPass
from onnx_share.report import Report
from onnx_share.selection import select_weights
from onnx_share.weights import WeightTensor

log = logging.getLogger("onnx_share")

PASS_NAME = "prune"
# Passes that replace a weight's values after pruning, so its pruned dense form is not what gets saved.
REWRITING_PASSES = frozenset({"lowrank", "cluster"})
SPARSE_STORAGE, DENSE_STORAGE = "sparse", "dense"


class PruneWeightsPass(WeightPass):
    """Zero the smallest-magnitude weights of every selected tensor (per tensor or under one global cut)."""

    def call(self, model: ir.Model) -> PassOutcome:
        options = self.config.prune
        result = PassOutcome(model, modified=False)
        if not options.enabled:
            result.notes.append("prune: no fraction or threshold set; nothing pruned")
            return result
        weights = [weight for weight, _ in select_weights(model, self.config).chosen]
        rewritten_by = self._later_rewriting_passes()
        masks = None
        if options.fraction is not None and options.scope == "global":
            masks = pruning.global_fraction_masks([w.numpy() for w in weights], options.fraction)
        unchanged = []
        for i, weight in enumerate(tqdm(weights, desc="pruning", unit="tensor", disable=not self.progress)):
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
            _set_values(weight, pruned)
            main = weight.graph is model.graph and weight.constant_node is None
            result.changes.append(_row(weight, original, pruned, mask, options, rewritten_by, main))
            result.modified = True
        if masks is not None:
            result.notes.append(_global_note(result.changes, masks, options.fraction or 0.0))
        if unchanged:
            shown = ", ".join(unchanged[:5]) + (f" and {len(unchanged) - 5} more" if len(unchanged) > 5 else "")
            result.notes.append(f"prune: {len(unchanged)} selected tensor(s) gained no zeros: {shown}")
        return result

    def _later_rewriting_passes(self) -> list[str]:
        names = list(self.config.pass_names)
        later = names[names.index(PASS_NAME) + 1 :] if PASS_NAME in names else []
        return [name for name in later if name in REWRITING_PASSES]


def _set_values(weight: WeightTensor, values: np.ndarray) -> None:
    """Replace W's values, keeping its name, dtype and where it lives."""
    tensor = ir.tensor(values, dtype=weight.dtype, name=weight.name)
    if weight.constant_node is not None:
        weight.constant_node.attributes["value"] = ir.AttrTensor("value", tensor)
        if weight.value.const_value is not None:
            weight.value.const_value = tensor
    else:
        weight.value.const_value = tensor


def _row(
    weight: WeightTensor,
    original: np.ndarray,
    pruned: np.ndarray,
    mask: np.ndarray,
    options: PruneConfig,
    rewritten_by: list[str],
    main_initializer: bool,
) -> dict:
    dense = int(pruned.nbytes)
    nonzeros = int(np.count_nonzero(pruned))
    sparse = pruning.sparse_nbytes(nonzeros, pruned.dtype.itemsize)
    storage, reason = _storage(dense, sparse, options, rewritten_by, main_initializer)
    cut = float(np.abs(original[mask].astype(np.float64)).max()) if mask.any() else 0.0
    return {
        "name": weight.name,
        "consumers": list(weight.op_types),
        "shape": list(weight.shape),
        "dtype": weight.dtype.name,
        "bytes_before": dense,
        "bytes_after": sparse if storage == SPARSE_STORAGE else dense,
        "relative_error": relative_error(original, pruned),
        "sparsity_before": pruning.sparsity(original),
        "sparsity_after": pruning.sparsity(pruned),
        "max_pruned_magnitude": cut,
        "storage": storage,
        "storage_reason": reason,
    }


def _storage(
    dense: int, sparse: int, options: PruneConfig, rewritten_by: list[str], main_initializer: bool
) -> tuple[str, str]:
    """Dense or sparse storage for a pruned tensor, and why."""
    if not options.sparse:
        return DENSE_STORAGE, "sparse storage is off (prune.sparse)"
    if rewritten_by:
        return DENSE_STORAGE, f"rewritten afterwards by {', '.join(rewritten_by)}"
    if not main_initializer:
        return DENSE_STORAGE, "only main-graph initializers can be sparse initializers"
    if sparse >= dense:
        return DENSE_STORAGE, f"sparse form ({sparse} bytes with INT64 indices) is not smaller than dense"
    return SPARSE_STORAGE, f"sparse form ({sparse} bytes with INT64 indices) is smaller than dense ({dense})"


def _global_note(rows: list[dict], masks: list[np.ndarray], fraction: float) -> str:
    total = sum(m.size for m in masks)
    zeroed = sum(int(m.sum()) for m in masks)
    cut = max((float(row["max_pruned_magnitude"]) for row in rows), default=0.0)
    return (
        f"prune: global cut |w| <= {cut:.6g} zeroes {zeroed} of {total} weights "
        f"({zeroed / max(total, 1):.1%}, asked {fraction:.1%}) over {len(masks)} tensor(s)"
    )


def sparse_candidates(report: Report) -> list[str]:
    """Names of the tensors the prune pass chose sparse storage for (what the save step converts)."""
    return [
        str(change["name"])
        for section in report.passes
        if section.name == PASS_NAME
        for change in section.changes
        if change.get("storage") == SPARSE_STORAGE
    ]
