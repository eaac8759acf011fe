"""``onnx-share inspect``: the model's constant tensors by size, what would be compressed, and the bytes each
would take in the file, from the size model the ``compress`` step uses (:mod:`~onnx_share.passes.forms`) at the
opset it would reach, after the pipeline's graph cleanups (:data:`CLEANUP_PASSES`; lowrank and prune are not run).
For ``auto`` codebooks the estimate is the requested width per tensor: the budget the chosen form stays within."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import onnx_ir as ir

from onnx_share.config import OptimizeConfig, WeightSpec
from onnx_share.io.load import ModelSource, default_opset, load_model
from onnx_share.ir.opset import opset_blockers
from onnx_share.ir.selection import select_weights
from onnx_share.passes.base import not_smaller
from onnx_share.passes.forms import CandidateTable, requested_form, wanted_opsets
from onnx_share.passes.registry import build_passes

# Passes inspect runs before it estimates (cheap, and they change which tensors there are): the rest only rewrite
# values.
CLEANUP_PASSES = frozenset({"fold-shapes", "fold-qdq", "share"})


@dataclass
class TensorRow:
    name: str
    shape: list[int]
    dtype: str
    consumers: list[str]
    bytes: int
    action: str
    estimated_bytes: int


def reachable_opset(model: ir.Model, targets: set[int]) -> int:
    """The default-domain opset the model has, or the highest of ``targets`` it can be raised to safely (what
    :func:`~onnx_share.ir.opset.raise_opset_to_best` would reach), without changing the model."""
    current = default_opset(model) or 0
    return max([current, *(t for t in targets if not opset_blockers(model, t))])


def inspect_model(model: ModelSource, config: OptimizeConfig) -> tuple[list[TensorRow], dict[str, object]]:
    """Rows for every constant tensor (largest first) and a summary of the model."""
    loaded = load_model(model)
    for name in config.pass_names:
        if name in CLEANUP_PASSES:
            for step in build_passes(name, config):
                step(loaded)
    selection = select_weights(loaded, config)
    opset = reachable_opset(loaded, set().union(*(wanted_opsets(w, spec) for w, spec in selection.chosen)))
    rows = []
    for weight, spec in selection.chosen:
        table = CandidateTable(weight, opset, spec, target=config.target)
        form = requested_form(weight, spec, opset, config.target)
        cost = table.cost(form)
        action = form.label + (", or a finer grouping of fewer bits within that size" if _auto_codebook(spec) else "")
        if not_smaller(weight, cost) is not None:
            action, cost = "left as is: the compressed form would not be smaller", table.stored_cost
        rows.append(
            TensorRow(weight.name, list(weight.shape), weight.dtype.name, list(weight.op_types),
                      weight.tensor.nbytes, action, cost)
        )
    for skipped in selection.skipped:
        size = int(np.prod(skipped.shape, dtype=np.int64))
        nbytes = math.ceil(size * _itemsize(skipped.dtype))
        rows.append(
            TensorRow(
                skipped.name, skipped.shape, skipped.dtype, skipped.consumers, nbytes, f"skip: {skipped.skipped}",
                nbytes,
            )
        )
    rows.sort(key=lambda r: (-r.bytes, r.name))
    summary: dict[str, object] = {
        "ir_version": loaded.ir_version,
        "opset": default_opset(loaded),
        "nodes": sum(1 for _ in ir.traversal.RecursiveGraphIterator(loaded.graph)),
        "tensors": len(rows),
        "compressible": len(selection.chosen),
        "tensor_bytes": sum(r.bytes for r in rows),
        "estimated_tensor_bytes": sum(r.estimated_bytes for r in rows),
    }
    return rows, summary


def format_rows(rows: list[TensorRow], summary: dict[str, object], top: int) -> str:
    lines = [f"{'tensor':<40} {'shape':<18} {'dtype':<8} {'ops':<16} {'bytes':>10} {'est.':>10}  action"]
    for row in rows[:top]:
        shape = "x".join(map(str, row.shape)) or "scalar"
        lines.append(
            f"{row.name[-40:]:<40} {shape[:18]:<18} {row.dtype[:8]:<8} {','.join(row.consumers)[:16]:<16} "
            f"{row.bytes:>10} {row.estimated_bytes:>10}  {row.action}"
        )
    if len(rows) > top:
        lines.append(f"... {len(rows) - top} more tensors (use --top)")
    before, after = summary["tensor_bytes"], summary["estimated_tensor_bytes"]
    lines.append(
        f"IR {summary['ir_version']}, opset {summary['opset']}, {summary['nodes']} nodes; "
        f"{summary['compressible']} of {summary['tensors']} tensors compressible; "
        f"tensor bytes {before} -> ~{after} estimated"
    )
    return "\n".join(lines)


def rows_as_dicts(rows: list[TensorRow]) -> list[dict[str, object]]:
    return [asdict(r) for r in rows]


def _auto_codebook(spec: WeightSpec) -> bool:
    return spec.scheme == "codebook" and spec.granularity == "auto"


def _itemsize(dtype_name: str) -> float:
    try:
        return ir.DataType[dtype_name].itemsize
    except (KeyError, TypeError):
        return 0.0
