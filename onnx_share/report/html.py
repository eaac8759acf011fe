"""A report as one self-contained HTML page a person can read: verdict, per-output metrics, the per-layer error
chart and table, size per tensor, weight histograms before/after with the codebook marked, TensorRT results,
and the exact command and config. Nothing is fetched: CSS is inline and charts are base64 PNG images.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
from collections.abc import Iterable, Sequence

from onnx_share.report.data import (
    BudgetReport,
    CompareReport,
    LayerStats,
    OutputStats,
    Report,
    TargetReport,
    TensorReport,
    ValidationReport,
    WeightHistogram,
)
from onnx_share.report.text import SMOKE_TEST_NOTE, budget_line, calibration_line, size

SIZE_CHART_ROWS = 15
TABLE_ROWS = 40

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header { background: #fff; border-bottom: 1px solid #d9dce1; }
header div.top { max-width: 1180px; margin: 0 auto; padding: 18px 28px; display: flex; gap: 18px;
                 align-items: center; flex-wrap: wrap; }
h1 { font-size: 22px; margin: 0; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d9dce1; }
h3 { font-size: 14px; margin: 16px 0 6px; color: #333; }
.badge { font-weight: 700; padding: 4px 12px; border-radius: 4px; color: #fff; }
.pass { background: #2e7d32; } .fail { background: #c62828; } .none { background: #757575; }
nav a { margin-right: 14px; color: #1f5fa8; text-decoration: none; font-size: 14px; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 4px 16px; margin: 8px 0; font-size: 14px; }
dl.facts dt { color: #555; } dl.facts dd { margin: 0; word-break: break-all; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 13px; }
th, td { border: 1px solid #dde1e6; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f5; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { word-break: break-all; }
tr.bad td { background: #fdecea; } tr.first td { background: #f9c9c4; font-weight: 600; }
.scroll { max-height: 460px; overflow: auto; border: 1px solid #dde1e6; }
.callout { background: #fff4e5; border-left: 4px solid #ef6c00; padding: 8px 12px; margin: 10px 0; }
.ok { background: #edf7ed; border-left: 4px solid #2e7d32; padding: 8px 12px; margin: 10px 0; }
img.chart { max-width: 100%; background: #fff; border: 1px solid #dde1e6; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 14px; }
figure { margin: 0; background: #fff; border: 1px solid #dde1e6; padding: 6px; }
figure img { width: 100%; } figcaption { font-size: 12px; color: #555; }
pre { background: #fff; border: 1px solid #dde1e6; padding: 10px; overflow: auto; font-size: 12px;
      white-space: pre-wrap; word-break: break-all; }
p.muted, li.muted { color: #666; font-size: 13px; }
"""


def render_html(report: Report | CompareReport) -> str:
    """The page as a string (it renders what the report holds; nothing is read or run)."""
    validation = report.validation
    sections = [
        ("outputs", "Outputs", _outputs_section(validation)),
        ("layers", "Per-layer error", _layers_section(validation)),
        ("sizes", "Size per tensor", _sizes_section(report.tensors)),
        ("weights", "Weights before and after", _weights_section(report.compressed, report.histograms)),
    ]
    if isinstance(report, Report) and report.budget is not None:
        sections.append(("budget", "Budget search", _budget_section(report.budget)))
    if isinstance(report, Report) and report.passes:
        sections.append(("passes", "Passes", _passes_section(report)))
    if report.targets:
        sections.append(("targets", "TensorRT", "".join(_target_section(t) for t in report.targets)))
    if report.notes:
        sections.append(("notes", "Notes", _list(report.notes)))
    sections.append(("command", "Command and config", _command_section(report)))
    nav = "".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{html.escape(title)}</h2>{content}</section>'
                   for key, title, content in sections)
    kind = "compare" if isinstance(report, CompareReport) else "optimize"
    title = f"onnx-share {kind} report"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f'<header><div class="top"><h1>{html.escape(title)}</h1>{_verdict(report)}<nav>{nav}</nav></div></header>'
        f"<main>{_facts(report)}{body}</main></body></html>\n"
    )


def _verdict(report: Report | CompareReport) -> str:
    if report.validation is None:
        return '<span class="badge none">NOT VALIDATED</span>'
    passed = report.passed if isinstance(report, CompareReport) else report.validation.passed
    if report.validation.synthetic:
        word = "SMOKE TEST: WITHIN TOLERANCE" if passed else "SMOKE TEST: DRIFTED"
        return f'<span class="badge {"none" if passed else "fail"}">{word}</span>'
    return f'<span class="badge {"pass" if passed else "fail"}">{"PASS" if passed else "FAIL"}</span>'


