"""The HTML report: self-contained (nothing fetched), holds the tables and charts, and renders in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import DIGITS_DIR, ROOT, replace_initializers

from onnx_share.api import compare
from onnx_share.check.weight_diff import WeightDiff
from onnx_share.cli import main as cli
from onnx_share.config import ValidationConfig
from onnx_share.io.proto import ProtoModel
from onnx_share.report.html import render_html
from onnx_share.report.plots import AFTER, BEFORE

DIGITS = DIGITS_DIR / "digits_cnn.onnx"
DIGITS_INPUTS = DIGITS_DIR / "digits_test.npz"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def optimized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``optimize --report-html`` on the digits CNN, through the CLI: (model, JSON report, HTML report)."""
    folder = tmp_path_factory.mktemp("html")
    model, report, page = folder / "d4.onnx", folder / "d4.json", folder / "d4.html"
    status = cli.main(["optimize", str(DIGITS), str(model), "--bits", "4", "--inputs", str(DIGITS_INPUTS),
                       "--report", str(report), "--report-html", str(page)])
    assert status == 0
    return model, report, page


@pytest.fixture(scope="module")
def corrupted_compare_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A compare report of the digits CNN against a copy whose conv3 weight is corrupted."""
    folder = tmp_path_factory.mktemp("corrupt")
    model = onnx.load(DIGITS)
    weight = onnx.numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "conv3.weight"))
    path = folder / "corrupt.onnx"
    onnx.save(replace_initializers(model, {"conv3.weight": weight * np.float32(-1.5)}), path)
    report = compare(DIGITS, path, ValidationConfig(inputs=(str(DIGITS_INPUTS),), layerwise=True))
    return render_html(_with_histograms(report, DIGITS, path))


def _with_histograms(report, original: Path, rewritten: Path):
    """The report with the weight histograms the CLI adds before rendering (the renderer reads no file)."""
    if report.compressed:
        report.histograms = WeightDiff(ProtoModel.read(original), ProtoModel.read(rewritten)).histograms(
            report.compressed)
    return report


def _attribute_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', page, flags=re.IGNORECASE)


def test_page_is_self_contained(optimized: tuple[Path, Path, Path], corrupted_compare_page: str) -> None:
    for page in (optimized[2].read_text(), corrupted_compare_page):
        urls = _attribute_urls(page)
        assert urls, "the page has images"
        assert not [u for u in urls if re.match(r"\s*(https?:)?//", u)], "nothing is fetched over the network"
        assert all(u.startswith(("data:image/png;base64,", "#")) for u in urls)
        assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
        assert "url(" not in page, "no CSS fetches"


def test_optimize_page_has_tables_histograms_command_and_config(optimized: tuple[Path, Path, Path]) -> None:
    _, report, page_path = optimized
    page = page_path.read_text()
    data = json.loads(report.read_text())
    assert data["command"].startswith("onnx-share optimize ") and "--report-html" in data["command"]
    assert data["validation"]["layerwise"] is True, "--report-html turns on the layer-wise comparison"
    for section in ("outputs", "layers", "sizes", "weights", "passes", "command"):
        assert f'<section id="{section}">' in page
    assert page.count('<img class="chart"') == 1 + 1 + 3, "size chart, layer chart, 3 weight histograms"
    assert "red lines: the 256 codebook values" in page  # fc1: auto granularity gives 16 codebooks of 16
    assert "<td class=\"name\">fc1.weight</td>" in page and "UINT4" in page
    assert "<td class=\"name\">logits</td>" in page and "/conv3/Conv_output_0" in page
    assert "All 12 compared shared tensors are within the tolerance." in page
    assert "--report-html" in page and "&quot;bits&quot;: 4" in page


def test_compare_page_marks_the_first_diverging_layer(corrupted_compare_page: str) -> None:
    page = corrupted_compare_page
    assert "First tensor outside the tolerance: <b>/conv3/Conv_output_0</b>" in page
    assert '<tr class="first"><td class="num">5</td><td class="">/conv3/Conv_output_0</td>' in page
    assert "FAIL" in page and "No weight was rewritten." in page


def test_json_schema_doc_names_every_field(optimized: tuple[Path, Path, Path]) -> None:
    """docs/REPORT_SCHEMA.md documents each key the JSON report has."""
    doc = (ROOT / "docs" / "REPORT_SCHEMA.md").read_text()
    data = json.loads(optimized[1].read_text())
    keys = set(data) | set(data["validation"]) | set(data["validation"]["outputs"][0])
    keys |= set(data["validation"]["layers"][0]) | set(data["tensors"][0]) | set(data["passes"][0])
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing


def _chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_page_renders_in_headless_chromium(optimized: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from PIL import Image

    page = optimized[2].resolve().as_uri()
    dom = _chromium("--dump-dom", page, tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<img") == 5 and dom.stdout.count("<table") >= 4
    assert "fc1.weight" in dom.stdout and "logits" in dom.stdout
    shot = tmp_path / "page.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1280,3000", page, tmp_path=tmp_path)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    colors = {tuple(int(BEFORE[i:i + 2], 16) for i in (1, 3, 5)), tuple(int(AFTER[i:i + 2], 16) for i in (1, 3, 5))}
    for color in colors:
        assert (np.abs(pixels.astype(int) - color).sum(axis=1) < 12).sum() > 500, f"chart color {color} is drawn"


def test_page_without_validation_or_rewritten_weights(tmp_path: Path) -> None:
    from onnx_share.api import optimize

    result = optimize(DIGITS, {"min_elements": 10**9})
    result.save(tmp_path / "same.onnx")
    page = render_html(_with_histograms(result.report, DIGITS, tmp_path / "same.onnx"))
    assert "NOT VALIDATED" in page and "were not compared" in page and "No weight was rewritten." in page
    assert "(run through the Python API)" in page
