"""The report's charts, drawn with matplotlib's Agg backend and returned as PNG bytes (no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from onnx_share.report.data import BudgetReport, LayerStats, TensorReport, WeightHistogram
from onnx_share.report.text import clip, size

BEFORE, AFTER, CENTROID, FAIL, PASS, LIMIT = "#4e79a7", "#f28e2b", "#e15759", "#d62728", "#59a14f", "#7f7f7f"
DPI = 100


def size_chart(rows: Sequence[TensorReport]) -> bytes:
    """Horizontal bars: bytes before and after for each tensor, largest on top."""
    height = 1.2 + 0.32 * len(rows)
    fig = Figure(figsize=(9.5, height), dpi=DPI)
    labels = [clip(r.name, 42) for r in rows]
    fig.subplots_adjust(left=0.03 + 5.2 * max(map(len, labels)) / (9.5 * DPI), right=0.97,
                        top=1 - 0.35 / height, bottom=0.6 / height)
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    before = np.array([r.bytes_before for r in rows], dtype=float)
    after = np.array([r.bytes_after for r in rows], dtype=float)
    ax.barh(y + 0.2, before, height=0.38, color=BEFORE, label="before")
    ax.barh(y - 0.2, after, height=0.38, color=AFTER, label="after")
    ax.set_yticks(y, labels, fontsize=8)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: size(v)))
    ax.set_xlabel("bytes")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Size per tensor, before and after", fontsize=10)
    return _png(fig)


def weight_histogram(histogram: WeightHistogram, title: str) -> bytes:
    """Two panels sharing the value axis: the original weights, then the decoded ones; codebook levels as lines."""
    fig = Figure(figsize=(5.6, 3.6), dpi=DPI)
    fig.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.13, hspace=0.1)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.stairs(histogram.before, histogram.edges, color=BEFORE, fill=True)
    bottom.stairs(histogram.after, histogram.edges, color=AFTER, fill=True)
    if histogram.centroids is not None:
        for axis in (top, bottom):
            axis.vlines(histogram.centroids, 0, 1, transform=axis.get_xaxis_transform(), color=CENTROID,
                        linewidth=0.6, alpha=0.7, label=f"{len(histogram.centroids)} centroids")
        top.legend(loc="upper right", fontsize=7)
    top.set_ylabel("before", fontsize=8)
    bottom.set_ylabel("after", fontsize=8)
    bottom.set_xlabel("weight value", fontsize=8)
    for axis in (top, bottom):
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.25)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def layer_chart(layers: Sequence[LayerStats], min_cosine: float, first: str | None) -> bytes:
    """Per shared tensor in topological order: 1 - cosine similarity and max |error| (log scales), the
    tolerance line, failing tensors in red, the first diverging one marked."""
    rows = [layer for layer in layers if layer.skipped is None]
    labelled = len(rows) <= 30
    labels = [clip(layer.name, 24) for layer in rows] if labelled else []
    label_inches = 0.042 * max(map(len, labels), default=0)  # rotated 60°: height grows with the longest label
    height = 3.8 + label_inches
    fig = Figure(figsize=(10, height), dpi=DPI)
    fig.subplots_adjust(left=0.1, right=0.98, top=1 - 0.4 / height, bottom=(0.5 + label_inches) / height,
                        hspace=0.12)
    top, bottom = fig.subplots(2, 1, sharex=True)
    x = np.array([layer.index for layer in rows])
    floor = 1e-12
    distance = np.array([max(1.0 - (layer.cosine_similarity or 0.0), floor) for layer in rows])
    error = np.array([max(layer.max_abs_error or 0.0, floor) for layer in rows])
    colors = [FAIL if layer.passed is False else PASS for layer in rows]
    for axis, data, label in ((top, distance, "1 − cosine"), (bottom, error, "max |error|")):
        axis.plot(x, data, color=LIMIT, linewidth=0.8, zorder=1)
        axis.scatter(x, data, c=colors, s=14, zorder=2)
        axis.set_yscale("log")
        axis.set_ylabel(label, fontsize=8)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
    top.axhline(max(1.0 - min_cosine, floor), color=FAIL, linestyle="--", linewidth=0.8,
                label=f"tolerance (cosine {min_cosine:g})")
    top.legend(loc="upper left", fontsize=7)
    for axis in (top, bottom):
        axis.margins(y=0.12)
    marked = next((layer for layer in rows if layer.name == first), None)
    if marked is not None:
        for axis in (top, bottom):
            axis.axvline(marked.index, color=FAIL, linewidth=1.0)
        top.set_title(f"first diverging: #{marked.index} {clip(marked.name, 60)}", fontsize=8, color=FAIL,
                      loc="right")
    if labelled:
        bottom.set_xticks(x, labels, rotation=60, ha="right", fontsize=6)
    bottom.set_xlabel("shared tensor, in the original's topological order", fontsize=8)
    fig.suptitle("Per-layer error", fontsize=10)
    return _png(fig)


def budget_chart(budget: BudgetReport) -> bytes:
    """The rate–distortion curve of a budget search: predicted loss against file size along the frontier, and
    each model built (measured loss, or score, against its size), the kept one marked."""
    fig = Figure(figsize=(8, 3.6), dpi=DPI)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.88, bottom=0.16)
    ax = fig.add_subplot()
    floor = 1e-9
    if budget.curve:
        ax.plot([p.file_bytes for p in budget.curve], [max(p.predicted_loss, floor) for p in budget.curve],
                color=LIMIT, marker=".", linewidth=0.9, label="predicted (frontier)")
    measured = [(p.file_bytes, p.loss) for p in budget.tried if p.loss is not None]
    if measured:
        ax.scatter([b for b, _ in measured], [max(v, floor) for _, v in measured], color=BEFORE, zorder=3,
                   label=f"built: measured {budget.loss} loss")
    ax.set_yscale("log")
    ax.set_ylabel(f"{budget.loss} loss" if budget.loss != "score" else "relative loss", fontsize=8)
    scored = [(p.file_bytes, p.score) for p in budget.tried if p.score is not None]
    if scored:
        right = ax.twinx()
        right.scatter([b for b, _ in scored], [v for _, v in scored], color=AFTER, marker="s", zorder=3,
                      label="built: score")
        right.set_ylabel("score", fontsize=8)
        right.legend(loc="upper center", fontsize=7)
    if budget.chosen is not None:
        ax.axvline(budget.tried[budget.chosen].file_bytes, color=PASS, linewidth=1.0, label="kept")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: size(v)))
    ax.set_xlabel("file size", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(f"Rate–distortion: {budget.goal}", fontsize=9)
    return _png(fig)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
