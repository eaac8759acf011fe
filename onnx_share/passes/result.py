"""The result type every onnx-share pass returns: what it changed, as report rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx_ir as ir

from onnx_share.report import TensorReport


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
