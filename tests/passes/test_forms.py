"""The size model: exact byte costs, auto granularity within the requested size at the smallest error, and the
standard-ops uniform decode, bit-exact against ``DequantizeLinear``, where the opset lacks the layout."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx_ir as ir
import pytest
from helpers import make_model, run, tensor_info, with_outputs

from onnx_share.config import OptimizeConfig
from onnx_share.io.load import load_model
from onnx_share.ir.selection import select_weights
from onnx_share.numerics.uniform import quantize_uniform
from onnx_share.passes.compress import CompressPass
from onnx_share.passes.forms import AUTO_TABLE_BITS, CandidateTable, choose_form, requested_form

FLOAT = onnx.TensorProto.FLOAT


def _matmul(weight: np.ndarray, opset: int, softmax: bool = False) -> onnx.ModelProto:
    """x [2, K] @ W [K, N] (then a Softmax, which blocks raising the opset past 12)."""
    rows, cols = weight.shape
    nodes = [oh.make_node("MatMul", ["x", "W"], ["h" if softmax else "y"])]
    nodes += [oh.make_node("Softmax", ["h"], ["y"], axis=1)] if softmax else []
    return make_model(nodes, [tensor_info("x", FLOAT, [2, rows])], [tensor_info("y", FLOAT, [2, cols])],
                      {"W": weight}, opset=opset)


def _conv(weight: np.ndarray) -> onnx.ModelProto:
    channels, inputs = weight.shape[:2]
    return make_model([oh.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])],
                      [tensor_info("x", FLOAT, [1, inputs, 8, 8])], [tensor_info("y", FLOAT, [1, channels, 8, 8])],
                      {"W": weight})


def _compress(model: onnx.ModelProto, spec: dict) -> tuple[onnx.ModelProto, object, list[str]]:
    loaded = load_model(model)
    outcome = CompressPass(OptimizeConfig.from_dict({"default": spec, "min_elements": 16}))(loaded)
    (row,) = outcome.tensors
    return ir.to_proto(loaded), row, outcome.notes


def _decoded(model: onnx.ModelProto) -> np.ndarray:
    """W as onnxruntime computes it from the stored form."""
    rows = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    return run(with_outputs(model, ["W"]), {"x": np.zeros((2, rows), np.float32)})[1]


def _written_bytes(model: onnx.ModelProto) -> int:
    """What the size model counts for W's decode in a written model: initializer data, names and dims, nodes."""
    stored = [t for t in model.graph.initializer if t.name.startswith("W_")]
    headers = sum(len(t.raw_data) + len(t.name) + 2 * len(t.dims) + 8 for t in stored)
    return headers + sum(n.ByteSize() for n in model.graph.node if n.name.startswith("W/decode/"))


def _table(model: onnx.ModelProto, spec: dict) -> CandidateTable:
    loaded = load_model(model)
    config = OptimizeConfig.from_dict({"default": spec, "min_elements": 16})
    ((weight, weight_spec),) = select_weights(loaded, config).chosen
    return CandidateTable(weight, 21, weight_spec)


UNIFORM_LAYOUTS = {
    "tensor": {"granularity": "tensor"},
    "channel": {"granularity": "channel"},
    "blocks": {"granularity": "group", "group_size": 32},  # 301 rows: the last block is padded
}


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("layout", list(UNIFORM_LAYOUTS))
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_standard_ops_grid_is_bit_exact_against_dequantize_linear(bits: int, layout: str, symmetric: bool) -> None:
    """At opset 12 (a Softmax blocks the raise) the grid is decoded by Cast/Sub/Mul from packed codes: the same
    values as DequantizeLinear at opset 25 and as the numpy grid."""
    weight = np.random.default_rng(bits).normal(size=(301, 67)).astype(np.float32)
    spec = {"scheme": "uniform", "bits": bits, "symmetric": symmetric, **UNIFORM_LAYOUTS[layout]}
    fallback, row, notes = _compress(_matmul(weight, opset=12, softmax=True), spec)
    assert fallback.opset_import[0].version == 12
    if (bits, layout) != (8, "tensor"):  # opset 10's DequantizeLinear has per-tensor INT8
        assert "DequantizeLinear" not in {n.op_type for n in fallback.graph.node}
        assert any("does not fuse" in note for note in row.notes) and any("Softmax" in note for note in notes)
        assert row.storage == ("UINT8" if bits == 8 else f"UINT8 packed {bits}-bit")
    native, native_row, _ = _compress(_matmul(weight, opset=25), spec)
    assert "DequantizeLinear" in {n.op_type for n in native.graph.node}
    assert native_row.relative_error == row.relative_error
    decoded = _decoded(fallback)
    np.testing.assert_array_equal(decoded, _decoded(native))
    axis = {"tensor": None, "channel": 1, "blocks": 0}[layout]
    grid = quantize_uniform(weight, bits, symmetric=symmetric, axis=axis, block_size=32 if layout == "blocks" else None)
    np.testing.assert_array_equal(decoded, grid.dequantize(np.float32))


