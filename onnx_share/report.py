"""What a run did, as data: per-tensor decisions, totals, validation, timings; JSON and a console summary."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPORT_SCHEMA_VERSION = 1


@dataclass
class TensorReport:
    """One constant tensor: how it was compressed (``scheme`` set) or why not (``skipped`` set)."""

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
    changes: list[dict[str, Any]] = field(default_factory=list)
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


@dataclass
class ValidationReport:
    """The onnxruntime comparison of the original and the rewritten model."""

    inputs: str
    samples: int
    outputs: list[OutputStats]
    tolerances: dict[str, float | None]
    passed: bool


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
            v = self.validation
            lines.append(f"validation ({v.inputs}, {v.samples} sample(s)): {'PASS' if v.passed else 'FAIL'}")
            for o in v.outputs:
                lines.append(
                    f"  {_clip(o.name, 30):<30} max|err| {o.max_abs_error:.3g}  mean|err| {o.mean_abs_error:.3g}  "
                    f"max rel {o.max_rel_error:.3g}  cosine {o.cosine_similarity:.6f}  "
                    f"{'ok' if o.passed else 'FAIL'}"
                )
        if self.timings_s:
            lines.append("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings_s.items()))
        return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]
