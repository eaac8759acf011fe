"""The ONNX backend test models shipped inside the ``onnx`` package, optimized and checked in onnxruntime.

Every model under ``onnx/backend/test/data/{pytorch-converted,pytorch-operator,simple,light}`` is optimized
with two configs (4-bit LUT, 8-bit uniform; ``min_elements`` 16 so the small operator-test weights qualify),
saved, checked, run on its shipped inputs (``light`` models ship none: they get the input the onnx backend
runner generates), validated, and compared with the original in onnxruntime:

- optimize may refuse (``OnnxShareError``) only a model that onnxruntime itself cannot load or run; such
  models are skipped, with onnxruntime's reason;
- every output stays within the error the validation report claims versus the original;
- when nothing was compressed, every output is bit-identical to the original's.

As shipped, the pytorch models are IR 3 (every initializer is also a graph input, so it can be overridden at
run time and is not a constant weight) and mostly opset 6; ``light`` models build their weights at run time
(``ConstantOfShape``). So ``test_detached_weights`` also runs every model with float initializers in the form
a current exporter writes: opset raised to 9 by the onnx version converter where it is older, initializers
no longer graph inputs, IR 4. Those are the models whose Conv/ConvTranspose/Gemm/MatMul weights get compressed.
The case list, inputs and original outputs come from ``backend_cases.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from backend_cases import CASES, DATA, DETACHABLE, FOLDERS, case_feeds, detached_model, original_outputs, run_outputs
from helpers import assert_identical, is_string

import onnx_share

CONFIGS = {
    "lut4": {"default": {"bits": 4, "scheme": "lut"}, "min_elements": 16},
    "uniform8": {"default": {"bits": 8, "scheme": "uniform"}, "min_elements": 16},
}


def test_all_backend_folders_found() -> None:
    for folder in (*FOLDERS, "light"):
        assert any(case_id.startswith(f"{folder}/") for case_id in CASES), f"no models found in {DATA / folder}"
    assert len(DETACHABLE) >= 30


def _error_and_cosine(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """Max abs error and cosine similarity, NaNs in the same places counting as equal."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    new = np.asarray(candidate, dtype=np.float64).ravel()
    both_nan = np.isnan(ref) & np.isnan(new)
    ref, new = np.where(both_nan, 0.0, ref), np.where(both_nan, 0.0, new)
    error = np.nan_to_num(np.abs(new - ref), nan=np.inf)
    norms = float(np.linalg.norm(ref)) * float(np.linalg.norm(new))
    cosine = float(np.dot(ref, new)) / norms if norms > 0 else float(np.array_equal(ref, new))
    return (float(error.max()) if error.size else 0.0), cosine


def _npz_value(value: np.ndarray) -> np.ndarray:
    """Arrays ``np.savez`` stores without pickling (strings as fixed-width unicode)."""
    return np.asarray(value.tolist(), dtype=str) if value.dtype == object else value


def _check(case_id: str, config_name: str, tmp_path: Path, *, detached: bool) -> None:
    original = original_outputs(case_id, detached)
    source: Path
    if detached:
        source = tmp_path / "original.onnx"
        source.write_bytes(detached_model(case_id))
    else:
        source = CASES[case_id].model
    try:
        result = onnx_share.optimize(source, CONFIGS[config_name])
    except onnx_share.OnnxShareError as exc:
        if isinstance(original, str):
            pytest.skip(f"{original} (optimize refuses it too: {exc})")
        pytest.fail(f"optimize refused a model onnxruntime {ort.__version__} runs: {exc}")
    out = result.save(tmp_path / "out.onnx")
    onnx.checker.check_model(str(out))
    if isinstance(original, str):
        pytest.skip(original)  # optimized and saved a valid model; nothing to compare it with
    ref_names, ref_outputs = original
    feeds = case_feeds(case_id)

    names, outputs = run_outputs(out, feeds)
    assert names == ref_names
    for name, ref, new in zip(names, ref_outputs, outputs, strict=True):
        assert type(new) is type(ref), name
        if isinstance(ref, np.ndarray):
            assert new.dtype == ref.dtype and new.shape == ref.shape, name
    if not result.report.compressed:
        for name, ref, new in zip(names, ref_outputs, outputs, strict=True):
            assert_identical(name, ref, new)

    npz = tmp_path / "inputs.npz"
    np.savez(npz, **{name: _npz_value(value) for name, value in feeds.items()})
    string_inputs = [name for name, value in feeds.items() if is_string(value)]
    try:
        validation = result.validate(onnx_share.ValidationConfig(inputs=(str(npz),), min_cosine=-1.0))
    except onnx_share.OnnxShareError as exc:
        if string_inputs:  # Polygraphy's runner rejects every numpy string dtype for tensor(string) inputs
            pytest.xfail(f"validation cannot feed string inputs {string_inputs}: {exc}")
        raise
    assert result.report.validation is validation
    assert validation.samples == 1 and validation.passed
    stats = {s.name: s for s in validation.outputs}
    assert set(stats) == set(names)
    for name, ref, new in zip(names, ref_outputs, outputs, strict=True):
        if is_string(ref) or isinstance(ref, list):
            continue  # no numeric error to claim; covered by the bit-identity check when nothing was compressed
        error, cosine = _error_and_cosine(ref, new)
        claim = stats[name]
        assert error <= claim.max_abs_error * (1 + 1e-6) + 1e-6, (name, error, claim)
        assert cosine == pytest.approx(claim.cosine_similarity, abs=1e-6), (name, cosine, claim)
        if not result.report.compressed:
            assert claim.max_abs_error == 0.0 and claim.cosine_similarity == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("case_id", list(CASES))
@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_shipped_model(case_id: str, config_name: str, tmp_path: Path) -> None:
    _check(case_id, config_name, tmp_path, detached=False)


@pytest.mark.parametrize("case_id", DETACHABLE)
@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_detached_weights(case_id: str, config_name: str, tmp_path: Path) -> None:
    _check(case_id, config_name, tmp_path, detached=True)
