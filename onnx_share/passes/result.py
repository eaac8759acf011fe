"""What the weight passes share: their base class and the result every pass returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx_ir as ir

from onnx_share.config import OptimizeConfig
from onnx_share.report import TensorReport
from onnx_share.weights import WeightTensor


class WeightPass(ir.passes.InPlacePass):
    """A pass configured by the whole :class:`OptimizeConfig` (selection globs, specs, its own section), with
    an optional progress bar over the tensors it visits."""

    def __init__(self, config: OptimizeConfig, *, progress: bool = False) -> None:
        super().__init__()
        self.config = config
        self.progress = progress


def tensor_row(weight: WeightTensor, **fields: object) -> TensorReport:
    """A report row for ``weight`` (name, consumers, shape, dtype filled in) with the pass's own ``fields``."""
    fields.setdefault("bytes_before", 0)
    fields.setdefault("bytes_after", 0)
    return TensorReport(
        name=weight.name,
        consumers=list(weight.op_types),
        shape=list(weight.shape),
        dtype=weight.dtype.name,
        **fields,
    )


@dataclass
class PassOutcome(ir.passes.PassResult):
    """A pass result that also says what the pass did.

    ``tensors``: per-tensor rows of the compression passes (cluster / uniform).
    ``changes``: one row per rewrite of the other passes (a merge, a split, a pruned tensor...), each with at
    least ``name``, ``bytes_before``, ``bytes_after`` and ``relative_error`` (0.0 for exact rewrites).
    """

    tensors: list[TensorReport] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
