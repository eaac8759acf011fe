"""The Python API: ``optimize`` rewrites a model and returns it with its report and config; ``compare`` measures
how far a rewritten model is from its original, output by output, layer by layer and weight by weight."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
import onnx_ir as ir

from onnx_share._version import __version__
from onnx_share.config import OptimizeConfig, ValidationConfig
from onnx_share.errors import OnnxShareError
from onnx_share.io.load import MAX_IR_VERSION, ModelSource, default_opset, input_files, load_model
from onnx_share.io.proto import ModelFile, ProtoModel
from onnx_share.io.save import PROTOBUF_LIMIT_BYTES, data_file, estimated_size_bytes, same_file, save_model
from onnx_share.io.spill import TensorSpill, attach
from onnx_share.ir.opset import convert_opset, min_ir_version, opset_blockers
from onnx_share.ir.selection import select_weights
from onnx_share.passes.registry import run_pipeline, wanted_opset
from onnx_share.report.data import CalibrationReport, CompareReport, OpsetConversion, Report, ValidationReport

if TYPE_CHECKING:
    import numpy as np

    from onnx_share.budget.search import Score
    from onnx_share.calibration.statistics import Statistics
    from onnx_share.check.feeds import Feeds
    from onnx_share.ir.weights import WeightTensor
    from onnx_share.targets.tensorrt import TensorRTOptions

log = logging.getLogger("onnx_share")


@dataclass
class OptimizeResult:
    """The rewritten model, its report and the config that made it, and the means to save and validate it."""

    model: ir.Model
    report: Report
    config: OptimizeConfig
    source: ModelSource
    input_files: list[Path] = field(default_factory=list)
    saved_path: Path | None = None
    held_out: Feeds | None = None

    def save(self, path: str | os.PathLike, *, external_data: bool | None = None) -> Path:
        """Write the model atomically; never onto the file it was read from nor onto a data file it reads.

        ``external_data`` (default: the config's): True writes the tensors to ``<path>.data``, False one file
        (refused over 2 GB), None external data where the input had it or the output would not fit one file.
        """
        if self.input_files and same_file(self.input_files[0], path):
            raise OnnxShareError(f"output {path} is the input file; choose another output path")
        if external_data is None:
            external_data = self.config.external_data
        too_big = estimated_size_bytes(self.model) >= PROTOBUF_LIMIT_BYTES
        if external_data is False and too_big:
            raise OnnxShareError(f"{path}: the model is over 2 GB, so it cannot be one file; save with external data")
        if external_data is None:
            external_data = too_big or len(self.input_files) > 1
        start = time.perf_counter()
        self.saved_path = save_model(self.model, path, external_data=external_data, protected=self.input_files)
        self.report.timings_s["save"] = time.perf_counter() - start
        self.report.output_path = str(self.saved_path)
        written = [self.saved_path, data_file(self.saved_path)] if external_data else [self.saved_path]
        self.report.file_bytes_after = sum(p.stat().st_size for p in written if p.is_file())
        return self.saved_path

    def validate(self, config: ValidationConfig | None = None) -> ValidationReport:
        """Compare the saved model with the original in onnxruntime (on the held-out calibration samples when there
        are some and ``config`` names no inputs); the result also goes in the report."""
        from onnx_share.check.validation import compare_models

        if self.saved_path is None:
            raise OnnxShareError("save the optimized model before validating it")
        config = config or self.config.validation
        start = time.perf_counter()
        self.report.validation = compare_models(
            _as_model_file(self.source), self.saved_path, config, None if config.inputs else self.held_out
        )
        self.report.timings_s["validate"] = time.perf_counter() - start
        return self.report.validation


def optimize(
    model: ModelSource,
    config: OptimizeConfig | Mapping[str, Any] | None = None,
    *,
    progress: bool = False,
    data: Iterable[Mapping[str, np.ndarray]] | None = None,
    score: Score | None = None,
    scratch: str | os.PathLike | None = None,
) -> OptimizeResult:
    """Compress the weights of ``model`` (a path, ``onnx.ModelProto`` or ``ir.Model``; never modified).

    ``data``: calibration samples as feed dicts (one sample each), added to the files ``config.calibration.data``
    names; with any, the weights are fitted to the activations they multiply and validation runs on the held-out
    samples. With ``config.budget`` set, every weight's scheme, bits and granularity are searched to meet it
    (:mod:`onnx_share.budget.search`); ``score(model_path) -> float`` (higher is better) is the task metric a
    ``budget.max_drop`` bounds. The result's ``config`` then reproduces the chosen model without searching.

    A model read from a path with external data is rewritten in bounded memory: each compressed weight's tensors
    go to a temporary data file in ``scratch`` (default: the system's temporary folder) as soon as they are made,
    and the result reads them from there until it is saved (external data again, by default).
    """
    if config is None:
        config = OptimizeConfig()
    elif not isinstance(config, OptimizeConfig):
        config = OptimizeConfig.from_dict(config)
    if score is not None and config.budget.max_drop is None:
        raise OnnxShareError("a score function needs budget.max_drop: how far the score may fall")
    start = time.perf_counter()
    loaded = load_model(model.clone() if isinstance(model, ir.Model) else model)
    report = Report(tool_version=__version__, config=config.to_dict())
    report.timings_s["load"] = time.perf_counter() - start
    files = input_files(model, loaded) if isinstance(model, str | os.PathLike) else []
    if files:
        report.input_path = str(model)
        report.file_bytes_before = sum(p.stat().st_size for p in files if p.is_file())
    elif isinstance(model, onnx.ModelProto):
        report.file_bytes_before = model.ByteSize()
    report.opset_before = default_opset(loaded)

    start = time.perf_counter()
    selection = select_weights(loaded, config)
    skipped = selection.skipped
    report.timings_s["discover"] = time.perf_counter() - start
    for row in skipped:
        log.debug("skip %s: %s", row.name, row.skipped)

    statistics, held_out = None, None
    if config.calibration.data or data is not None:
        start = time.perf_counter()
        weights = [weight for weight, _ in selection.chosen]
        statistics, held_out, report.calibration = _calibrate(model, loaded.graph, weights, config, data)
        report.timings_s["calibrate"] = time.perf_counter() - start

    converted: dict[int, tuple[ir.Model, OpsetConversion]] = {}

    def prepared(target: int | None) -> tuple[ir.Model, OpsetConversion | None]:
        """The loaded model, converted to opset ``target`` where raising its opset is not enough (once per
        opset; the loaded model where the conversion was not kept)."""
        current = default_opset(loaded)
        if target is None or current is None or current >= target or not opset_blockers(loaded, target):
            return loaded, None
        if target not in converted:
            start = time.perf_counter()
            converted[target] = _convert(loaded, target, files[0].parent if files else None, config)
            report.timings_s["convert"] = report.timings_s.get("convert", 0.0) + time.perf_counter() - start
        return converted[target]

    tables = None
    if config.budget.enabled:
        from onnx_share.budget.search import search_budget

        start = time.perf_counter()
        found = search_budget(loaded, config, statistics, held_out, ProtoModel.read(_as_model_file(model)),
                              lambda target: prepared(target)[0], score)
        report.budget, config, tables = found.report, found.config, found.tables
        report.timings_s["budget"] = time.perf_counter() - start

    loaded, report.conversion = prepared(wanted_opset(loaded, config))
    if report.conversion is not None:
        report.notes.append(_conversion_note(report.conversion))
    if len(files) > 1:
        attach(loaded, TensorSpill(scratch))
    run_pipeline(loaded, config, report, progress=progress, statistics=statistics, tables=tables)
    # Skip rows of tensors a pass removed (folded shapes, merged duplicates) go: their pass reported them.
    remaining = {name for graph in loaded.graphs() for name in graph.initializers}
    report.tensors[:0] = [row for row in skipped if row.name in remaining]

    report.opset_after = default_opset(loaded)
    if report.opset_after is not None:
        loaded.ir_version = min(max(loaded.ir_version, min_ir_version(report.opset_after)), MAX_IR_VERSION)
    if not any(section.modified for section in report.passes):
        report.notes.append("nothing new to compress: no selected weight is left in float form")
    return OptimizeResult(loaded, report, config, model, files, held_out=held_out)


def _calibrate(
    source: ModelSource,
    main: ir.Graph,
    weights: list[WeightTensor],
    config: OptimizeConfig,
    data: Iterable[Mapping[str, np.ndarray]] | None,
) -> tuple[Statistics, Feeds, CalibrationReport]:
    """Read and split the calibration samples, and measure on the original model the activations of ``weights``
    (the weights to compress, in the loaded model whose main graph is ``main``)."""
    from onnx_share.calibration.data import checked_samples, read_samples, split_samples
    from onnx_share.calibration.statistics import collect_statistics
    from onnx_share.check.feeds import Feeds

    original = ProtoModel.read(_as_model_file(source))
    samples, notes = read_samples(original.proto, config.calibration.data) if config.calibration.data else ([], [])
    if data is not None:
        given, given_notes = checked_samples(original.proto, data)
        samples.extend(given)
        notes.extend(given_notes)
    split = split_samples(samples, config.calibration.samples, config.calibration.seed)
    statistics = collect_statistics(original.proto, original.folder, weights, main, split.calibration,
                                    split.held_out, seed=config.calibration.seed)
    skipped = [f"{name}: {reason}" for name, reason in statistics.skipped.items()]
    if skipped:
        notes.append(f"{len(skipped)} weight(s) data-free: " + "; ".join(skipped[:5])
                     + (" ..." if len(skipped) > 5 else ""))
    held_out = Feeds(split.held_out, f"held-out calibration samples ({len(split.held_out)})", synthetic=False)
    report = CalibrationReport(split.description, len(split.calibration), len(split.held_out), statistics.seconds,
                               statistics.gram_bytes, len(statistics.sites), [*split.notes, *notes])
    return statistics, held_out, report


def compare(
    original: ModelFile,
    rewritten: ModelFile,
    config: ValidationConfig | Mapping[str, Any] | None = None,
    *,
    tensorrt: TensorRTOptions | None = None,
    command: str | None = None,
) -> CompareReport:
    """Compare ``rewritten`` with ``original`` (paths or serialized models; neither is modified).

    ``config``: a :class:`ValidationConfig` or its dict form (default: layer-wise on, generated inputs).
    ``tensorrt``: :class:`onnx_share.targets.tensorrt.TensorRTOptions` to also build and compare a TensorRT
    engine of ``rewritten`` (a path); without TensorRT or a GPU the report says why it did not run.
    """
    from onnx_share.check.validation import compare_models
    from onnx_share.check.weight_diff import WeightDiff

    if config is None:
        config = ValidationConfig(layerwise=True)
    elif not isinstance(config, ValidationConfig):
        config = OptimizeConfig.from_dict({"validation": dict(config)}).validation
    timings: dict[str, float] = {}
    start = time.perf_counter()
    validation = compare_models(original, rewritten, config)
    timings["compare"] = time.perf_counter() - start
    start = time.perf_counter()
    before, after = ProtoModel.read(original), ProtoModel.read(rewritten)
    tensors = WeightDiff(before, after).rows()
    timings["weights"] = time.perf_counter() - start
    report = CompareReport(
        tool_version=__version__,
        original_path=None if isinstance(original, bytes) else str(original),
        rewritten_path=None if isinstance(rewritten, bytes) else str(rewritten),
        config={"validation": OptimizeConfig(validation=config).to_dict()["validation"],
                "tensorrt": None if tensorrt is None else dataclasses.asdict(tensorrt)},
        validation=validation,
        tensors=tensors,
        file_bytes_before=before.file_bytes(),
        file_bytes_after=after.file_bytes(),
        timings_s=timings,
        command=command,
    )
    if tensorrt is not None:
        from onnx_share.targets.tensorrt import run_tensorrt

        start = time.perf_counter()
        report.targets.append(run_tensorrt(str(rewritten), config, tensorrt))
        timings["tensorrt"] = time.perf_counter() - start
    return report


def _convert(
    model: ir.Model, target: int, folder: Path | None, config: OptimizeConfig
) -> tuple[ir.Model, OpsetConversion]:
    """``model`` converted to opset ``target`` when onnxruntime gives the same outputs on the validation inputs
    (the user's, else synthesized ones), else ``model`` itself; and what was tried."""
    from onnx_share.check.conversion import AGREEMENT_TOLERANCE, output_disagreement
    from onnx_share.check.feeds import prepare_feeds

    before = default_opset(model) or 0
    original = ir.to_proto(model)
    try:
        converted = convert_opset(original, target)
        feeds = prepare_feeds(original, config.validation)
        difference = output_disagreement(
            ProtoModel(original, original.SerializeToString(), folder),
            ProtoModel(converted, converted.SerializeToString(), folder),
            feeds,
        )
    except (ValueError, OnnxShareError) as exc:
        return model, OpsetConversion(before, target, False, "", reason=str(exc))
    if not difference <= AGREEMENT_TOLERANCE:
        reason = f"outputs differ by {difference:.3g} of their scale (more than float rounding)"
        return model, OpsetConversion(before, target, False, feeds.source, difference, reason)
    converted_model = load_model(converted)
    if folder is not None:
        ir.external_data.set_base_dir(converted_model.graph, folder)
    return converted_model, OpsetConversion(before, target, True, feeds.source, difference)


def _conversion_note(conversion: OpsetConversion) -> str:
    head = f"opset {conversion.from_opset} -> {conversion.to_opset} with onnx's version converter"
    if conversion.kept:
        return (f"{head}: kept, outputs agree within {conversion.max_relative_difference:.2g} of their scale on "
                f"{conversion.inputs}")
    return f"{head}: not kept ({conversion.reason})"


def _as_model_file(source: ModelSource) -> ModelFile:
    if isinstance(source, str | os.PathLike):
        return source
    if isinstance(source, ir.Model):
        source = ir.to_proto(source)
    return source.SerializeToString()
