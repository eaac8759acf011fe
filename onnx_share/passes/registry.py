"""The pass pipeline: pass names map to pass classes, built from the config and run in order by onnx-ir's
``PassManager``; each adds its section to the report, and a failure names the pass and the tensor."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import onnx_ir as ir

from onnx_share.config import OptimizeConfig
from onnx_share.errors import first_line
from onnx_share.passes.base import PassOutcome, TensorError
from onnx_share.passes.compress import CompressPass
from onnx_share.passes.fold_qdq import FoldQdqPass
from onnx_share.passes.fold_shapes import FoldShapesPass
from onnx_share.passes.low_rank import SplitLowRankPass
from onnx_share.passes.prune import PruneWeightsPass
from onnx_share.passes.share import ShareWeightsPass
from onnx_share.report.data import PassSection, Report

if TYPE_CHECKING:
    from onnx_share.calibration.statistics import Statistics
    from onnx_share.passes.forms import CandidateTable

log = logging.getLogger("onnx_share")

# "compress" rewrites every selected weight with its spec's scheme: a codebook or a uniform grid.
PASSES: dict[str, tuple[type[ir.passes.PassBase], ...]] = {
    "fold-shapes": (FoldShapesPass,),
    "fold-qdq": (FoldQdqPass,),
    "share": (ShareWeightsPass,),
    "lowrank": (SplitLowRankPass,),
    "prune": (PruneWeightsPass,),
    "compress": (CompressPass,),
}


class PipelineError(ir.passes.PassError):
    """A pass failed unexpectedly; the message names the pass (and the tensor, when one was being rewritten)."""


class RecordedStep(ir.passes.InPlacePass):
    """One named pipeline step: runs its passes and appends what they did to ``report``."""

    def __init__(self, name: str, passes: Sequence[ir.passes.PassBase], report: Report) -> None:
        super().__init__()
        self.name = name
        self.passes = passes
        self.report = report

    def __str__(self) -> str:
        return self.name

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        start = time.perf_counter()
        outcomes = []
        for step in self.passes:
            try:
                result = step(model)
            except TensorError as exc:
                raise PipelineError(f"pass {self.name!r} failed on {exc}") from exc
            except Exception as exc:
                raise PipelineError(f"pass {self.name!r} failed: {type(exc).__name__}: {first_line(exc)}") from exc
            outcomes.append(result if isinstance(result, PassOutcome) else PassOutcome(result.model, result.modified))
        section = _section(self.name, time.perf_counter() - start, outcomes)
        self.report.passes.append(section)
        self.report.timings_s[self.name] = section.seconds
        for outcome in outcomes:
            self.report.tensors.extend(outcome.tensors)
            self.report.notes.extend(outcome.notes)
        if section.modified:
            log.info("%s: %d change(s), %d -> %d bytes", self.name, section.count, section.bytes_before,
                     section.bytes_after)
        return ir.passes.PassResult(model, section.modified)


def build_passes(
    name: str,
    config: OptimizeConfig,
    *,
    progress: bool = False,
    statistics: Statistics | None = None,
    tables: dict[str, CandidateTable] | None = None,
) -> list[ir.passes.PassBase]:
    """The passes behind pipeline step ``name``, configured from ``config`` (``compress`` also gets the
    calibration ``statistics`` and the candidate ``tables`` to reuse)."""
    extra = {"statistics": statistics, "tables": tables} if name == "compress" else {}
    return [cls.from_config(config, progress=progress, **extra) for cls in PASSES[name]]  # type: ignore[attr-defined]


def wanted_opset(model: ir.Model, config: OptimizeConfig) -> int | None:
    """The default-domain opset the ``compress`` step would use for every selected weight (native packed types,
    blocked ``DequantizeLinear``), or None when the pipeline has no ``compress`` step or nothing to compress."""
    if "compress" not in config.pass_names:
        return None
    wanted = set().union(*(cls(config).opsets_wanted(model) for cls in PASSES["compress"]))
    return max(wanted, default=None)


def run_pipeline(
    model: ir.Model,
    config: OptimizeConfig,
    report: Report,
    *,
    progress: bool = False,
    statistics: Statistics | None = None,
    tables: dict[str, CandidateTable] | None = None,
) -> None:
    """Run ``config.pass_names`` over ``model`` in place, recording a section per pass in ``report``; ``compress``
    uses the calibration ``statistics`` and reuses the fits of candidate ``tables`` when given."""
    steps = [RecordedStep(name, build_passes(name, config, progress=progress, statistics=statistics,
                                             tables=tables), report)
             for name in config.pass_names]
    try:
        ir.passes.PassManager(steps, steps=1)(model)
    except ir.passes.PassError as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, PipelineError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from cause.__cause__


def _section(name: str, seconds: float, outcomes: list[PassOutcome]) -> PassSection:
    compressed = [t for o in outcomes for t in o.tensors if t.scheme is not None]
    rows = compressed + [c for o in outcomes for c in o.changes]
    return PassSection(
        name=name,
        modified=any(o.modified for o in outcomes),
        seconds=seconds,
        count=len(rows),
        bytes_before=sum(row.bytes_before for row in rows),
        bytes_after=sum(row.bytes_after for row in rows),
        max_relative_error=max((row.relative_error or 0.0 for row in rows), default=0.0),
        changes=[c for o in outcomes for c in o.changes],
        notes=[n for o in outcomes for n in o.notes],
    )
