"""Static target checks (each TensorRT and onnxruntime rule, positive and negative) and the TensorRT path."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnxruntime as ort
import pytest
from helpers import DIGITS_DIR, tensor_info

from onnx_share.api import optimize
from onnx_share.check.runners import onnxrt_session
from onnx_share.cli import main as cli
from onnx_share.config import ValidationConfig
from onnx_share.targets import tensorrt as trt_target
from onnx_share.targets.checks import check_model

DIGITS = DIGITS_DIR / "digits_cnn.onnx"
T = onnx.TensorProto


def _out(name: str) -> onnx.ValueInfoProto:
    return oh.make_tensor_value_info(name, T.FLOAT, None)


def _model(nodes: Sequence[onnx.NodeProto], initializers: dict[str, np.ndarray], *, inputs: Sequence = (),
           outputs: Sequence = (), opset: int = 21, ir_version: int = 10) -> bytes:
    """A graph (not run through the checker: some are meant to be invalid for a target) as bytes."""
    graph = oh.make_graph(list(nodes), "g", list(inputs) or [tensor_info("x", T.FLOAT, [1, 256])],
                          list(outputs) or [_out("y")],
                          initializer=[onh.from_array(v, k) for k, v in initializers.items()])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=ir_version)
    return model.SerializeToString()


def _rules(model: bytes, target: str) -> list[str]:
    return [f.rule for f in check_model(model, target)]


def _dq_matmul(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None = None, consumer: str = "MatMul",
               **attributes: int) -> bytes:
    inputs = ["q", "s"] + (["z"] if zero is not None else [])
    weights = {"q": q, "s": scale, **({"z": zero} if zero is not None else {})}
    gemm = {"transB": attributes.pop("transB")} if "transB" in attributes else {}
    nodes = [oh.make_node("DequantizeLinear", inputs, ["w"], name="dq", **attributes),
             oh.make_node(consumer, ["x", "w"], ["y"], name="mm", **gemm)]
    return _model(nodes, weights)


INT4 = ml_dtypes.int4


def _int4(shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape, dtype=np.int8).astype(INT4)


# ---- TensorRT ----------------------------------------------------------------------------------------------


def test_trt_zero_point_must_be_zero() -> None:
    q, scale = np.ones((256, 8), np.int8), np.float32(0.1)
    assert "zero-point" in _rules(_dq_matmul(q, scale, np.int8(3)), "tensorrt")
    assert "zero-point" not in _rules(_dq_matmul(q, scale, np.int8(0)), "tensorrt")
    assert "zero-point" not in _rules(_dq_matmul(q, scale), "tensorrt")
    nodes = [oh.make_node("Cast", ["zx"], ["z"], to=T.INT8),
             oh.make_node("DequantizeLinear", ["q", "s", "z"], ["w"], name="dq"),
             oh.make_node("MatMul", ["x", "w"], ["y"])]
    runtime_zero = _model(nodes, {"q": q, "s": scale}, inputs=[tensor_info("x", T.FLOAT, [1, 256]),
                                                                tensor_info("zx", T.FLOAT, [])])
    (finding,) = [f for f in check_model(runtime_zero, "tensorrt") if f.rule == "zero-point"]
    assert finding.node == "dq" and "computed at run time" in finding.reason


def test_trt_dequantize_data_types() -> None:
    scale = np.float32(0.1)
    (finding,) = check_model(_dq_matmul(np.ones((256, 8), np.uint8), scale), "tensorrt")
    assert finding.rule == "dequantize-type" and "UINT8" in finding.reason and finding.op_type == "DequantizeLinear"
    assert _rules(_dq_matmul(np.ones((256, 8), np.int8), scale), "tensorrt") == []


@pytest.mark.parametrize(
    ("q", "attributes", "expected"),
    [
        (_int4((256, 8)), {"axis": 0, "block_size": 64}, []),
        (_int4((256, 8)), {"axis": 0, "block_size": 128}, []),
        (_int4((256, 8)), {"axis": 0, "block_size": 32}, ["int4-block-size"]),
        (np.ones((256, 8), np.int8), {"axis": 0, "block_size": 64}, ["block-type"]),
        (_int4((256, 8)), {"axis": 1}, []),  # per-channel INT4
    ],
)
def test_trt_blocked_quantization(q: np.ndarray, attributes: dict[str, int], expected: list[str]) -> None:
    axis, block = attributes.get("axis", 1), attributes.get("block_size")
    shape = [d if i != axis or block is None else d // block for i, d in enumerate(q.shape)]
    scale = np.full(shape if block else [q.shape[axis]], 0.1, np.float32)
    assert _rules(_dq_matmul(q, scale, **attributes), "tensorrt") == expected


def test_trt_int4_block_axis_and_axes_and_weight_only() -> None:
    q = _int4((256, 4, 8))
    nodes = [oh.make_node("DequantizeLinear", ["q", "s"], ["w"], axis=0, block_size=64, name="dq"),
             oh.make_node("Identity", ["w"], ["y"])]
    assert _rules(_model(nodes, {"q": q, "s": np.ones((4, 4, 8), np.float32)}), "tensorrt") == ["int4-block-axis"]
    two_axes = _model(nodes, {"q": _int4((256, 128)), "s": np.ones((4, 2), np.float32)})
    assert "int4-block-axes" in _rules(two_axes, "tensorrt")
    runtime = [oh.make_node("DequantizeLinear", ["qx", "s"], ["y"], axis=1, block_size=64, name="dq")]
    model = _model(runtime, {"s": np.ones((8, 4), np.float32)}, inputs=[tensor_info("qx", T.INT4, [8, 256])])
    assert _rules(model, "tensorrt") == ["int4-weight-only"]


def test_trt_uint8_only_at_network_edges() -> None:
    intermediate = [oh.make_node("Cast", ["x"], ["u"], to=T.UINT8, name="to_u8"),
                    oh.make_node("Cast", ["u"], ["y"], to=T.FLOAT, name="back")]
    (finding,) = check_model(_model(intermediate, {}), "tensorrt")
    assert (finding.rule, finding.node) == ("uint8-tensor", "to_u8") and "inside the network" in finding.reason
    at_output = [oh.make_node("Cast", ["x"], ["y"], to=T.UINT8, name="to_u8")]
    assert _rules(_model(at_output, {}, outputs=[tensor_info("y", T.UINT8, [1, 256])]), "tensorrt") == []
    table = np.arange(16, dtype=np.float32)
    for to, expected in ((T.INT32, ["uint8-tensor"]), (T.FLOAT, [])):
        nodes = [oh.make_node("Cast", ["idx"], ["i"], to=to, name="cast")]
        if to == T.INT32:
            nodes.append(oh.make_node("Gather", ["table", "i"], ["y"], name="gather"))
        model = _model(nodes, {"idx": np.zeros((4, 4), np.uint8), "table": table},
                       outputs=[_out("y" if to == T.INT32 else "i")])
        assert _rules(model, "tensorrt") == expected


def test_trt_gather_data_types() -> None:
    for data, expected in ((np.ones((16, 4), np.int8), ["gather-data-type"]), (np.ones((16, 4), np.float32), [])):
        nodes = [oh.make_node("Gather", ["table", "ids"], ["y"], name="gather")]
        model = _model(nodes, {"table": data}, inputs=[tensor_info("ids", T.INT64, [3])])
        assert _rules(model, "tensorrt") == expected


def test_trt_types_it_lacks() -> None:
    nodes = [oh.make_node("Cast", ["idx"], ["i"], to=T.INT32, name="cast"),
             oh.make_node("Gather", ["table", "i"], ["y"], name="gather")]
    model = _model(nodes, {"idx": np.zeros((4, 4), np.uint8).astype(ml_dtypes.uint4),
                           "table": np.arange(16, dtype=np.float32)})
    (finding,) = check_model(model, "tensorrt")
    assert (finding.rule, finding.node) == ("unsupported-type", "cast") and "UINT4" in finding.reason


def test_trt_check_of_onnx_share_layouts(tmp_path: Path) -> None:
    """The uniform scheme's default layouts pass (4-bit: symmetric, blocks of 128 on the Gemm, per channel on
    Conv; 8-bit: per channel); codebook indices (UINT8/UINT4 cast to INT32) are what TensorRT rejects."""
    layouts = {
        "uniform4": {"default": {"scheme": "uniform", "bits": 4}},
        "uniform8-channel": {"default": {"scheme": "uniform", "bits": 8}},
        "codebook4": {"default": {"bits": 4}},
    }
    found = {}
    for name, config in layouts.items():
        path = tmp_path / f"{name}.onnx"
        optimize(DIGITS, config).save(path)
        found[name] = check_model(path, "tensorrt")
    assert found["uniform4"] == [] and found["uniform8-channel"] == []
    assert {f.rule for f in found["codebook4"]} == {"unsupported-type"} and len(found["codebook4"]) == 3


# ---- onnxruntime -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "fused"),
    [
        ("blocked-axis0", True), ("blocked-axis1", False), ("block48", False), ("per-axis1", True),
        ("per-axis0", False), ("per-tensor", True), ("gemm", True), ("gemm-transB", False), ("shared", False),
    ],
)
def test_ort_matmulnbits_fusion(case: str, fused: bool, tmp_path: Path) -> None:
    """The rule agrees with onnxruntime: its optimized graph holds MatMulNBits exactly when nothing is found."""
    q = _int4((256, 128))
    scales = {"blocked-axis0": ((4, 128), {"axis": 0, "block_size": 64}),
              "blocked-axis1": ((256, 2), {"axis": 1, "block_size": 64}),
              "block48": ((6, 128), {"axis": 0, "block_size": 48}),
              "per-axis1": ((128,), {"axis": 1}), "per-axis0": ((256,), {"axis": 0}), "per-tensor": ((), {}),
              "gemm": ((4, 128), {"axis": 0, "block_size": 64}), "shared": ((4, 128), {"axis": 0, "block_size": 64})}
    if case == "gemm-transB":
        model = _dq_matmul(_int4((128, 256)), np.ones((128, 4), np.float32), consumer="Gemm", axis=1,
                           block_size=64, transB=1)
    elif case == "shared":
        nodes = [oh.make_node("DequantizeLinear", ["q", "s"], ["w"], name="dq", axis=0, block_size=64),
                 oh.make_node("MatMul", ["x", "w"], ["y"]), oh.make_node("MatMul", ["x", "w"], ["y2"])]
        model = _model(nodes, {"q": q, "s": np.ones((4, 128), np.float32)},
                       outputs=[_out("y"), _out("y2")])
    else:
        shape, attributes = scales[case]
        model = _dq_matmul(q, np.ones(shape, np.float32), consumer="Gemm" if case == "gemm" else "MatMul",
                           **attributes)
    findings = check_model(model, "onnxruntime")
    assert (findings == []) == fused, [f.line() for f in findings]
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    ops = {node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node}
    assert ("MatMulNBits" in ops) == fused, ops
    assert all(f.rule == "dq-matmul-not-fused" and f.severity == "warning" for f in findings)


def test_ort_dequantize_into_conv() -> None:
    weight = np.ones((4, 3, 3, 3), np.int8)
    x = [tensor_info("x", T.FLOAT, [1, 3, 8, 8])]
    weight_only = [oh.make_node("DequantizeLinear", ["q", "s"], ["w"], name="dq"),
                   oh.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    (finding,) = check_model(_model(weight_only, {"q": weight, "s": np.float32(0.1)}, inputs=x), "onnxruntime")
    assert (finding.rule, finding.node, finding.severity) == ("dq-conv", "dq", "warning")
    assert "dequantized on every run" in finding.reason
    qdq = [oh.make_node("QuantizeLinear", ["x", "s"], ["xq"]), oh.make_node("DequantizeLinear", ["xq", "s"], ["xd"]),
           oh.make_node("DequantizeLinear", ["q", "s"], ["w"], name="dq"),
           oh.make_node("Conv", ["xd", "w"], ["y"], name="conv")]
    assert _rules(_model(qdq, {"q": weight, "s": np.float32(0.1)}, inputs=x), "onnxruntime") == []


def test_ort_types_indices_and_versions() -> None:
    fp4 = [oh.make_node("Cast", ["c"], ["y"], to=T.FLOAT, name="cast")]
    four = np.zeros(8, np.float32).astype(ml_dtypes.float4_e2m1fn)
    assert _rules(_model(fp4, {"c": four}, opset=23, ir_version=11), "onnxruntime") == ["float4"]
    gather = [oh.make_node("Gather", ["table", "idx"], ["y"], name="gather")]
    table = np.arange(16, dtype=np.float32)
    assert _rules(_model(gather, {"table": table, "idx": np.zeros(4, np.uint8)}), "onnxruntime") == ["gather-indices"]
    assert _rules(_model(gather, {"table": table, "idx": np.zeros(4, np.int32)}), "onnxruntime") == []
    for to, expected in ((T.INT64, ["int64-indices"]), (T.INT32, [])):
        nodes = [oh.make_node("Cast", ["idx"], ["i"], to=to, name="cast"),
                 oh.make_node("Gather", ["table", "i"], ["y"], name="gather")]
        assert _rules(_model(nodes, {"table": table, "idx": np.zeros(4, np.uint8)}), "onnxruntime") == expected
    (finding,) = check_model(_model(gather, {"table": table, "idx": np.zeros(4, np.int32)}, ir_version=14),
                             "onnxruntime")
    assert (finding.rule, finding.node) == ("ir-version", "(model)")


# ---- the check command and the TensorRT path ---------------------------------------------------------------


def test_check_command_lines_json_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "u8.onnx"
    path.write_bytes(_dq_matmul(np.ones((256, 8), np.uint8), np.float32(0.1), np.uint8(128)))
    assert cli.main(["check", "--target", "tensorrt", str(path)]) == 3
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"tensorrt check of {path}: 2 error(s), 0 warning(s)"
    assert out[0].startswith("error: dq (DequantizeLinear) [zero-point] zero point z is non-zero")
    assert cli.main(["check", "--target", "onnxruntime", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["errors"] == 0 and data["findings"] == []
    gemm = tmp_path / "gemm.onnx"
    gemm.write_bytes(_dq_matmul(_int4((128, 256)), np.ones((128, 4), np.float32), consumer="Gemm", axis=1,
                                block_size=64, transB=1))
    assert cli.main(["check", "--target", "onnxruntime", str(gemm)]) == 0
    assert cli.main(["check", "--target", "onnxruntime", str(gemm), "--strict"]) == 3
    capsys.readouterr()
    assert cli.main(["check", "--target", "tensorrt", str(tmp_path / "missing.onnx")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def _chain_model(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    nodes = [oh.make_node("MatMul", ["x", "w"], ["h"]), oh.make_node("Relu", ["h"], ["y"])]
    path = tmp_path / "m.onnx"
    path.write_bytes(_model(nodes, {"w": rng.standard_normal((256, 8)).astype(np.float32)}, opset=17,
                            ir_version=8))
    return path


def test_trt_flag_says_unavailable_in_one_line(tmp_path: Path) -> None:
    reason = trt_target.unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT and a GPU are present: test_tensorrt_engine_build covers --trt")
    path = _chain_model(tmp_path)
    done = subprocess.run([sys.executable, "-m", "onnx_share.cli.main", "compare", str(path), str(path), "--trt"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "TensorRT not available" in line]
    assert lines == [f"tensorrt: not run ({reason})"]
    report = tmp_path / "r.json"
    assert cli.main(["optimize", str(path), str(tmp_path / "o.onnx"), "--trt", "--check", "--report", str(report),
                     "--min-elements", "16"]) == 0
    (target,) = json.loads(report.read_text())["targets"]
    assert target["available"] is False and target["reason"] == reason and target["passed"] is None
    pytest.skip(reason)


def test_tensorrt_engine_build(tmp_path: Path) -> None:
    reason = trt_target.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    path = _chain_model(tmp_path)
    report = trt_target.run_tensorrt(path, ValidationConfig(samples=2), trt_target.TensorRTOptions(fp16=True))
    assert report.available and report.built and report.engine_bytes and report.engine_bytes > 0
    assert report.latency_ms and report.latency_ms > 0 and report.passed


def test_tensorrt_report_assembly_with_a_stand_in_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The TensorRT path without TensorRT: the engine is the model itself, run by onnxruntime."""
    from polygraphy.backend.onnxrt import OnnxrtRunner

    path = _chain_model(tmp_path)
    monkeypatch.setattr(trt_target, "unavailable_reason", lambda: None)
    monkeypatch.setattr(trt_target, "build_engine", lambda model, options, samples: Path(model).read_bytes())
    monkeypatch.setattr(trt_target, "engine_runner",
                        lambda engine, name: OnnxrtRunner(onnxrt_session(engine), name=name))
    options = trt_target.TensorRTOptions(strongly_typed=True, timing_runs=3)
    report = trt_target.run_tensorrt(path, ValidationConfig(samples=2), options)
    assert report.available and report.built and report.engine_bytes == path.stat().st_size
    assert report.passed and [o.name for o in report.outputs] == ["y"] and report.outputs[0].max_abs_error == 0.0
    assert report.latency_ms is not None and report.latency_ms > 0
    assert report.options == {"fp16": False, "strongly_typed": True, "timing_runs": 3}

    def fail(*_: object) -> bytes:
        raise RuntimeError("In node 0 (parseGraph): UNSUPPORTED_NODE: Assertion failed\nsecond line")

    monkeypatch.setattr(trt_target, "build_engine", fail)
    failed = trt_target.run_tensorrt(path, ValidationConfig(), options)
    assert not failed.built and failed.passed is False
    assert failed.reason == "engine build failed: In node 0 (parseGraph): UNSUPPORTED_NODE: Assertion failed"


def test_tensorrt_options_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exception, match="exclude each other"):
        trt_target.TensorRTOptions(fp16=True, strongly_typed=True)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["compare", "a.onnx", "b.onnx", "--trt", "--fp16", "--strongly-typed"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