def test_uniform_compresses_below_the_first_dequantize_linear() -> None:
    """Opset 9 has no DequantizeLinear at all: 8-bit per channel is decoded by standard ops and runs."""
    weight = np.random.default_rng(0).normal(size=(64, 48)).astype(np.float32)
    out, row, _ = _compress(_matmul(weight, opset=9, softmax=True), {"scheme": "uniform", "bits": 8})
    assert row.scheme == "uniform" and out.opset_import[0].version == 9
    x = np.ones((2, 64), np.float32)
    np.testing.assert_allclose(run(out, {"x": x})[0].sum(axis=1), [1, 1], rtol=1e-5)


CODEBOOK_FORMS = {
    "tensor": {"granularity": "tensor"},
    "channel": {"granularity": "channel"},
    "group": {"granularity": "group", "group_size": 4},
}


@pytest.mark.parametrize("opset", [12, 21])
@pytest.mark.parametrize("form", list(CODEBOOK_FORMS))
@pytest.mark.parametrize("bits", [3, 4])
def test_cost_is_the_bytes_written(bits: int, form: str, opset: int) -> None:
    """The table's cost of a form is exactly what the decode graph takes in the written model."""
    weight = np.random.default_rng(1).normal(size=(97, 40)).astype(np.float32)
    spec = {"bits": bits, **CODEBOOK_FORMS[form]}
    model = _matmul(weight, opset=opset, softmax=opset == 12)
    loaded = load_model(model)
    config = OptimizeConfig.from_dict({"default": spec, "min_elements": 16})
    ((tensor, weight_spec),) = select_weights(loaded, config).chosen
    out, _, _ = _compress(model, spec)
    table = CandidateTable(tensor, out.opset_import[0].version, weight_spec)
    assert table.cost(requested_form(tensor, weight_spec, table.opset)) == _written_bytes(out)


@pytest.mark.parametrize("spec", [{"scheme": "uniform", "bits": 4}, {"scheme": "uniform", "bits": 8},
                                  {"scheme": "uniform", "bits": 4, "granularity": "tensor"}])
def test_uniform_cost_is_the_bytes_written(spec: dict) -> None:
    weight = np.random.default_rng(2).normal(size=(256, 40)).astype(np.float32)
    out, _, _ = _compress(_matmul(weight, opset=21), spec)
    table = _table(_matmul(weight, opset=21), spec)
    assert table.cost(requested_form(table.weight, table.spec, 21)) == _written_bytes(out)


def _scaled_channels(rng: np.random.Generator) -> np.ndarray:
    """A conv weight [64, 32, 3, 3] whose output channels differ in scale by up to 1000x (as real convs do)."""
    return (rng.normal(size=(64, 32, 3, 3)) * np.logspace(-3, 0, 64)[:, None, None, None]).astype(np.float32)


@pytest.mark.parametrize("bits", [2, 3, 4, 5])
def test_auto_is_the_smallest_error_within_the_requested_size(bits: int) -> None:
    """Every codebook form at ``bits`` (per tensor, per channel, groups of 2..32 channels) whose cost is within
    the per-tensor form plus AUTO_TABLE_BITS per weight: none has a smaller error than the one auto picks."""
    table = _table(_conv(_scaled_channels(np.random.default_rng(bits))), {"bits": bits})
    spec = table.spec
    chosen = choose_form(table, spec)
    budget = table.cost(requested_form(table.weight, spec, 21)) + AUTO_TABLE_BITS * table.weight.tensor.size / 8
    assert chosen.bits == bits and table.cost(chosen) <= budget
    affordable = 0
    for layout in ({"granularity": "tensor"}, {"granularity": "channel"},
                   *({"granularity": "group", "group_size": g} for g in (2, 4, 8, 16, 32))):
        other = requested_form(table.weight, spec.updated(layout), 21)
        if table.cost(other) <= budget:
            affordable += 1
            assert table.fit(chosen).relative_error <= table.fit(other).relative_error, other.label
    assert affordable >= 2  # per tensor and at least one grouping


