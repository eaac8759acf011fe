"""The ONNX backend test models shipped inside the ``onnx`` package, as cases for the tests that run them
(``test_backend_models.py``, ``passes/test_share.py``, ``passes/test_fold_qdq.py``).

Every model under ``onnx/backend/test/data/{pytorch-converted,pytorch-operator,simple,light}`` is one case:
its inputs (shipped ``test_data_set_0``, or for ``light`` models the input the onnx backend runner generates),
the original's outputs in onnxruntime, and the model in the detached form a current exporter writes
(:func:`detached_model`). Kept apart from ``helpers.py`` because building the case list reads every model.
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
from onnx import version_converter

ort.set_default_logger_severity(3)  # old-opset and initializer-in-inputs warnings would drown the output

DATA = Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data"
FOLDERS = ("pytorch-converted", "pytorch-operator", "simple")
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
def case_feeds(case_id: str) -> dict[str, np.ndarray]:
    """The case's inputs keyed by graph input name (graph inputs that are not initializers, in order)."""
    case = CASES[case_id]
    inputs = _graph_inputs(onnx.load(case.model, load_external_data=False))
    if case.data_dir is None:
        return {i.name: _dummy_input(i) for i in inputs}
    files = sorted(case.data_dir.glob("input_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
    assert len(files) == len(inputs), f"{len(files)} input files for graph inputs {[i.name for i in inputs]}"
    found = {}
    for value_info, path in zip(inputs, files, strict=True):
        assert value_info.type.HasField("tensor_type"), f"input {value_info.name} is not a tensor"
        tensor = onnx.TensorProto()
        tensor.ParseFromString(path.read_bytes())
        found[value_info.name] = onh.to_array(tensor)
    return found


def run_outputs(model: Path | bytes, inputs: dict[str, np.ndarray]) -> tuple[list[str], list]:
    """Output names and values in onnxruntime (CPU, default options: what validation's Polygraphy runner uses)."""
    session = ort.InferenceSession(model if isinstance(model, bytes) else str(model),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return names, session.run(None, inputs)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


@functools.cache
def original_outputs(case_id: str, detached: bool) -> tuple[list[str], list] | str:
    """The original's outputs on the case's inputs, or why onnxruntime cannot load or run it."""
    model = detached_model(case_id) if detached else CASES[case_id].model
    try:
        return run_outputs(model, case_feeds(case_id))
    except Exception as exc:  # onnxruntime raises Fail, NotImplemented, InvalidGraph, RuntimeError...
        return f"onnxruntime {ort.__version__} cannot run the original: {_first_line(exc)}"


@functools.cache
def detached_model(case_id: str) -> bytes:
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
