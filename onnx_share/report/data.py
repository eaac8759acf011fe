"""What a run did, as data: per-tensor decisions, totals, validation, timings; JSON and a console summary."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

# 2: "kind", "command", "targets"; per-output shape/dtype/top-1 agreement; layer-wise comparison; compare reports.
# 3: scheme "codebook" (was "lut"), pass "compress" (was "cluster"); pass changes are tensor rows with "change"
#    and "details"; "histograms" of the largest rewritten weights.
# The JSON shape of every version is documented in docs/REPORT_SCHEMA.md.
REPORT_SCHEMA_VERSION = 3


@dataclass
class TensorReport:
    """One row per tensor and per pass that touched it, or per tensor left alone.

    A compression pass sets ``scheme`` (codebook or uniform); another pass sets ``change`` (what it did: merge,
    split, prune, fold-quantize...), with its own facts in ``details``; a tensor left alone has ``skipped``.
    ``bytes_before``/``bytes_after`` count what the pass replaced and what it stored instead;
    ``relative_error`` is ‖W − Ŵ‖ / ‖W‖ of the rewrite (0.0 for exact ones); with calibration data,
    ``activation_error`` is ‖X(W − Ŵ)‖ / ‖XW‖ over the held-out samples' activations X.
    """

    name: str
    consumers: list[str]
    shape: list[int]
    dtype: str
    bytes_before: int
    bytes_after: int
    scheme: str | None = None
    bits: int | None = None
    clusters: int | None = None
    granularity: str | None = None
    group_size: int | None = None
    storage: str | None = None
    relative_error: float | None = None
    activation_error: float | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    change: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class PassSection:
    """What one pass of the pipeline did: its rows, bytes before/after over what it touched, worst error."""

    name: str
    modified: bool
    seconds: float
    count: int
    bytes_before: int
    bytes_after: int
    max_relative_error: float
    changes: list[TensorReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class OutputStats:
    """How far one model output moved, over all compared samples."""

    name: str
    max_abs_error: float
    mean_abs_error: float
    median_abs_error: float
    max_rel_error: float
    cosine_similarity: float
    passed: bool
    shape: list[int] | None = None
    dtype: str | None = None
    exact: bool = False
    top1_agreement: float | None = None


@dataclass
class LayerStats:
    """One intermediate tensor present in both models, compared like an output (None numbers: skipped)."""

    index: int
    name: str
    op_type: str
    node: str
    shape: list[int] | None = None
    dtype: str | None = None
    max_abs_error: float | None = None
    mean_abs_error: float | None = None
    max_rel_error: float | None = None
    cosine_similarity: float | None = None
    exact: bool = False
    passed: bool | None = None
    skipped: str | None = None


@dataclass
class InputArray:
    """One model input as fed to both models: dtype and the shape of each sample."""

    name: str
    dtype: str
    shapes: list[list[int]]
    made: str = "given"


@dataclass
class ValidationReport:
    """The onnxruntime comparison of the original and the rewritten model."""

    inputs: str
    samples: int
    outputs: list[OutputStats]
    tolerances: dict[str, float | None]
    passed: bool
    input_arrays: list[InputArray] = field(default_factory=list)
    ignored_arrays: list[str] = field(default_factory=list)
    layerwise: bool = False
    layers: list[LayerStats] = field(default_factory=list)
    first_divergence: str | None = None
    notes: list[str] = field(default_factory=list)
    synthetic: bool = False

    @property
    def first_divergent_layer(self) -> LayerStats | None:
        return next((layer for layer in self.layers if layer.name == self.first_divergence), None)


@dataclass
class WeightHistogram:
    """One rewritten weight's values before and after, binned on shared ``edges`` (a seeded sample of ``sampled``
    of its ``total`` values, the same positions in both), with its codebook levels where it has one codebook."""

    name: str
    label: str
    edges: list[float]
    before: list[int]
    after: list[int]
    relative_error: float
    sampled: int
    total: int
    centroids: list[float] | None = None
    note: str | None = None


@dataclass
class OpsetConversion:
    """An opset conversion tried before compressing, and whether it was kept: onnx's version converter, then
    both models run on the same inputs; kept only when their outputs agree to float rounding."""

    from_opset: int
    to_opset: int
    kept: bool
    inputs: str
    max_relative_difference: float | None = None
    reason: str | None = None


@dataclass
class CalibrationReport:
    """The calibration data and what it served: how the samples were split, the statistics gathered from the
    original model (seconds, bytes of Gram matrices) and the weights that used them."""

    split: str
    calibration_samples: int
    held_out_samples: int
    seconds: float
    gram_bytes: int
    sites: int
    notes: list[str] = field(default_factory=list)


@dataclass
class BudgetLayer:
    """One weight in a budget search: its measured ``sensitivity`` (output error per unit of its own error,
    :mod:`onnx_share.budget.sensitivity`), what its distortion was measured on (``activations`` or ``weights``),
    its candidate count and the form chosen, with that form's bits per weight and predicted share of the loss."""

    name: str
    elements: int
    sensitivity: float
    measured_on: str
    candidates: int
    chosen: str
    bits: float
    predicted: float


