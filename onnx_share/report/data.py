"""What a run did, as data: per-tensor decisions, totals, validation, timings; JSON and a console summary."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
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
    ``relative_error`` is ‖W − Ŵ‖ / ‖W‖ of the rewrite (0.0 for exact ones).
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

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def summary(self, top: int = 10) -> str:
        """A readable account: biggest compressed tensors, skip reasons, totals, validation."""
        lines = []
        compressed = sorted(self.compressed, key=lambda t: -t.bytes_before)
        if compressed:
            lines.append(f"{'tensor':<40} {'ops':<14} {'scheme':<16} {'before':>10} {'after':>10} {'rel.err':>8}")
            for t in compressed[:top]:
                scheme = f"{t.scheme}{t.bits}/{t.granularity}"
                lines.append(
                    f"{_clip(t.name, 40):<40} {_clip(','.join(t.consumers), 14):<14} {scheme:<16} "
                    f"{_size(t.bytes_before):>10} {_size(t.bytes_after):>10} {t.relative_error:>8.4f}"
                )
            if len(compressed) > top:
                lines.append(f"... and {len(compressed) - top} more compressed tensors")
        else:
            lines.append("No tensor was compressed: nothing new to compress.")
        reasons: dict[str, int] = {}
        for t in self.tensors:
            if t.skipped is not None:
                key = "below min_elements" if "< min_elements" in t.skipped else t.skipped
                reasons[key] = reasons.get(key, 0) + 1
        if reasons:
            lines.append("skipped: " + "; ".join(f"{n} × {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1])))
        lines.append(
            f"weights: {len(compressed)} tensors, {_size(self.weight_bytes_before)} -> "
            f"{_size(self.weight_bytes_after)}"
        )
        if self.file_ratio is not None:
            lines.append(
                f"file: {_size(self.file_bytes_before or 0)} -> {_size(self.file_bytes_after or 0)} "
                f"({self.file_ratio:.2f}x smaller)"
            )
        for section in self.passes:
            if section.modified:
                lines.append(
                    f"pass {section.name}: {section.count} change(s), {_size(section.bytes_before)} -> "
                    f"{_size(section.bytes_after)}, max rel. weight error {section.max_relative_error:.4g}"
                )
        lines.extend(f"note: {n}" for n in self.notes)
        if self.validation is not None:
            lines.extend(validation_lines(self.validation))
        for target in self.targets:
            lines.extend(target_lines(target))
        if self.timings_s:
            lines.append("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings_s.items()))
        return "\n".join(lines)


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

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def summary(self) -> str:
        lines = []
        if self.file_bytes_before and self.file_bytes_after:
            lines.append(
                f"file: {_size(self.file_bytes_before)} -> {_size(self.file_bytes_after)} "
                f"({self.file_bytes_before / self.file_bytes_after:.2f}x smaller)"
            )
        lines.extend(validation_lines(self.validation))
        for target in self.targets:
            lines.extend(target_lines(target))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def validation_lines(v: ValidationReport) -> list[str]:
    """The console account of a comparison: verdict, one line per output, where the models first diverge."""
    lines = [f"validation ({v.inputs}, {v.samples} sample(s)): {'PASS' if v.passed else 'FAIL'}"]
    lines.extend(f"  {_output_line(o)}" for o in v.outputs)
    if v.layerwise:
        compared = [layer for layer in v.layers if layer.skipped is None]
        layer = v.first_divergent_layer
        if layer is not None:
            lines.append(
                f"first diverging tensor: {layer.name} (output of {layer.op_type} {layer.node!r}, "
                f"#{layer.index} in topological order; cosine {layer.cosine_similarity:.6f}, "
                f"max|err| {layer.max_abs_error:.3g}); {len(compared)} shared tensors compared"
            )
        else:
            lines.append(f"layer-wise: all {len(compared)} shared tensors within tolerance")
    lines.extend(f"note: {n}" for n in v.notes)
    return lines


def target_lines(t: TargetReport) -> list[str]:
    """The console account of a target run."""
    if not t.available:
        return [f"{t.target}: not run ({t.reason})"]
    if not t.built:
        return [f"{t.target}: engine build FAILED ({t.reason})", *(f"  {f}" for f in t.findings[:10])]
    lines = [
        f"{t.target}: engine {_size(t.engine_bytes or 0)}, built in {t.build_seconds or 0:.1f}s, "
        f"median latency {t.latency_ms or 0:.3f} ms; vs onnxruntime: {'PASS' if t.passed else 'FAIL'}"
    ]
    lines.extend(f"  {_output_line(o)}" for o in t.outputs)
    return lines


def _output_line(o: OutputStats) -> str:
    top1 = f"  top-1 {o.top1_agreement:.2%}" if o.top1_agreement is not None else ""
    return (
        f"{_clip(o.name, 30):<30} max|err| {o.max_abs_error:.3g}  mean|err| {o.mean_abs_error:.3g}  "
        f"max rel {o.max_rel_error:.3g}  cosine {o.cosine_similarity:.6f}{top1}  {'ok' if o.passed else 'FAIL'}"
    )


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]