def _facts(report: Report | CompareReport) -> str:
    if isinstance(report, CompareReport):
        files = [("original", report.original_path), ("rewritten", report.rewritten_path)]
    else:
        files = [("input", report.input_path), ("output", report.output_path)]
    facts = [(label, value or "(in memory)") for label, value in files]
    before, after = report.file_bytes_before, report.file_bytes_after
    if before and after:
        facts.append(("file size", f"{size(before)} → {size(after)} ({before / after:.2f}× smaller)"))
    compressed = report.compressed
    if compressed:
        weights_before = sum(t.bytes_before for t in compressed)
        weights_after = sum(t.bytes_after for t in compressed)
        facts.append(("rewritten weights", f"{len(compressed)} tensors, {size(weights_before)} → "
                                           f"{size(weights_after)}"))
    if isinstance(report, Report):
        facts.append(("calibration", calibration_line(report.calibration)))
    if report.timings_s:
        facts.append(("time", ", ".join(f"{k} {v:.2f}s" for k, v in report.timings_s.items())))
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    facts.append(("tool", f"onnx-share {report.tool_version}, report schema {report.schema_version}, {stamp}"))
    return '<dl class="facts">' + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>"
                                          for k, v in facts) + "</dl>"


def _outputs_section(v: ValidationReport | None) -> str:
    if v is None:
        return '<p class="muted">The models were not compared (validation was switched off).</p>'
    tolerance = ", ".join(f"{k} {val:g}" for k, val in v.tolerances.items() if val is not None)
    parts = [f'<p class="callout">{html.escape(SMOKE_TEST_NOTE)}.</p>' if v.synthetic else "",
             _output_table(v.outputs),
             f'<p class="muted">{html.escape(v.inputs)}, {v.samples} sample(s); a tensor fails below the '
             f"tolerances ({html.escape(tolerance)}); integer and bool tensors must match exactly.</p>"]
    if v.input_arrays:
        rows = [[a.name, a.dtype, "; ".join(str(s) for s in a.shapes[:5]) + (" …" if len(a.shapes) > 5 else ""),
                 a.made] for a in v.input_arrays]
        parts.append("<h3>Inputs used</h3>" + _table(["input", "dtype", "shape per sample", "values"], rows))
    if v.ignored_arrays:
        parts.append(f'<p class="muted">Arrays in the input files that are not model inputs, ignored: '
                     f"{html.escape(', '.join(v.ignored_arrays))}</p>")
    if v.notes:
        parts.append(_list(v.notes))
    return "".join(parts)


def _output_table(outputs: Sequence[OutputStats]) -> str:
    rows, classes = [], []
    for o in outputs:
        top1 = "" if o.top1_agreement is None else f"{o.top1_agreement:.2%}"
        rows.append([o.name, str(o.shape), o.dtype or "", _num(o.max_abs_error), _num(o.mean_abs_error),
                     _num(o.median_abs_error), _num(o.max_rel_error), f"{o.cosine_similarity:.6f}", top1,
                     ("exact " if o.exact else "") + ("ok" if o.passed else "FAIL")])
        classes.append("" if o.passed else "bad")
    headers = ["output", "shape", "dtype", "max |err|", "mean |err|", "median |err|", "max rel", "cosine",
               "top-1 agree", "verdict"]
    return _table(headers, rows, classes, numeric={3, 4, 5, 6, 7, 8})


