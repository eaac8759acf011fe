"""The bundled digits CNN: test accuracy of compressed variants against the float model (run with -s to see them).

``models/digits_cnn/evaluate.py`` scores a model file on the held-out split in ``digits_test.npz``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from helpers import DIGITS_DIR

import onnx_share
from onnx_share.api import OptimizeResult

MODEL = DIGITS_DIR / "digits_cnn.onnx"
RECORDED_FLOAT_ACCURACY = 445 / 450  # models/digits_cnn/README.md, onnxruntime 1.31.1
LARGE_WEIGHTS = {"conv2.weight", "conv3.weight", "fc1.weight"}  # the weights with >= 4096 elements (README)
CONFIGS = {
    "codebook8": {"default": {"bits": 8, "scheme": "codebook", "granularity": "tensor"}},
    "codebook4": {"default": {"bits": 4, "scheme": "codebook"}},
    "uniform8": {"default": {"bits": 8, "scheme": "uniform"}},
}


def _load_evaluate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("digits_evaluate", DIGITS_DIR / "evaluate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Variant:
    path: Path
    accuracy: float
    result: OptimizeResult | None = None

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Variant]:
    evaluate = _load_evaluate()
    out_dir = tmp_path_factory.mktemp("digits")
    found = {"float": Variant(MODEL, evaluate.accuracy(MODEL))}
    for name, config in CONFIGS.items():
        result = onnx_share.optimize(MODEL, config)
        path = result.save(out_dir / f"{name}.onnx")
        found[name] = Variant(path, evaluate.accuracy(path), result)
    print()
    for name, variant in found.items():
        ratio = found["float"].size / variant.size
        print(f"digits_cnn {name:<9} accuracy {variant.accuracy:.4f}  "
              f"file {variant.size:>7} bytes  ({ratio:.2f}x smaller)")
    return found


def test_float_accuracy_recorded(variants: dict[str, Variant]) -> None:
    assert variants["float"].accuracy == pytest.approx(RECORDED_FLOAT_ACCURACY)


def test_lut8_per_tensor_accuracy_equals_float(variants: dict[str, Variant]) -> None:
    codebook8 = variants["codebook8"]
    assert codebook8.result is not None
    rows = codebook8.result.report.compressed
    assert {t.name for t in rows} == LARGE_WEIGHTS
    assert all(t.scheme == "codebook" and t.bits == 8 and t.granularity == "tensor" for t in rows)
    assert codebook8.accuracy == variants["float"].accuracy


def test_lut4_within_one_point_and_four_times_smaller(variants: dict[str, Variant]) -> None:
    codebook4, original = variants["codebook4"], variants["float"]
    assert codebook4.result is not None
    assert {t.name for t in codebook4.result.report.compressed} == LARGE_WEIGHTS
    assert abs(codebook4.accuracy - original.accuracy) <= 0.01
    assert codebook4.size * 4 <= original.size, f"{original.size} -> {codebook4.size} bytes"
    assert codebook4.result.report.file_bytes_before == original.size
    assert codebook4.result.report.file_bytes_after == codebook4.size


def test_uniform8_auto_within_one_point(variants: dict[str, Variant]) -> None:
    uniform8 = variants["uniform8"]
    assert uniform8.result is not None
    rows = uniform8.result.report.compressed
    assert rows and all(t.scheme == "uniform" and t.bits == 8 for t in rows)
    assert abs(uniform8.accuracy - variants["float"].accuracy) <= 0.01


def test_uniform8_auto_compresses_every_large_weight(variants: dict[str, Variant]) -> None:
    """Every large weight is compressed: the pass plans the opset once, before inserting any node."""
    result = variants["uniform8"].result
    assert result is not None
    skipped = {t.name: t.skipped for t in result.report.tensors if t.skipped}
    assert {t.name for t in result.report.compressed} == LARGE_WEIGHTS, skipped
