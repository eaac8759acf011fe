"""TensorRT through Polygraphy: build an engine from an ONNX model, run it beside onnxruntime, time it.

TensorRT is an optional extra (``pip install 'onnx-share[trt]'`` where the TensorRT libraries and an NVIDIA GPU
are present). Without it, or without a GPU, :func:`run_tensorrt` returns a report whose ``reason`` says so in
one line ("TensorRT not available: ..."); ``tensorrt`` is imported only when this module is used.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from polygraphy.backend.base import BaseRunner

from onnx_share.check.feeds import prepare_feeds
from onnx_share.check.metrics import output_stats
from onnx_share.check.runners import onnxrt_runner, run_runners
from onnx_share.config import ValidationConfig
from onnx_share.errors import OnnxShareError, first_line
from onnx_share.io.proto import ProtoModel
from onnx_share.report.data import TargetReport
from onnx_share.targets.checks import check_model

Samples = Sequence[Mapping[str, np.ndarray]]
ONNXRUNTIME, TENSORRT = "onnxruntime", "tensorrt"


@dataclass(frozen=True)
class TensorRTOptions:
    """How the engine is built: ``fp16`` lets TensorRT pick FP16 kernels (weakly typed network);
    ``strongly_typed`` makes every tensor keep the type the model gives it (then ``fp16`` does not apply).
    ``timing_runs``: inferences timed for the median latency."""

    fp16: bool = False
    strongly_typed: bool = False
    timing_runs: int = 20

    def __post_init__(self) -> None:
        if self.fp16 and self.strongly_typed:
            raise OnnxShareError("--fp16 and --strongly-typed exclude each other: a strongly typed network takes "
                                 "its precision from the model's types")
        if self.timing_runs < 1:
            raise OnnxShareError(f"timing_runs must be positive, got {self.timing_runs}")


def unavailable_reason() -> str | None:
    """Why TensorRT cannot build here (one line), or None when it can."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a broken install raising OSError/RuntimeError from its libraries
        return f"TensorRT not available: cannot import tensorrt ({first_line(exc)})"
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as exc:  # no driver or no GPU: CUDA initialization fails
        return f"TensorRT not available: no usable GPU ({first_line(exc)})"
    if builder is None:
        return "TensorRT not available: no usable GPU (the TensorRT builder could not be created)"
    return None


def run_tensorrt(model: str | Path, config: ValidationConfig, options: TensorRTOptions) -> TargetReport:
    """Build ``model`` into an engine, compare its outputs with onnxruntime's on ``config``'s inputs, time it."""
    report = TargetReport(TENSORRT, available=False, options=dataclasses.asdict(options))
    report.findings = [f.line() for f in check_model(model, TENSORRT) if f.severity == "error"]
    report.reason = unavailable_reason()
    if report.reason is not None:
        return report
    report.available = True
    loaded = ProtoModel.read(model)
    samples = prepare_feeds(loaded.proto, config).samples
    start = time.perf_counter()
    try:
        engine = build_engine(Path(model), options, samples)
    except Exception as exc:  # the parser and builder raise many types; the first line says what TensorRT said
        report.reason = f"engine build failed: {first_line(exc)}"
        report.passed = False
        return report
    report.build_seconds = time.perf_counter() - start
    report.built, report.engine_bytes = True, len(engine)
    runs = run_runners([onnxrt_runner(loaded, ONNXRUNTIME), engine_runner(engine, TENSORRT)], samples)
    reference, candidate = runs[ONNXRUNTIME], runs[TENSORRT]
    report.outputs = [
        output_stats(name, [r[name] for r in reference], [c[name] for c in candidate], config)
        for name in reference[0]
        if name in candidate[0]
    ]
    report.passed = all(o.passed for o in report.outputs)
    report.latency_ms = median_latency_ms(engine_runner(engine, TENSORRT), samples[0], options.timing_runs)
    return report


def build_engine(model: Path, options: TensorRTOptions, samples: Samples) -> bytes:
    """A serialized engine from Polygraphy's TensorRT backend, with one profile spanning the samples' shapes."""
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile

    profile = Profile()
    for name in samples[0]:
        shapes = [tuple(sample[name].shape) for sample in samples]
        profile.add(name, min=tuple(map(min, zip(*shapes, strict=True))), opt=shapes[0],
                    max=tuple(map(max, zip(*shapes, strict=True))))
    network = NetworkFromOnnxPath(str(model), strongly_typed=options.strongly_typed)
    config = CreateConfig(fp16=options.fp16, profiles=[profile])
    return bytes(EngineBytesFromNetwork(network, config=config)())


def engine_runner(engine: bytes, name: str) -> BaseRunner:
    """A Polygraphy ``TrtRunner`` on a serialized engine."""
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    return TrtRunner(EngineFromBytes(engine), name=name)


def median_latency_ms(runner: BaseRunner, feed: Mapping[str, np.ndarray], runs: int) -> float:
    """Median time of ``runs`` inferences after one warm-up, as the runner measures it."""
    times = []
    with runner:
        runner.infer(dict(feed))
        for _ in range(runs):
            runner.infer(dict(feed))
            times.append(runner.last_inference_time())
    return 1000.0 * statistics.median(times)
