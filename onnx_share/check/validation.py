"""Proof that a rewritten model still does its job: both models run in onnxruntime via Polygraphy.

Polygraphy's ``Comparator`` runs the original and the rewritten model (two ``OnnxrtRunner``s with different
names) on the same seeded generated inputs, or on inputs the user gives as ``.npz`` files; the outputs are
then compared here, per output, over all samples. The original runs first and alone (a failure there means the
inputs do not fit it), then the rewritten model (above ``FOLD_MAX_MODEL_BYTES`` without constant folding: each weight
decoded when it is used, not all at once). With ``layerwise``, every intermediate tensor that both models
compute under the same name (:mod:`onnx_share.check.layerwise`) is made an output of both, in chunks of
``LAYERWISE_CHUNK`` per run so memory holds one chunk at a time, and the report names the first tensor, in the
original's topological order, that fails.
"""

from __future__ import annotations

import onnx

from onnx_share.check.feeds import Feeds, NotValidated, input_metadata, prepare_feeds
from onnx_share.check.layerwise import shared_tensors
from onnx_share.check.metrics import layer_stats, output_stats, shape_mismatch
from onnx_share.check.runners import onnxrt_runner, run_runners
from onnx_share.config import ValidationConfig
from onnx_share.errors import OnnxShareError
from onnx_share.io.proto import ModelFile, ProtoModel
from onnx_share.report.data import ValidationReport

RUNNER_NAMES = ("original", "rewritten")
# Intermediate tensors compared per run of both models: memory holds one chunk's arrays at a time.
LAYERWISE_CHUNK = 48
# The rewritten model runs as a user's default session would (constant folding on, every decode folded into a float
# weight at session creation: ~4.2x the model at peak, measured) when the original is at most this big; above, its
# decodes run when their weights are used, within float rounding of the folded outputs and in bounded memory.
FOLD_MAX_MODEL_BYTES = 256 * 2**20


def compare_models(
    original: ModelFile, rewritten: ModelFile, config: ValidationConfig, feeds: Feeds | None = None
) -> ValidationReport:
    """Run both models in onnxruntime on the same inputs (``feeds``, else those ``config`` names or synthesizes)
    and measure how far each output (and, with ``config.layerwise``, each shared intermediate tensor) moved."""
    reference, candidate = ProtoModel.read(original), ProtoModel.read(rewritten)
    _check_same_inputs(reference.proto, candidate.proto)
    if feeds is None:
        feeds = prepare_feeds(reference.proto, config)
    output_names = [o.name for o in reference.proto.graph.output]
    candidate_outputs = {o.name for o in candidate.proto.graph.output}
    notes = list(feeds.notes)
    missing = [n for n in output_names if n not in candidate_outputs]
    if missing:
        notes.append(f"output(s) {', '.join(missing)} missing from the rewritten model")
    layers = shared_tensors(reference.proto.graph, candidate.proto.graph) if config.layerwise else []
    if config.layerwise and not layers:
        notes.append("layer-wise: the models share no intermediate tensor name; nothing to localize")
    fold = reference.file_bytes() <= FOLD_MAX_MODEL_BYTES
    reference_runs = _run_original(reference, [], feeds)
    rewritten_runs = _run_rewritten(candidate, [], feeds, fold)
    outputs = []
    for name in (n for n in output_names if n in candidate_outputs):
        pair = [r[name] for r in reference_runs], [r[name] for r in rewritten_runs]
        mismatch = shape_mismatch(*pair)
        if mismatch is not None:
            notes.append(f"output {name!r}: {mismatch}")
        outputs.append(output_stats(name, *pair, config))
    layer_rows = []
    for start in range(0, len(layers), LAYERWISE_CHUNK):  # one chunk of intermediate tensors held at a time
        chunk = layers[start : start + LAYERWISE_CHUNK]
        extra = [t.name for t in chunk if t.name not in set(output_names)]
        before, after = _run_original(reference, extra, feeds), _run_rewritten(candidate, extra, feeds, fold)
        layer_rows.extend(
            layer_stats(t.index, t.name, t.op_type, t.node, [r[t.name] for r in before], [r[t.name] for r in after],
                        config)
            for t in chunk
        )
    first = next((row.name for row in layer_rows if row.passed is False), None)
    tolerances: dict[str, float | None] = {
        "atol": config.atol, "rtol": config.rtol, "min_cosine": config.min_cosine, "min_top1": config.min_top1,
    }
    return ValidationReport(
        inputs=feeds.source,
        samples=len(reference_runs),
        outputs=outputs,
        tolerances=tolerances,
        passed=not missing and all(o.passed for o in outputs),
        input_arrays=feeds.arrays(),
        ignored_arrays=feeds.ignored,
        layerwise=config.layerwise,
        layers=layer_rows,
        first_divergence=first,
        notes=notes,
        synthetic=feeds.synthetic,
    )


def _run_rewritten(model: ProtoModel, extra: list[str], feeds: Feeds, fold: bool) -> list:
    """The rewritten model's outputs (with ``extra`` intermediate tensors); a failure where the original runs is
    an error of the rewrite. Without ``fold``, its weights' decodes are not folded at session creation, so they are
    not all held as float at once (see :func:`~onnx_share.check.runners.onnxrt_session`)."""
    try:
        runner = onnxrt_runner(model, RUNNER_NAMES[1], extra, fold_constants=fold)
        return run_runners([runner], feeds.samples)[RUNNER_NAMES[1]]
    except OnnxShareError as exc:
        raise OnnxShareError(f"the rewritten model fails on inputs the original runs ({exc})") from exc


def _run_original(model: ProtoModel, extra: list[str], feeds: Feeds) -> list:
    """The original's outputs (run first, alone); a failure on synthesized inputs means they do not fit the
    model, which is said in one line naming the inputs to provide."""
    try:
        return run_runners([onnxrt_runner(model, RUNNER_NAMES[0], extra)], feeds.samples)[RUNNER_NAMES[0]]
    except OnnxShareError as exc:
        if not feeds.synthetic:
            raise OnnxShareError(f"the original model fails on the given inputs ({exc})") from exc
        made = ", ".join(f"{a.name!r} {a.shapes[0]} ({a.made})" for a in feeds.arrays())
        raise NotValidated(
            f"the original model fails on synthesized inputs {made} ({exc}); give real samples with --inputs "
            "or shapes with --input-shapes"
        ) from exc


def _check_same_inputs(original: onnx.ModelProto, rewritten: onnx.ModelProto) -> None:
    names = [n for n in input_metadata(original, {})]
    other = [n for n in input_metadata(rewritten, {})]
    if sorted(names) != sorted(other):
        raise OnnxShareError(
            f"the models take different inputs: original {', '.join(names) or '(none)'}, "
            f"rewritten {', '.join(other) or '(none)'}"
        )
