"""The Python API behind ``onnx-share compare``: how far a rewritten model is from its original, and where.

``compare(original, rewritten)`` runs both models in onnxruntime on the same inputs (per-output statistics
and, by default, the layer-wise table that names the first diverging tensor), lists what happened to each
weight (bytes before/after, scheme, relative error), and optionally builds the rewritten model with TensorRT.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onnx_share import __version__
from onnx_share.config import OptimizeConfig, ValidationConfig
from onnx_share.report import CompareReport
from onnx_share.sparse_storage import iter_graph_protos
from onnx_share.validation import LoadedModel, ModelFile, compare_models
from onnx_share.weight_changes import WeightDiff

if TYPE_CHECKING:
    from onnx_share.targets.tensorrt import TensorRTOptions


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
    if config is None:
        config = ValidationConfig(layerwise=True)
    elif not isinstance(config, ValidationConfig):
        config = OptimizeConfig.from_dict({"validation": dict(config)}).validation
    timings: dict[str, float] = {}
    start = time.perf_counter()
    validation = compare_models(original, rewritten, config)
    timings["compare"] = time.perf_counter() - start
    start = time.perf_counter()
    before, after = LoadedModel.read(original), LoadedModel.read(rewritten)
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
        file_bytes_before=model_file_bytes(original, before),
        file_bytes_after=model_file_bytes(rewritten, after),
        timings_s=timings,
        command=command,
    )
    if tensorrt is not None:
        from onnx_share.targets.tensorrt import run_tensorrt

        start = time.perf_counter()
        report.targets.append(run_tensorrt(str(rewritten), config, tensorrt))
        timings["tensorrt"] = time.perf_counter() - start
    return report


def model_file_bytes(source: ModelFile, model: LoadedModel) -> int:
    """Bytes of the model file plus the external data files its tensors name."""
    if isinstance(source, bytes):
        return len(source)
    locations = set()
    for graph in iter_graph_protos(model.proto.graph):
        for tensor in graph.initializer:
            location = next((e.value for e in tensor.external_data if e.key == "location"), None)
            if location is not None:
                locations.add(location)
    folder = model.folder or Path(source).parent
    return Path(source).stat().st_size + sum((folder / loc).stat().st_size for loc in locations
                                             if (folder / loc).is_file())