@dataclass
class BudgetPoint:
    """One allocation: its file bytes, stored bits per compressed weight, predicted and (when built) measured
    held-out loss, the user's score; ``step`` says why it was built (``start``, ``bisect``, ``refine``,
    ``single form``, ``descent``, ``repair``, ``alternative``) or
    ``curve`` for a frontier point only predicted; ``passed``: whether it met the budget."""

    step: str
    file_bytes: int
    bits: float
    predicted_loss: float
    loss: float | None = None
    score: float | None = None
    passed: bool | None = None


@dataclass
class BudgetReport:
    """A budget search: the ``goal``, the loss it measured (``relative``, ``cosine`` or ``score``) and on what
    samples, per weight its sensitivity and choice, the predicted rate–distortion ``curve``, the models built in
    order (``tried``), the one kept (``chosen``, an index into ``tried``) and the seconds each phase took."""

    goal: str
    loss: str
    samples: str
    layers: list[BudgetLayer] = field(default_factory=list)
    curve: list[BudgetPoint] = field(default_factory=list)
    tried: list[BudgetPoint] = field(default_factory=list)
    chosen: int | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class TargetReport:
    """A deployment target's run of the rewritten model (TensorRT): did it build, how big, how fast, how close."""

    target: str
    available: bool
    reason: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    built: bool = False
    engine_bytes: int | None = None
    build_seconds: float | None = None
    latency_ms: float | None = None
    outputs: list[OutputStats] = field(default_factory=list)
    passed: bool | None = None
    findings: list[str] = field(default_factory=list)


@dataclass
class Report:
    """Everything ``optimize`` decided and measured."""

    tool_version: str
    config: dict[str, Any]
    tensors: list[TensorReport] = field(default_factory=list)
    input_path: str | None = None
    output_path: str | None = None
    opset_before: int | None = None
    opset_after: int | None = None
    file_bytes_before: int | None = None
    file_bytes_after: int | None = None
    passes: list[PassSection] = field(default_factory=list)
    validation: ValidationReport | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    command: str | None = None
    targets: list[TargetReport] = field(default_factory=list)
    histograms: list[WeightHistogram] = field(default_factory=list)
    conversion: OpsetConversion | None = None
    calibration: CalibrationReport | None = None
    budget: BudgetReport | None = None
    kind: str = "optimize"
    schema_version: int = REPORT_SCHEMA_VERSION

    @property
    def compressed(self) -> list[TensorReport]:
        return [t for t in self.tensors if t.scheme is not None]

    @property
    def weight_bytes_before(self) -> int:
        return sum(t.bytes_before for t in self.compressed)

    @property
    def weight_bytes_after(self) -> int:
        return sum(t.bytes_after for t in self.compressed)

    @property
    def file_ratio(self) -> float | None:
        if not self.file_bytes_before or not self.file_bytes_after:
            return None
        return self.file_bytes_before / self.file_bytes_after

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["totals"] = {
            "tensors_compressed": len(self.compressed),
            "tensors_skipped": len(self.tensors) - len(self.compressed),
            "weight_bytes_before": self.weight_bytes_before,
            "weight_bytes_after": self.weight_bytes_after,
            "file_bytes_before": self.file_bytes_before,
            "file_bytes_after": self.file_bytes_after,
            "file_ratio": self.file_ratio,
        }
        return data

    def to_json(self) -> str:
        """The report as JSON text (docs/REPORT_SCHEMA.md)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def summary(self) -> str:
        """The console account (:mod:`onnx_share.report.text`)."""
        from onnx_share.report.text import summary

        return summary(self)


@dataclass
class CompareReport:
    """What ``compare`` measured between an original and a rewritten model."""

    tool_version: str
    original_path: str | None
    rewritten_path: str | None
    config: dict[str, Any]
    validation: ValidationReport
    tensors: list[TensorReport] = field(default_factory=list)
    file_bytes_before: int | None = None
    file_bytes_after: int | None = None
    targets: list[TargetReport] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    command: str | None = None
    histograms: list[WeightHistogram] = field(default_factory=list)
    kind: str = "compare"
    schema_version: int = REPORT_SCHEMA_VERSION

    @property
    def passed(self) -> bool:
        """The onnxruntime comparison passed, and so did every target that ran."""
        return self.validation.passed and all(t.passed is not False for t in self.targets)

    @property
    def compressed(self) -> list[TensorReport]:
        return [t for t in self.tensors if t.scheme is not None]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["passed"] = self.passed
        return data

    def to_json(self) -> str:
        """The report as JSON text (docs/REPORT_SCHEMA.md)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def summary(self) -> str:
        """The console account (:mod:`onnx_share.report.text`)."""
        from onnx_share.report.text import summary

        return summary(self)
