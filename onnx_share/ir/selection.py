"""Which discovered weights a run compresses, with which spec, and report rows for everything left alone."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir

from onnx_share.config import OptimizeConfig, Scheme, WeightSpec
from onnx_share.ir.weights import WeightTensor, find_weights
from onnx_share.report.data import TensorReport


@dataclass
class Selection:
    chosen: list[tuple[WeightTensor, WeightSpec]] = field(default_factory=list)
    skipped: list[TensorReport] = field(default_factory=list)


def select_weights(model: ir.Model, config: OptimizeConfig, scheme: Scheme | None = None) -> Selection:
    """Weights to compress (only those whose spec uses ``scheme`` when given) and skip rows for the rest."""
    discovery = find_weights(model, min_elements=config.min_elements)
    selection = Selection()
    for skipped in discovery.skipped:
        selection.skipped.append(_skip_row(skipped.name, skipped.consumers, skipped.shape, skipped.dtype,
                                           skipped.reason))
    for weight in discovery.weights:
        spec = config.spec_for(weight.name, weight.op_types)
        reason = None
        if not config.selects(weight.name):
            reason = "not selected by --include/--exclude"
        elif spec.skip:
            reason = "skip set by config"
        if reason is not None:
            selection.skipped.append(
                _skip_row(weight.name, weight.op_types, weight.shape, weight.dtype.name, reason)
            )
        elif scheme is None or spec.scheme == scheme:
            selection.chosen.append((weight, spec))
    return selection


def _skip_row(
    name: str, consumers: tuple[str, ...], shape: tuple[int, ...], dtype: str, reason: str
) -> TensorReport:
    return TensorReport(
        name=name,
        consumers=list(consumers),
        shape=list(shape),
        dtype=dtype,
        bytes_before=0,
        bytes_after=0,
        skipped=reason,
    )