def test_auto_splits_the_codebook_where_channels_differ_in_scale() -> None:
    """Channels 1000x apart: one 4-bit codebook zeroes the small ones; auto takes channel groups at the same
    width for a fraction of a bit per weight more."""
    weight = _scaled_channels(np.random.default_rng(0))
    _, row, _ = _compress(_conv(weight), {"bits": 4})
    _, tensor_row, _ = _compress(_conv(weight), {"bits": 4, "granularity": "tensor"})
    assert row.granularity in ("channel", "group") and row.bits == 4 and "auto granularity" in " ".join(row.notes)
    assert row.relative_error < 0.9 * tensor_row.relative_error
    assert tensor_row.bytes_after < row.bytes_after <= tensor_row.bytes_after + AUTO_TABLE_BITS * weight.size / 8


def test_auto_keeps_one_codebook_where_tables_would_not_fit() -> None:
    """4096 weights: a quarter of a bit each (128 bytes) pays for no second table and its decode nodes."""
    weight = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    _, row, _ = _compress(_matmul(weight, opset=21), {"bits": 4})
    assert (row.granularity, row.bits, row.storage) == ("tensor", 4, "UINT4")


@pytest.mark.parametrize("granularity", ["auto", "channel"])
def test_channel_codebooks_need_opset_11(granularity: str) -> None:
    """GatherElements came in opset 11: below it (a Clip, changed in 11, blocks the raise) codebooks stay per
    tensor."""
    weight = _scaled_channels(np.random.default_rng(0)).reshape(64, -1).T.copy()  # [288, 64], channels differ
    nodes = [oh.make_node("MatMul", ["x", "W"], ["h"]), oh.make_node("Clip", ["h"], ["y"], min=-1.0, max=1.0)]
    model = make_model(nodes, [tensor_info("x", FLOAT, [2, 288])], [tensor_info("y", FLOAT, [2, 64])],
                       {"W": weight}, opset=9)
    out, row, _ = _compress(model, {"bits": 8, "granularity": granularity})
    assert out.opset_import[0].version == 9 and row.granularity == "tensor"
    assert granularity == "auto" or any("GatherElements" in note for note in row.notes)
    assert run(out, {"x": np.ones((2, 288), np.float32)})[0].shape == (2, 64)


@pytest.mark.parametrize("shape", [(64, 48), (640, 512)])  # the rows kernel's path, and the histogram path
def test_codebooks_per_tensor_from_one_kmeans_run_are_their_own_fits(shape: tuple[int, int],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """After cluster_per_tensor, each codebook per tensor fits without a k-means of its own, to the very codebook
    (centroids and indices) a table fitting it alone finds; zero pinning (a fifth of the weights pruned) included."""
    from onnx_share.passes import forms

    rng = np.random.default_rng(shape[0])
    weight = (rng.laplace(size=shape) * 0.02).astype(np.float32)
    weight[rng.random(shape) < 0.2] = 0.0
    model = _matmul(weight, opset=21)
    alone = _table(model, {"bits": 4})
    together = _table(model, {"bits": 4})
    wanted = [requested_form(together.weight, together.spec.updated({"bits": bits, "granularity": "tensor"}), 21)
              for bits in (1, 2, 3, 5, 8)]
    together.cluster_per_tensor(wanted)

    def no_kmeans(*args, **kwargs):
        raise AssertionError("a codebook per tensor was clustered on its own")

    fit_codebook = forms.fit_codebook
    monkeypatch.setattr(forms, "fit_codebook", no_kmeans)
    shared = [together.fit(form).encoding for form in wanted]
    monkeypatch.setattr(forms, "fit_codebook", fit_codebook)
    for form, book in zip(wanted, shared, strict=True):
        own = alone.fit(form).encoding
        np.testing.assert_array_equal(book.centroids, own.centroids)
        np.testing.assert_array_equal(book.indices, own.indices)
        assert book.centroids.shape == (1, form.clusters) and (book.centroids == 0).any()  # zero pinned
