"""Proof that an opset conversion kept the model's meaning: original and converted run in onnxruntime on the
same samples, and their outputs must agree to float rounding."""

from __future__ import annotations

import numpy as np

from onnx_share.check.feeds import Feeds
from onnx_share.check.runners import onnxrt_runner, run_runners
from onnx_share.io.proto import ProtoModel

# Largest difference allowed, relative to each output's largest magnitude: float rounding of reordered math.
AGREEMENT_TOLERANCE = 1e-5


def output_disagreement(original: ProtoModel, converted: ProtoModel, feeds: Feeds) -> float:
    """The largest difference between the two models' outputs over all samples, relative to each output's
    largest magnitude (``inf`` where a shape, a dtype kind or an integer value differs)."""
    reference = run_runners([onnxrt_runner(original, "original")], feeds.samples)["original"]
    candidate = run_runners([onnxrt_runner(converted, "converted")], feeds.samples)["converted"]
    worst = 0.0
    for before, after in zip(reference, candidate, strict=True):
        for name, value in before.items():
            a, b = np.asarray(value), np.asarray(after[name])
            if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
                return float("inf")
            if a.dtype.kind != "f":
                if not np.array_equal(a, b):
                    return float("inf")
                continue
            scale = float(np.max(np.abs(a), initial=0.0))
            difference = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))
            worst = max(worst, difference / scale if scale > 0 else difference)
    return worst
