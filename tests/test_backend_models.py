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
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper as onh
import onnxruntime as ort
import pytest
from onnx import version_converter

import onnx_share

ort.set_default_logger_severity(3)  # old-opset and initializer-in-inputs warnings would drown the output

DATA = Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data"
FOLDERS = ("pytorch-converted", "pytorch-operator", "simple")
CONFIGS = {
    "lut4": {"default": {"bits": 4, "scheme": "lut"}, "min_elements": 16},
    "uniform8": {"default": {"bits": 8, "scheme": "uniform"}, "min_elements": 16},
}
DETACHED_OPSET = 9  # what old models are converted to: the oldest opset of the ``simple`` and ``light`` models


@dataclass(frozen=True)
class Case:
    id: str
    model: Path
    data_dir: Path | None  # test_data_set_0 with input_*.pb; None for ``light`` models (no shipped inputs)


def _cases() -> list[Case]:
    cases = []
    for folder in FOLDERS:
        for case_dir in sorted((DATA / folder).iterdir()):
            if (case_dir / "model.onnx").is_file():
                cases.append(Case(f"{folder}/{case_dir.name}", case_dir / "model.onnx", case_dir / "test_data_set_0"))
    for model in sorted((DATA / "light").glob("light_*.onnx")):
        cases.append(Case(f"light/{model.name}", model, None))
    return cases


CASES = {case.id: case for case in _cases()}


def _has_float_initializers(case: Case) -> bool:
    model = onnx.load(case.model, load_external_data=False)
    return any(t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) for t in model.graph.initializer)


DETACHABLE = [case_id for case_id, case in CASES.items() if case.data_dir is not None and _has_float_initializers(case)]


def test_all_backend_folders_found() -> None:
    for folder in (*FOLDERS, "light"):
        assert any(case_id.startswith(f"{folder}/") for case_id in CASES), f"no models found in {DATA / folder}"
    assert len(DETACHABLE) >= 30


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _dummy_input(value_info: onnx.ValueInfoProto) -> np.ndarray:
    """The input the onnx backend runner generates for ``light`` models (``generate_dummy_data``, random=False)."""
    tensor_type = value_info.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tensor_type.shape.dim)
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))


@functools.cache
def _feeds(case_id: str) -> dict[str, np.ndarray]:
    """The case's inputs keyed by graph input name (graph inputs that are not initializers, in order)."""
    case = CASES[case_id]
    inputs = _graph_inputs(onnx.load(case.model, load_external_data=False))
    if case.data_dir is None:
        return {i.name: _dummy_input(i) for i in inputs}
    files = sorted(case.data_dir.glob("input_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
    assert len(files) == len(inputs), f"{len(files)} input files for graph inputs {[i.name for i in inputs]}"
    feeds = {}
    for value_info, path in zip(inputs, files, strict=True):
        assert value_info.type.HasField("tensor_type"), f"input {value_info.name} is not a tensor"
        tensor = onnx.TensorProto()
        tensor.ParseFromString(path.read_bytes())
        feeds[value_info.name] = onh.to_array(tensor)
    return feeds


def _run(model: Path | bytes, feeds: dict[str, np.ndarray]) -> tuple[list[str], list]:
    """Output names and values in onnxruntime (CPU, default options: what validation's Polygraphy runner uses)."""
    session = ort.InferenceSession(model if isinstance(model, bytes) else str(model),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return names, session.run(None, feeds)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


@functools.cache
def _original_outputs(case_id: str, detached: bool) -> tuple[list[str], list] | str:
    """The original's outputs on the case's inputs, or why onnxruntime cannot load or run it."""
    model = _detached_model(case_id) if detached else CASES[case_id].model
    try:
        return _run(model, _feeds(case_id))
    except Exception as exc:  # onnxruntime raises Fail, NotImplemented, InvalidGraph, RuntimeError...
        return f"onnxruntime {ort.__version__} cannot run the original: {_first_line(exc)}"


@functools.cache
def _detached_model(case_id: str) -> bytes:
    """The model as a current exporter writes it: opset >= 9, initializers not graph inputs, IR >= 4."""
    model = onnx.load(CASES[case_id].model)
    initializers = {t.name for t in model.graph.initializer}
    if model.opset_import[0].version < DETACHED_OPSET:
        model = version_converter.convert_version(model, DETACHED_OPSET)
    inputs = [i for i in model.graph.input if i.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    model.ir_version = max(model.ir_version, 4)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _is_string(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind in "OSU"


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


def _assert_identical(name: str, reference, candidate) -> None:
    if isinstance(reference, list):  # a sequence output
        assert isinstance(candidate, list) and len(candidate) == len(reference), name
        for ref, new in zip(reference, candidate, strict=True):
            _assert_identical(name, ref, new)
        return
    assert candidate.dtype == reference.dtype and candidate.shape == reference.shape, name
    if _is_string(reference):
        assert candidate.tolist() == reference.tolist(), name
    else:
        np.testing.assert_array_equal(candidate, reference, err_msg=f"output {name} changed bits")


def _npz_value(value: np.ndarray) -> np.ndarray:
    """Arrays ``np.savez`` stores without pickling (strings as fixed-width unicode)."""
    return np.asarray(value.tolist(), dtype=str) if value.dtype == object else value


def _check(case_id: str, config_name: str, tmp_path: Path, *, detached: bool) -> None:
    original = _original_outputs(case_id, detached)
    source: Path
    if detached:
        source = tmp_path / "original.onnx"
        source.write_bytes(_detached_model(case_id))
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
    feeds = _feeds(case_id)

    names, outputs = _run(out, feeds)
    assert names == ref_names
    for name, ref, new in zip(names, ref_outputs, outputs, strict=True):
        assert type(new) is type(ref), name
        if isinstance(ref, np.ndarray):
            assert new.dtype == ref.dtype and new.shape == ref.shape, name
    if not result.report.compressed:
        for name, ref, new in zip(names, ref_outputs, outputs, strict=True):
            _assert_identical(name, ref, new)

    npz = tmp_path / "inputs.npz"
    np.savez(npz, **{name: _npz_value(value) for name, value in feeds.items()})
    string_inputs = [name for name, value in feeds.items() if _is_string(value)]
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
        if _is_string(ref) or isinstance(ref, list):
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
