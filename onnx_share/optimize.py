"""The Python API: ``optimize(model, config)`` rewrites a model and returns it with its report."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import onnx_ir as ir

from onnx_share import __version__
from onnx_share.config import OptimizeConfig, ValidationConfig
from onnx_share.errors import OnnxShareError
from onnx_share.model_io import (
    MAX_IR_VERSION,
    PROTOBUF_LIMIT_BYTES,
    ModelSource,
    default_opset,
    estimated_size_bytes,
    load_model,
    same_file,
    save_model,
)
from onnx_share.opset import min_ir_version
from onnx_share.passes.prune_weights import sparse_candidates
from onnx_share.pipeline import run_pipeline
from onnx_share.report import Report, ValidationReport
from onnx_share.selection import select_weights
from onnx_share.validation import compare_models

log = logging.getLogger("onnx_share")


@dataclass
class OptimizeResult:
    """The rewritten model, its report, and the means to save and validate it."""

    model: ir.Model
    report: Report
    source: ModelSource
    saved_path: Path | None = None

    def save(self, path: str | os.PathLike, *, external_data: bool | None = None) -> Path:
        """Write the model atomically; never onto the file it was read from."""
        if isinstance(self.source, str | os.PathLike) and same_file(self.source, path):
            raise OnnxShareError(f"output {path} is the input file; choose another output path")
        if external_data is None:
            external_data = self.report.config.get("external_data")
        if external_data is None:
            external_data = estimated_size_bytes(self.model) >= PROTOBUF_LIMIT_BYTES
        start = time.perf_counter()
        self.saved_path = save_model(
            self.model, path, external_data=external_data, sparse=sparse_candidates(self.report)
        )
        self.report.timings_s["save"] = time.perf_counter() - start
        self.report.output_path = str(self.saved_path)
        data_file = self.saved_path.with_name(self.saved_path.name + ".data")
        self.report.file_bytes_after = self.saved_path.stat().st_size + (
            data_file.stat().st_size if external_data else 0
        )
        return self.saved_path

    def validate(self, config: ValidationConfig | None = None) -> ValidationReport:
        """Compare the saved model with the original in onnxruntime; the result also goes in the report."""
        if self.saved_path is None:
            raise OnnxShareError("save the optimized model before validating it")
        if config is None:
            config = OptimizeConfig.from_dict(self.report.config).validation
        start = time.perf_counter()
        self.report.validation = compare_models(_as_model_file(self.source), self.saved_path, config)
        self.report.timings_s["validate"] = time.perf_counter() - start
        return self.report.validation


def optimize(
    model: ModelSource,
    config: OptimizeConfig | Mapping[str, Any] | None = None,
    *,
    progress: bool = False,
) -> OptimizeResult:
    """Compress the weights of ``model`` (a path, ``onnx.ModelProto`` or ``ir.Model``; never modified)."""
    if config is None:
        config = OptimizeConfig()
    elif not isinstance(config, OptimizeConfig):
        config = OptimizeConfig.from_dict(config)
    start = time.perf_counter()
    loaded = load_model(model.clone() if isinstance(model, ir.Model) else model)
    report = Report(tool_version=__version__, config=config.to_dict())
    report.timings_s["load"] = time.perf_counter() - start
    if isinstance(model, str | os.PathLike):
        report.input_path = str(model)
        report.file_bytes_before = _model_file_bytes(Path(model), loaded)
    elif isinstance(model, onnx.ModelProto):
        report.file_bytes_before = model.ByteSize()
    report.opset_before = default_opset(loaded)

    start = time.perf_counter()
    skipped = select_weights(loaded, config).skipped
    report.timings_s["discover"] = time.perf_counter() - start
    for row in skipped:
        log.debug("skip %s: %s", row.name, row.skipped)
    report.tensors.extend(skipped)

    run_pipeline(loaded, config, report, progress=progress)

    report.opset_after = default_opset(loaded)
    if report.opset_after is not None:
        loaded.ir_version = min(max(loaded.ir_version, min_ir_version(report.opset_after)), MAX_IR_VERSION)
    if not any(section.modified for section in report.passes):
        report.notes.append("nothing new to compress: no selected weight is left in float form")
    return OptimizeResult(loaded, report, model)


def _model_file_bytes(path: Path, model: ir.Model) -> int:
    """Size of an ONNX file plus the external data files its tensors reference."""
    locations = {
        Path(value.const_value.location)
        for graph in model.graphs()
        for value in graph.initializers.values()
        if isinstance(value.const_value, ir.ExternalTensor)
    }
    return path.stat().st_size + sum(
        (path.parent / loc).stat().st_size for loc in locations if (path.parent / loc).is_file()
    )


def _as_model_file(source: ModelSource) -> str | os.PathLike | bytes:
    if isinstance(source, str | os.PathLike):
        return source
    if isinstance(source, ir.Model):
        source = ir.to_proto(source)
    return source.SerializeToString()
