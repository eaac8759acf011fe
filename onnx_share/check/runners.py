"""onnxruntime sessions and Polygraphy runners over protobuf models, run quietly on the same samples.

Log levels are set per session (onnxruntime) and per run (Polygraphy), never process-wide.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from polygraphy.backend.base import BaseRunner
from polygraphy.backend.onnxrt import OnnxrtRunner
from polygraphy.comparator import Comparator, RunResults
from polygraphy.logger import G_LOGGER

from onnx_share.errors import OnnxShareError, first_line
from onnx_share.io.proto import ProtoModel

# onnxruntime resolves external data of a model given as bytes relative to this folder.
EXTERNAL_DATA_FOLDER_KEY = "session.model_external_initializers_file_folder_path"
ORT_QUIET = 4  # onnxruntime log severity FATAL: its warnings and errors reach the user through our own messages


def onnxrt_session(
    model: str | bytes, folder: Path | None = None, *, fold_constants: bool = True
) -> Callable[[], ort.InferenceSession]:
    """A loader for a CPU session on ``model`` (a path or bytes whose external data lies in ``folder``).

    ``fold_constants=False`` turns off onnxruntime's constant folding, which computes every subgraph of constants
    at session creation: a codebook's decode (``Gather`` of its centroids) becomes a float weight then, all of
    them at once, while unfolded each is decoded when its consumer runs and let go. The outputs agree within float
    rounding (a weight that is not a constant takes other kernels: ~1e-7 of the digits model's logits); the memory
    does not (a 0.6 GB MatMul chain at 4 bits: 2507 MB peak folded, 267 MB not; docs/BENCHMARKS.md).
    """

    def load() -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.log_severity_level = ORT_QUIET
        if folder is not None and isinstance(model, bytes):
            options.add_session_config_entry(EXTERNAL_DATA_FOLDER_KEY, str(folder))
        disabled = [] if fold_constants else ["ConstantFolding"]
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)

    return load


def onnxrt_runner(
    model: ProtoModel, name: str, extra_outputs: Sequence[str] = (), *, fold_constants: bool = True
) -> OnnxrtRunner:
    """An onnxruntime runner for ``model``, with ``extra_outputs`` (intermediate tensors) made outputs
    (``fold_constants``: see :func:`onnxrt_session`)."""
    source: str | bytes = model.source
    if extra_outputs:
        instrumented = onnx.ModelProto()
        instrumented.CopyFrom(model.proto)
        instrumented.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in extra_outputs)
        source = instrumented.SerializeToString()
    return OnnxrtRunner(onnxrt_session(source, model.folder, fold_constants=fold_constants), name=name)


def run_runners(runners: Sequence[BaseRunner], samples: Sequence[Mapping[str, np.ndarray]]) -> RunResults:
    """Polygraphy's ``Comparator.run`` on the same samples; the results by runner name."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), G_LOGGER.verbosity(G_LOGGER.ERROR):
            return Comparator.run(list(runners), data_loader=list(samples))
    except Exception as exc:  # Polygraphy wraps runtime failures in several exception types
        raise OnnxShareError(f"onnxruntime failed: {first_line(exc)}") from exc
