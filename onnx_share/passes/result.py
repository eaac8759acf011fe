"""The result type shared by the passes that rewrite weights."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir

from onnx_share.report import TensorReport


@dataclass
class WeightPassResult(ir.passes.PassResult):
    """A pass result that also lists what happened to each tensor the pass rewrote."""

    tensors: list[TensorReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