def _layers_section(v: ValidationReport | None) -> str:
    if v is None or not v.layerwise:
        return ('<p class="muted">Layer-wise comparison was not run (it runs by default in <code>compare</code>; '
                "give <code>--layerwise</code> to <code>optimize</code>).</p>")
    if not v.layers:
        return '<p class="muted">The two models share no intermediate tensor name.</p>'
    from onnx_share.report.plots import layer_chart

    first = v.first_divergent_layer
    compared = [layer for layer in v.layers if layer.skipped is None]
    if first is not None:
        callout = (f'<div class="callout">First tensor outside the tolerance: <b>{html.escape(first.name)}</b>, '
                   f"output of {html.escape(first.op_type)} <code>{html.escape(first.node)}</code> "
                   f"(#{first.index} of {len(v.layers)} shared tensors; cosine {first.cosine_similarity:.6f}, "
                   f"max |err| {_num(first.max_abs_error)}).</div>")
    else:
        callout = f'<div class="ok">All {len(compared)} compared shared tensors are within the tolerance.</div>'
    chart = _img(layer_chart(v.layers, float(v.tolerances.get("min_cosine") or 0.0), v.first_divergence),
                 "per-layer error chart")
    rows, classes = [], []
    for layer in v.layers:
        rows.append(_layer_row(layer))
        classes.append("first" if layer.name == v.first_divergence else "bad" if layer.passed is False else "")
    headers = ["#", "tensor", "op", "node", "shape", "max |err|", "mean |err|", "max rel", "cosine", "verdict"]
    table = _table(headers, rows, classes, numeric={0, 5, 6, 7, 8})
    return f'{callout}{chart}<div class="scroll">{table}</div>'


def _layer_row(layer: LayerStats) -> list[str]:
    if layer.skipped is not None:
        verdict = f"skipped: {layer.skipped}"
    else:
        verdict = ("exact " if layer.exact else "") + ("ok" if layer.passed else "FAIL")
    cosine = "" if layer.cosine_similarity is None else f"{layer.cosine_similarity:.6f}"
    return [str(layer.index), layer.name, layer.op_type, layer.node, str(layer.shape), _num(layer.max_abs_error),
            _num(layer.mean_abs_error), _num(layer.max_rel_error), cosine, verdict]


def _sizes_section(tensors: Sequence[TensorReport]) -> str:
    from onnx_share.report.plots import size_chart

    changed = sorted((t for t in tensors if t.scheme is not None or t.bytes_after != t.bytes_before),
                     key=lambda t: -t.bytes_before)
    if not changed:
        return '<p class="muted">No tensor changed size.</p>' + _skipped_table(tensors)
    chart = _img(size_chart(changed[:SIZE_CHART_ROWS]), "size per tensor chart")
    rows = []
    for t in changed[:TABLE_ROWS]:
        how = t.scheme or t.skipped or ""
        if t.bits is not None and t.scheme in ("codebook", "uniform"):
            how += f" {t.bits}-bit"
        if t.granularity:
            how += f" / {t.granularity}"
        ratio = f"{t.bytes_before / t.bytes_after:.1f}×" if t.bytes_after else "—"
        rel = "" if t.relative_error is None else f"{t.relative_error:.4f}"
        activation = "" if t.activation_error is None else f"{t.activation_error:.4f}"
        rows.append([t.name, ",".join(t.consumers), str(t.shape), t.dtype, how, t.storage or "", size(t.bytes_before),
                     size(t.bytes_after), ratio, rel, activation])
    headers = ["tensor", "ops", "shape", "dtype", "how", "storage", "before", "after", "ratio", "rel. error",
               "act. error (held out)"]
    more = (f'<p class="muted">… and {len(changed) - TABLE_ROWS} more changed tensors (all in the JSON report).</p>'
            if len(changed) > TABLE_ROWS else "")
    return chart + _table(headers, rows, numeric={6, 7, 8, 9, 10}) + more + _skipped_table(tensors)


def _skipped_table(tensors: Sequence[TensorReport]) -> str:
    skipped = [t for t in tensors if t.scheme is None and t.skipped and t.bytes_after == t.bytes_before]
    if not skipped:
        return ""
    reasons: dict[str, int] = {}
    for t in skipped:
        key = "below min_elements" if "< min_elements" in (t.skipped or "") else t.skipped or ""
        reasons[key] = reasons.get(key, 0) + 1
    rows = [[reason, str(count)] for reason, count in sorted(reasons.items(), key=lambda x: -x[1])]
    return (f"<details><summary>{len(skipped)} tensors left as they were</summary>"
            + _table(["reason", "tensors"], rows, numeric={1}) + "</details>")


