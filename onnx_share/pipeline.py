"""The pass pipeline: pass names map to pass objects, run in order, each adding its section to the report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import onnx_ir as ir

from onnx_share.config import OptimizeConfig
from onnx_share.passes.cluster_weights import ClusterWeightsPass
from onnx_share.passes.fold_qdq import FoldQdqPass
from onnx_share.passes.prune_weights import PruneWeightsPass
from onnx_share.passes.quantize_weights import QuantizeWeightsPass
from onnx_share.passes.result import PassOutcome
from onnx_share.passes.share_weights import ShareWeightsPass
from onnx_share.passes.split_low_rank import SplitLowRankPass
from onnx_share.report import PassSection, Report

log = logging.getLogger("onnx_share")

PassFactory = Callable[[OptimizeConfig, bool], list[ir.passes.PassBase]]

# "cluster" compresses every selected weight with its spec's scheme: k-means codebooks (lut) or uniform grids.
PASS_FACTORIES: dict[str, PassFactory] = {
    "fold-qdq": lambda config, progress: [FoldQdqPass()],
    "share": lambda config, progress: [ShareWeightsPass(config.share, min_elements=config.min_elements)],
    "lowrank": lambda config, progress: [SplitLowRankPass(config, progress=progress)],
    "prune": lambda config, progress: [PruneWeightsPass(config, progress=progress)],
    "cluster": lambda config, progress: [
        ClusterWeightsPass(config, progress=progress),
        QuantizeWeightsPass(config, progress=progress),
    ],
}


def run_pipeline(model: ir.Model, config: OptimizeConfig, report: Report, *, progress: bool = False) -> None:
    """Run ``config.pass_names`` over ``model`` in place, recording a section per pass in ``report``."""
    for name in config.pass_names:
        factory = PASS_FACTORIES[name]
        start = time.perf_counter()
        outcomes = [_run(p, model) for p in factory(config, progress)]
        section = _section(name, time.perf_counter() - start, outcomes)
        report.passes.append(section)
        report.timings_s[name] = section.seconds
        for outcome in outcomes:
            report.tensors.extend(outcome.tensors)
            report.notes.extend(outcome.notes)
        if section.modified:
            log.info("%s: %d change(s), %d -> %d bytes", name, section.count, section.bytes_before, section.bytes_after)


def _run(weight_pass: ir.passes.PassBase, model: ir.Model) -> PassOutcome:
    result = weight_pass(model)
    if not isinstance(result, PassOutcome):
        return PassOutcome(result.model, result.modified)
    return result


def _section(name: str, seconds: float, outcomes: list[PassOutcome]) -> PassSection:
    compressed = [t for o in outcomes for t in o.tensors if t.scheme is not None]
    changes = [c for o in outcomes for c in o.changes]
    errors = [t.relative_error or 0.0 for t in compressed] + [float(c.get("relative_error", 0.0)) for c in changes]
    return PassSection(
        name=name,
        modified=any(o.modified for o in outcomes),
        seconds=seconds,
        count=len(compressed) + len(changes),
        bytes_before=sum(t.bytes_before for t in compressed) + sum(int(c.get("bytes_before", 0)) for c in changes),
        bytes_after=sum(t.bytes_after for t in compressed) + sum(int(c.get("bytes_after", 0)) for c in changes),
        max_relative_error=max(errors, default=0.0),
        changes=changes,
        notes=[n for o in outcomes for n in o.notes],
    )
