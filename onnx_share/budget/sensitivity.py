"""End-to-end error: how far a built model's outputs are from the original's, and how much each weight moves them.

The loss is measured on the float outputs over all samples: ``relative`` is ‖Y − Ŷ‖ / ‖Y‖ (the root of the mean
over outputs of each output's squared relative error), ``cosine`` 1 − the lowest output cosine. A weight's
sensitivity is the squared relative output error its own error causes per unit of that error: the model runs with
its compressed weights fed as inputs (one session), every weight original but one, which takes the candidate of
median distortion among its own. The predicted squared output error of an allocation is the sum over weights of
sensitivity × distortion (errors of different weights add, to first order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from onnx_share.budget.candidates import Layer
from onnx_share.errors import OnnxShareError, first_line

# Held-out samples each weight's perturbation is measured on.
SENSITIVITY_SAMPLES = 8
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
FEEDABLE = {ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE}

Outputs = list[list[np.ndarray]]  # per sample, per float output


def float_outputs(proto: onnx.ModelProto) -> list[str]:
    """The names of the model's float outputs (the ones a loss is measured on)."""
    return [o.name for o in proto.graph.output if o.type.tensor_type.elem_type in FLOAT_TYPES]


def runner(model: str | bytes, folder: Path | None, outputs: Sequence[str]) -> Callable[..., Outputs]:
    """A function running ``model`` (a path, or bytes whose external data lie in ``folder``) on samples (each a
    feed dict, plus the same ``extra`` feeds for every one) and returning its ``outputs``."""
    from onnx_share.check.runners import onnxrt_session

    try:
        session = onnxrt_session(model, folder)()
    except Exception as exc:
        raise OnnxShareError(f"onnxruntime cannot load a model of the budget search ({first_line(exc)})") from exc

    def run(samples: Sequence[Mapping[str, np.ndarray]], extra: Mapping[str, np.ndarray] | None = None) -> Outputs:
        try:
            return [session.run(list(outputs), {**sample, **(extra or {})}) for sample in samples]
        except Exception as exc:  # onnxruntime raises several types
            raise OnnxShareError(f"a model of the budget search fails in onnxruntime ({first_line(exc)})") from exc

    return run


def squared_error(reference: Outputs, candidate: Outputs) -> float:
    """The mean over outputs of Σ‖y − ŷ‖² / Σ‖y‖² over the samples."""
    errors = []
    for index in range(len(reference[0])):
        ys = [np.asarray(sample[index], np.float64) for sample in reference]
        yhats = [np.asarray(sample[index], np.float64) for sample in candidate]
        error = sum(float(np.sum((y - yhat) ** 2)) for y, yhat in zip(ys, yhats, strict=True))
        scale = sum(float(np.sum(y**2)) for y in ys)
        errors.append(error / scale if scale > 0 else float(error > 0))
    return float(np.mean(errors))


def output_loss(reference: Outputs, candidate: Outputs, metric: str) -> float:
    """``relative``: ‖Y − Ŷ‖ / ‖Y‖; ``cosine``: 1 − the lowest cosine of an output (flattened over samples)."""
    if metric == "relative":
        return float(np.sqrt(squared_error(reference, candidate)))
    cosines = []
    for index in range(len(reference[0])):
        y = np.concatenate([np.ravel(sample[index]).astype(np.float64) for sample in reference])
        yhat = np.concatenate([np.ravel(sample[index]).astype(np.float64) for sample in candidate])
        norms = float(np.linalg.norm(y) * np.linalg.norm(yhat))
        cosines.append(float(y @ yhat) / norms if norms > 0 else float(np.array_equal(y, yhat)))
    return 1.0 - min(cosines)


def predicted_loss(squared: float, metric: str) -> float:
    """The loss a predicted squared relative output error stands for (1 − cos ≈ e² / 2 for small errors)."""
    return float(np.sqrt(max(squared, 0.0))) if metric == "relative" else max(squared, 0.0) / 2


def measure_sensitivities(
    work: ir.Model, layers: Sequence[Layer], folder: Path | None, samples: Sequence[Mapping[str, np.ndarray]]
) -> list[str]:
    """Set every layer's sensitivity from one weight perturbed at a time on up to :data:`SENSITIVITY_SAMPLES`
    ``samples``; the notes say which weights could not be fed and took the median."""
    samples = list(samples)[:SENSITIVITY_SAMPLES]
    main = set(work.graph.initializers)
    fed = [layer for layer in layers if layer.name in main and layer.weight.dtype in FEEDABLE]
    proto = ir.to_proto(work)
    outputs = float_outputs(proto)
    _weights_as_inputs(proto, {layer.name for layer in fed})
    run = runner(proto.SerializeToString(), folder, outputs)
    weights = {layer.name: layer.weight.numpy() for layer in fed}
    reference = run(samples, weights)
    measured = []
    for layer in fed:
        probe = int(np.argsort(layer.distortions, kind="stable")[len(layer.forms) // 2])
        distortion = float(layer.distortions[probe])
        if distortion <= 0:
            layer.sensitivity = 0.0
            continue
        decoded = layer.table.decoded(layer.forms[probe])
        error = squared_error(reference, run(samples, {**weights, layer.name: decoded}))
        layer.sensitivity = error / distortion
        measured.append(layer.sensitivity)
    notes = []
    rest = [layer for layer in layers if layer.name not in weights]
    if rest:
        median = float(np.median(measured)) if measured else 1.0
        for layer in rest:
            layer.sensitivity = median
        notes.append(f"{len(rest)} weight(s) in subgraphs or of a type onnxruntime cannot be fed took the median "
                     f"sensitivity: {', '.join(layer.name for layer in rest[:5])}" + (" ..." if len(rest) > 5 else ""))
    return notes


def _weights_as_inputs(proto: onnx.ModelProto, names: set[str]) -> None:
    """Turn the initializers ``names`` of the main graph into graph inputs of the same type and shape."""
    inputs = {i.name for i in proto.graph.input}
    initializers = proto.graph.initializer
    for index in reversed(range(len(initializers))):
        tensor = initializers[index]
        if tensor.name not in names:
            continue
        if tensor.name not in inputs:
            proto.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
        del initializers[index]
