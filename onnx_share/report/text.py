"""The console account of a run: what was compressed, skipped, saved and measured, one line per fact."""

from __future__ import annotations

from onnx_share.report.data import (
    BudgetReport,
    CalibrationReport,
    CompareReport,
    OutputStats,
    Report,
    TargetReport,
    ValidationReport,
)


def summary(report: Report | CompareReport) -> str:
    """The console account of an optimize or compare report."""
    return compare_summary(report) if isinstance(report, CompareReport) else optimize_summary(report)


def optimize_summary(report: Report, top: int = 10) -> str:
    """A readable account: biggest compressed tensors, skip reasons, totals, validation."""
    lines = []
    compressed = sorted(report.compressed, key=lambda t: -t.bytes_before)
    measured = any(t.activation_error is not None for t in compressed)
    if compressed:
        lines.append(f"{'tensor':<40} {'ops':<14} {'scheme':<16} {'before':>10} {'after':>10} {'rel.err':>8}"
                     + (f" {'act.err':>8}" if measured else ""))
        for t in compressed[:top]:
            scheme = f"{t.scheme}{t.bits}/{t.granularity}"
            activation = "" if not measured else (
                f" {'-':>8}" if t.activation_error is None else f" {t.activation_error:>8.4f}")
            lines.append(
                f"{clip(t.name, 40):<40} {clip(','.join(t.consumers), 14):<14} {scheme:<16} "
                f"{size(t.bytes_before):>10} {size(t.bytes_after):>10} {t.relative_error:>8.4f}{activation}"
            )
        if len(compressed) > top:
            lines.append(f"... and {len(compressed) - top} more compressed tensors")
    else:
        lines.append("No tensor was compressed: nothing new to compress.")
    reasons: dict[str, int] = {}
    for t in report.tensors:
        if t.skipped is not None:
            key = "below min_elements" if "< min_elements" in t.skipped else t.skipped
            reasons[key] = reasons.get(key, 0) + 1
    if reasons:
        lines.append("skipped: " + "; ".join(f"{n} × {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1])))
    lines.append(
        f"weights: {len(compressed)} tensors, {size(report.weight_bytes_before)} -> "
        f"{size(report.weight_bytes_after)}"
    )
    if report.file_ratio is not None:
        lines.append(
            f"file: {size(report.file_bytes_before or 0)} -> {size(report.file_bytes_after or 0)} "
            f"({report.file_ratio:.2f}x smaller)"
        )
    for section in report.passes:
        if section.modified:
            lines.append(
                f"pass {section.name}: {section.count} change(s), {size(section.bytes_before)} -> "
                f"{size(section.bytes_after)}, max rel. weight error {section.max_relative_error:.4g}"
            )
    lines.append(f"calibration: {calibration_line(report.calibration)}")
    if report.calibration is not None:
        lines.extend(f"calibration note: {n}" for n in report.calibration.notes)
    if report.budget is not None:
        lines.append(f"budget: {budget_line(report.budget)}")
        lines.extend(f"budget note: {n}" for n in report.budget.notes)
    lines.extend(f"note: {n}" for n in report.notes)
    if report.validation is not None:
        lines.extend(validation_lines(report.validation))
    for target in report.targets:
        lines.extend(target_lines(target))
    if report.timings_s:
        lines.append("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in report.timings_s.items()))
    return "\n".join(lines)


def budget_line(budget: BudgetReport) -> str:
    """One line on a budget search: the goal, the model kept and what it took to find it."""
    line = f"{budget.goal}: {len(budget.tried)} model(s) built"
    if budget.chosen is not None:
        kept = budget.tried[budget.chosen]
        loss = "" if kept.loss is None else (f", {budget.loss} loss {kept.loss:.4g} "
                                             f"(predicted {kept.predicted_loss:.4g})")
        score = "" if kept.score is None else f", score {kept.score:.6g}"
        line += f"; kept {size(kept.file_bytes)} at {kept.bits:.3f} bits per weight{loss}{score}"
    seconds = sum(budget.timings_s.values())
    return f"{line}; losses on {budget.samples}; {seconds:.1f}s"


def calibration_line(calibration: CalibrationReport | None) -> str:
    """One line on the calibration data: how it was split and what its statistics cost, or that there was none."""
    if calibration is None:
        return "none (data-free: weights fitted on their own values; give --data to fit them to real activations)"
    return (f"{calibration.split}; activations of {calibration.sites} site(s) measured in {calibration.seconds:.1f}s, "
            f"{size(calibration.gram_bytes)} of XᵀX")


def compare_summary(report: CompareReport) -> str:
    lines = []
    if report.file_bytes_before and report.file_bytes_after:
        lines.append(
            f"file: {size(report.file_bytes_before)} -> {size(report.file_bytes_after)} "
            f"({report.file_bytes_before / report.file_bytes_after:.2f}x smaller)"
        )
    lines.extend(validation_lines(report.validation))
    for target in report.targets:
        lines.extend(target_lines(target))
    lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(lines)


SMOKE_TEST_NOTE = (
    "synthesized inputs show that the graph runs and how far raw outputs drift; they say nothing about accuracy "
    "(give real samples with --inputs)"
)


def verdict_title(v: ValidationReport) -> str:
    """What the comparison was: a smoke test on synthesized inputs, or a validation on given ones."""
    return "smoke test" if v.synthetic else "validation"


def verdict_word(v: ValidationReport) -> str:
    """The comparison's outcome in words that do not overstate a smoke test."""
    if v.synthetic:
        return "outputs within tolerance" if v.passed else "outputs drifted beyond tolerance"
    return "PASS" if v.passed else "FAIL"


def validation_lines(v: ValidationReport) -> list[str]:
    """The console account of a comparison: verdict, one line per output, where the models first diverge."""
    lines = [f"{verdict_title(v)} ({v.inputs}, {v.samples} sample(s)): {verdict_word(v)}"]
    if v.synthetic:
        lines.append("  " + SMOKE_TEST_NOTE)
        lines.append("  inputs: " + "; ".join(f"{a.name} {a.shapes[0]} {a.made}" for a in v.input_arrays))
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
        f"{t.target}: engine {size(t.engine_bytes or 0)}, built in {t.build_seconds or 0:.1f}s, "
        f"median latency {t.latency_ms or 0:.3f} ms; vs onnxruntime: {'PASS' if t.passed else 'FAIL'}"
    ]
    lines.extend(f"  {_output_line(o)}" for o in t.outputs)
    return lines


def _output_line(o: OutputStats) -> str:
    top1 = f"  top-1 {o.top1_agreement:.2%}" if o.top1_agreement is not None else ""
    return (
        f"{clip(o.name, 30):<30} max|err| {o.max_abs_error:.3g}  mean|err| {o.mean_abs_error:.3g}  "
        f"max rel {o.max_rel_error:.3g}  cosine {o.cosine_similarity:.6f}{top1}  {'ok' if o.passed else 'FAIL'}"
    )


def size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]