def _weights_section(compressed: Sequence[TensorReport], histograms: Sequence[WeightHistogram]) -> str:
    if not compressed:
        return '<p class="muted">No weight was rewritten.</p>'
    if not histograms:
        return '<p class="muted">No weight histograms in this report (they are made from both model files).</p>'
    from onnx_share.report.plots import weight_histogram

    figures = []
    for histogram in histograms:
        title = f"{histogram.label} · rel. error {histogram.relative_error:.3g}"
        caption = [f"{histogram.sampled:,} of {histogram.total:,} values"
                   if histogram.sampled < histogram.total else f"all {histogram.total:,} values"]
        if histogram.centroids is not None:
            caption.append(f"red lines: the {len(histogram.centroids)} codebook values")
        elif histogram.note:
            caption.append(histogram.note)
        figures.append(f'<figure>{_img(weight_histogram(histogram, title), "histogram of " + histogram.name)}'
                       f"<figcaption>{html.escape('; '.join(caption))}</figcaption></figure>")
    intro = (f'<p class="muted">The {len(figures)} largest rewritten weights: original values (top) and the values '
             "the rewritten model decodes (bottom), on the same axis.</p>")
    return intro + '<div class="grid">' + "".join(figures) + "</div>"


def _passes_section(report: Report) -> str:
    rows = [[p.name, "yes" if p.modified else "no", str(p.count), size(p.bytes_before), size(p.bytes_after),
             f"{p.max_relative_error:.4g}", f"{p.seconds:.2f}s"] for p in report.passes]
    return _table(["pass", "changed", "changes", "before", "after", "max rel. error", "time"], rows,
                  numeric={2, 3, 4, 5, 6})


def _budget_section(budget: BudgetReport) -> str:
    from onnx_share.report.plots import budget_chart

    tried = [[str(i + 1), row.step, size(row.file_bytes), f"{row.bits:.3f}", f"{row.predicted_loss:.4g}",
              _num(row.loss), _num(row.score), {True: "yes", False: "no", None: ""}[row.passed]]
             for i, row in enumerate(budget.tried)]
    classes = ["pass" if i == budget.chosen else "" for i in range(len(budget.tried))]
    layers = sorted(budget.layers, key=lambda layer: -layer.predicted)
    rows = [[layer.name, f"{layer.elements:,}", f"{layer.sensitivity:.4g}", layer.measured_on,
             str(layer.candidates), layer.chosen, f"{layer.bits:.3f}", f"{layer.predicted:.3g}"]
            for layer in layers[:TABLE_ROWS]]
    more = f'<p class="muted">... and {len(layers) - TABLE_ROWS} more weights</p>' if len(layers) > TABLE_ROWS else ""
    return (f"<p>{html.escape(budget_line(budget))}</p>{_img(budget_chart(budget), 'rate-distortion curve')}"
            "<h3>Models built (the kept one highlighted)</h3>"
            + _table(["#", "step", "file", "bits/weight", "predicted loss", "loss", "score", "met"], tried, classes,
                     numeric={2, 3, 4, 5, 6})
            + "<h3>Per weight: sensitivity and the form chosen (largest predicted share of the loss first)</h3>"
            + _table(["tensor", "elements", "sensitivity", "error on", "candidates", "chosen", "bits/weight",
                      "predicted"], rows, numeric={1, 2, 4, 6, 7}) + more
            + (_list(budget.notes) if budget.notes else ""))


def _target_section(t: TargetReport) -> str:
    options = ", ".join(f"{k}={v}" for k, v in t.options.items())
    if not t.available:
        body = f'<p class="callout">Not run: {html.escape(t.reason or "")}</p>'
    elif not t.built:
        body = f'<p class="callout">Engine build failed: {html.escape(t.reason or "")}</p>'
    else:
        body = _table(["engine", "build time", "median latency", "vs onnxruntime"],
                      [[size(t.engine_bytes or 0), f"{t.build_seconds or 0:.1f}s", f"{t.latency_ms or 0:.3f} ms",
                        "PASS" if t.passed else "FAIL"]])
        body += _output_table(t.outputs)
    findings = ""
    if t.findings:
        findings = "<h3>Static check (what TensorRT is documented to reject)</h3>" + _list(t.findings)
    return f'<p class="muted">{html.escape(t.target)} options: {html.escape(options)}</p>{body}{findings}'


def _command_section(report: Report | CompareReport) -> str:
    command = report.command or "(run through the Python API)"
    config = json.dumps(report.config, indent=2, default=str)
    return f"<h3>Command</h3><pre>{html.escape(command)}</pre><h3>Config</h3><pre>{html.escape(config)}</pre>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], classes: Sequence[str] = (),
           numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        cells = "".join(f'<td class="{"num" if j in numeric else "name" if j == 0 else ""}">{html.escape(c)}</td>'
                        for j, c in enumerate(row))
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="chart" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"
