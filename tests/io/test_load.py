"""Model I/O: lazy external data, refusals, atomic writes, IR/opset checks, determinism."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from helpers import DIGITS_DIR, make_model, run, tensor_info

import onnx_share
from onnx_share.errors import OnnxShareError
from onnx_share.io.load import load_model
from onnx_share.io.save import save_model

DIGITS = DIGITS_DIR / "digits_cnn.onnx"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _external_copy(tmp_path: Path, location: str) -> Path:
    """The digits model saved with external data, its locations then rewritten to ``location``."""
    folder = tmp_path / "model"
    folder.mkdir()
    model = onnx.load(DIGITS)
    onnx.save(model, folder / "m.onnx", save_as_external_data=True, location="weights.bin", size_threshold=1024)
    proto = onnx.load(folder / "m.onnx", load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(proto, folder / "m.onnx")
    return folder / "m.onnx"


def test_external_data_outside_folder_is_refused(tmp_path: Path) -> None:
    path = _external_copy(tmp_path, "../weights.bin")
    (tmp_path / "model" / "weights.bin").rename(tmp_path / "weights.bin")
    with pytest.raises(OnnxShareError, match="outside the model's folder"):
        load_model(path)


def test_absolute_external_data_location_is_refused(tmp_path: Path) -> None:
    path = _external_copy(tmp_path, str(tmp_path / "model" / "weights.bin"))
    with pytest.raises(OnnxShareError, match="outside the model's folder"):
        load_model(path)


def test_missing_external_data_file_is_refused(tmp_path: Path) -> None:
    path = _external_copy(tmp_path, "weights.bin")
    (tmp_path / "model" / "weights.bin").unlink()
    with pytest.raises(OnnxShareError, match="missing"):
        load_model(path)


def test_external_data_model_optimizes_and_saves_external(tmp_path: Path) -> None:
    path = _external_copy(tmp_path, "weights.bin")
    before = {p.name: _digest(p) for p in path.parent.iterdir()}
    result = onnx_share.optimize(path, {"default": {"bits": 4}})
    out = result.save(tmp_path / "out.onnx", external_data=True)
    assert (tmp_path / "out.onnx.data").is_file()
    assert {p.name: _digest(p) for p in path.parent.iterdir()} == before, "input files untouched"
    x = {"input": np.zeros((2, 1, 8, 8), np.float32)}
    assert run(out, x)[0].shape == (2, 10)
    assert result.report.file_bytes_after == out.stat().st_size + (tmp_path / "out.onnx.data").stat().st_size


def test_large_external_tensors_are_aligned(tmp_path: Path) -> None:
    weights = {f"W{i}": np.full((640, 640), i + 1, np.float32) for i in range(3)}  # 1.6 MB each
    nodes = [oh.make_node("MatMul", ["x" if i == 0 else f"h{i}", f"W{i}"], [f"h{i + 1}"]) for i in range(3)]
    model = make_model(nodes, [tensor_info("x", 1, [1, 640])], [tensor_info("h3", 1, [1, 640])], weights)
    out = save_model(load_model(model), tmp_path / "big.onnx", external_data=True)
    proto = onnx.load(out, load_external_data=False)
    offsets = [int(e.value) for t in proto.graph.initializer for e in t.external_data if e.key == "offset"]
    assert len(offsets) == 3 and all(offset % 65536 == 0 for offset in offsets)
    np.testing.assert_array_equal(run(out, {"x": np.ones((1, 640), np.float32)})[0], np.full((1, 640), 6 * 640**3))


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    result = onnx_share.optimize(DIGITS)
    out = tmp_path / "out.onnx"
    out.write_bytes(b"old contents")
    result.save(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]
    onnx.checker.check_model(str(out))


def test_failed_save_keeps_existing_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model(DIGITS)
    out = tmp_path / "out.onnx"
    out.write_bytes(b"old contents")

    def broken_save(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("onnx_ir.save", broken_save)
    with pytest.raises(OnnxShareError, match="No space left"):
        save_model(model, out)
    assert out.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]


def test_model_proto_input_is_not_modified() -> None:
    proto = onnx.load(DIGITS)
    before = proto.SerializeToString()
    onnx_share.optimize(proto, {"default": {"bits": 4}})
    assert proto.SerializeToString() == before


def test_output_is_deterministic(tmp_path: Path) -> None:
    config = {"default": {"bits": 4, "granularity": "channel"}}
    first = onnx_share.optimize(DIGITS, config).save(tmp_path / "a.onnx")
    second = onnx_share.optimize(DIGITS, config).save(tmp_path / "b.onnx")
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("spec", [{"bits": 4}, {"bits": 4, "granularity": "channel"}, {"scheme": "uniform", "bits": 4}])
def test_optimizing_twice_finds_nothing_new(spec: dict, tmp_path: Path) -> None:
    once = onnx_share.optimize(DIGITS, {"default": spec}).save(tmp_path / "once.onnx")
    again = onnx_share.optimize(once, {"default": spec})
    assert again.report.compressed == []
    assert any("nothing new to compress" in note for note in again.report.notes)
    twice = again.save(tmp_path / "twice.onnx")
    assert onnx.load(twice).graph == onnx.load(once).graph


def test_ir_version_is_one_onnxruntime_loads(tmp_path: Path) -> None:
    w = np.ones((64, 64), np.float32)
    model = make_model([oh.make_node("MatMul", ["x", "W"], ["y"])], [tensor_info("x", 1, [1, 64])],
                       [tensor_info("y", 1, [1, 64])], {"W": w}, opset=25, ir_version=11)
    out = onnx_share.optimize(model, {"default": {"bits": 2}, "min_elements": 16}).save(tmp_path / "o.onnx")
    assert 11 <= onnx.load(out).ir_version <= 13
    assert run(out, {"x": np.ones((1, 64), np.float32)})[0].shape == (1, 64)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: setattr(m, "ir_version", 14), "IR version 14"),
        (lambda m: m.opset_import[0].__setattr__("version", 27), "opset 27"),
    ],
)
def test_versions_onnxruntime_cannot_load_are_refused(mutate, message: str) -> None:
    proto = onnx.load(DIGITS)
    mutate(proto)
    with pytest.raises(OnnxShareError, match=message):
        onnx_share.optimize(proto)


def _external_chain(folder: Path) -> Path:
    """Three MatMuls over [640, 640] weights (1.6 MB each, 200 KB at 4 bits: spilled), saved with external data."""
    rng = np.random.default_rng(0)
    weights = {f"W{i}": rng.standard_normal((640, 640)).astype(np.float32) for i in range(3)}
    nodes = [oh.make_node("MatMul", ["x" if i == 0 else f"h{i}", f"W{i}"], [f"h{i + 1}"]) for i in range(3)]
    model = make_model(nodes, [tensor_info("x", 1, [1, 640])], [tensor_info("h3", 1, [1, 640])], weights)
    folder.mkdir()
    onnx.save(model, folder / "m.onnx", save_as_external_data=True, location="m.onnx.data", size_threshold=1024)
    return folder / "m.onnx"


def test_external_input_streams_through_a_spill_and_saves_external(tmp_path: Path) -> None:
    """With external data in, each compressed weight goes to a scratch data file as it is made (the result reads
    it from there), the output is external data by default or one file on request, with the same outputs as the
    same model compressed in memory, and the scratch folder goes with the result."""
    import gc

    import onnx_ir as ir

    path = _external_chain(tmp_path / "model")
    before = {p.name: _digest(p) for p in path.parent.iterdir()}
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    config = {"default": {"bits": 4}, "validation": {"enabled": False}}
    result = onnx_share.optimize(path, config, scratch=scratch)
    spilled = [v.const_value for v in result.model.graph.initializers.values()
               if isinstance(v.const_value, ir.ExternalTensor) and v.const_value.path.startswith(str(scratch))]
    assert len(spilled) == 3 and all(t.dtype == ir.DataType.UINT4 for t in spilled)
    (tmp_path / "a").mkdir()
    external = result.save(tmp_path / "a" / "out.onnx")
    assert (tmp_path / "a" / "out.onnx.data").is_file()
    single = result.save(tmp_path / "b.onnx", external_data=False)
    assert not (tmp_path / "b.onnx.data").exists()
    in_memory = onnx_share.optimize(onnx.load(path), config).save(tmp_path / "c.onnx")
    x = {"x": np.random.default_rng(1).standard_normal((1, 640)).astype(np.float32)}
    expected = run(in_memory, x)[0]
    np.testing.assert_array_equal(run(external, x)[0], expected)
    np.testing.assert_array_equal(run(single, x)[0], expected)
    assert {p.name: _digest(p) for p in path.parent.iterdir()} == before, "input files untouched"
    assert list(scratch.iterdir())
    del result, spilled
    gc.collect()
    assert not list(scratch.iterdir()), "the spill folder goes with the result"


def test_one_file_over_two_gigabytes_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx_share.api

    result = onnx_share.optimize(_external_chain(tmp_path / "model"), {"validation": {"enabled": False}})
    monkeypatch.setattr(onnx_share.api, "PROTOBUF_LIMIT_BYTES", 1000)
    with pytest.raises(OnnxShareError, match="cannot be one file"):
        result.save(tmp_path / "out.onnx", external_data=False)


def test_release_waits_for_views_held_by_cycles(tmp_path: Path) -> None:
    """A view of an external tensor's pages kept alive only by a reference cycle does not stop the release; a
    view still in use keeps the map (no error) and the tensor stays readable."""
    import onnx_ir as ir

    from onnx_share.io.load import release

    data = np.arange(4096, dtype=np.float32)
    (tmp_path / "w.bin").write_bytes(data.tobytes())
    tensor = ir.ExternalTensor("w.bin", 0, data.nbytes, ir.DataType.FLOAT, shape=ir.Shape([4096]), name="w",
                               base_dir=tmp_path)
    cycle: list[object] = [tensor.numpy()[:10]]
    cycle.append(cycle)
    del cycle
    release(tensor)
    assert tensor.raw is None
    view = tensor.numpy()
    release(tensor)
    np.testing.assert_array_equal(view, data)
    np.testing.assert_array_equal(tensor.numpy(), data)


def test_streamed_output_is_byte_identical_for_any_number_of_jobs(tmp_path: Path) -> None:
    path = _external_chain(tmp_path / "model")
    digests = set()
    for jobs in (1, 2, 3):
        (tmp_path / str(jobs)).mkdir()
        out = onnx_share.optimize(path, {"default": {"bits": 3}, "validation": {"enabled": False}, "jobs": jobs}
                                  ).save(tmp_path / str(jobs) / "out.onnx")
        digests.add((_digest(out), _digest(out.with_name("out.onnx.data"))))
    assert len(digests) == 1
