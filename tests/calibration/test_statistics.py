"""Calibration statistics: the rows each site reads, sums streamed in batches equal to sums at once, and the
statistics a weight gets from its sites."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from helpers import make_model, run, tensor_info, with_outputs

from onnx_share.calibration.sites import MAX_PATCHES, weight_sites
from onnx_share.calibration.statistics import Moments, collect_statistics
from onnx_share.config import OptimizeConfig
from onnx_share.io.load import load_model
from onnx_share.ir.selection import select_weights

FLOAT = onnx.TensorProto.FLOAT


def conv_gemm_model(rng: np.random.Generator) -> onnx.ModelProto:
    """x [N, 4, 9, 9] -> grouped, strided, padded Conv (no bias) -> Flatten -> Gemm (transB) -> MatMul + Add."""
    nodes = [
        oh.make_node("Conv", ["x", "conv_w"], ["c"], group=2, strides=[2, 1], pads=[1, 0, 1, 1], dilations=[1, 2]),
        oh.make_node("Flatten", ["c"], ["f"]),
        oh.make_node("Gemm", ["f", "gemm_w", "gemm_b"], ["g"], transB=1, alpha=0.5, beta=2.0),
        oh.make_node("MatMul", ["g", "mm_w"], ["m"]),
        oh.make_node("Add", ["m", "mm_b"], ["y"]),
    ]
    initializers = {
        "conv_w": rng.standard_normal((6, 2, 3, 2)).astype(np.float32),
        "gemm_w": rng.standard_normal((32, 6 * 5 * 8)).astype(np.float32),
        "gemm_b": rng.standard_normal(32).astype(np.float32),
        "mm_w": rng.standard_normal((32, 16)).astype(np.float32),
        "mm_b": rng.standard_normal(16).astype(np.float32),
    }
    return make_model(nodes, [tensor_info("x", FLOAT, ["n", 4, 9, 9])], [tensor_info("y", FLOAT, ["n", 16])],
                      initializers)


def samples(rng: np.random.Generator, count: int, batch: int = 2) -> list[dict[str, np.ndarray]]:
    return [{"x": rng.standard_normal((batch, 4, 9, 9)).astype(np.float32)} for _ in range(count)]


def statistics_of(model: onnx.ModelProto, calibration, held_out=()):
    loaded = load_model(model)
    chosen = [w for w, _ in select_weights(loaded, OptimizeConfig(min_elements=1)).chosen]
    return loaded, chosen, collect_statistics(model, None, chosen, loaded.graph, calibration, list(held_out))


def test_each_site_rows_times_its_view_give_the_layer_output() -> None:
    """For every weight: rows [G, n, d] of its activation times its view V [G, d, out] is what its op computes."""
    rng = np.random.default_rng(0)
    model = conv_gemm_model(rng)
    feed = samples(rng, 1)[0]
    loaded, weights, statistics = statistics_of(model, [feed])
    outputs = dict(zip(["c", "f", "g", "m"], run(with_outputs(model, ["c", "f", "g", "m"]), feed)[1:], strict=True))
    x = {"conv_w": feed["x"], "gemm_w": outputs["f"], "mm_w": outputs["g"]}
    for weight in weights:
        entry = statistics.for_weight(weight, loaded.graph)
        assert not isinstance(entry, str), entry
        site = weight_sites(weight, loaded.graph)[0]
        rows = site.rows(x[weight.name], np.random.default_rng(0))
        product = np.matmul(rows, entry.view.to_view(weight.numpy().astype(np.float64)))
        if weight.name == "conv_w":
            assert rows.shape[1] <= MAX_PATCHES  # every position: the product is the whole conv output
            expected = outputs["c"].transpose(0, 2, 3, 1).reshape(-1, 2, 3).transpose(1, 0, 2)
        elif weight.name == "gemm_w":
            expected = (outputs["f"] @ weight.numpy().T)[None]
        else:
            expected = (outputs["g"] @ weight.numpy())[None]
        np.testing.assert_allclose(product, expected, rtol=1e-4, atol=1e-4)


def test_statistics_streamed_in_batches_equal_statistics_at_once() -> None:
    rng = np.random.default_rng(1)
    model = conv_gemm_model(rng)
    batches = samples(rng, 4, batch=3)
    whole = [{"x": np.concatenate([b["x"] for b in batches])}]
    loaded, weights, streamed = statistics_of(model, batches)
    _, _, at_once = statistics_of(model, whole)
    for weight in weights:
        a, b = streamed.for_weight(weight, loaded.graph), at_once.for_weight(weight, loaded.graph)
        assert not isinstance(a, str) and not isinstance(b, str)
        if weight.name == "conv_w":
            continue  # patches: positions are drawn per run (below MAX_PATCHES all of them; compared next)
        for field in ("hessian", "diagonal", "mean"):
            np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-4, atol=1e-4)  # float32 products


def test_moments_added_in_parts_equal_moments_of_the_whole() -> None:
    rng = np.random.default_rng(2)
    rows = rng.standard_normal((2, 100, 7))
    whole, parts = Moments.empty(2, 7, gram=True), Moments.empty(2, 7, gram=True)
    whole.add(rows)
    for start in range(0, 100, 13):
        parts.add(rows[:, start : start + 13])
    assert parts.count == whole.count == 100
    for field in ("total", "square", "gram"):
        np.testing.assert_allclose(getattr(parts, field), getattr(whole, field), rtol=1e-12)


def test_gather_rows_are_counted_and_unseen_rows_still_weigh() -> None:
    table = np.random.default_rng(3).standard_normal((50, 8)).astype(np.float32)
    model = make_model([oh.make_node("Gather", ["table", "ids"], ["y"])],
                       [tensor_info("ids", onnx.TensorProto.INT64, [1, 4])],
                       [tensor_info("y", FLOAT, [1, 4, 8])], {"table": table})
    feeds = [{"ids": np.array([[1, 1, 2, -1]], np.int64)}, {"ids": np.array([[1, 5, 5, 5]], np.int64)}]
    loaded, weights, statistics = statistics_of(model, feeds[:1], feeds[1:])
    entry = statistics.for_weight(weights[0], loaded.graph)
    assert not isinstance(entry, str)
    assert entry.row_counts[[1, 2, 49]].tolist() == [2, 1, 1]  # -1 is the last row
    assert entry.held_row_counts[[1, 5]].tolist() == [1, 3]
    element = entry.element_weights(table.shape)
    assert element.shape == table.shape and element[0, 0] == pytest.approx(1.0) and element[1, 0] == 3.0


def test_recurrent_rows_are_the_states_each_step_starts_from() -> None:
    """R multiplies h_{t-1}: the initial state, then the outputs but the last (reverse: in reverse time order)."""
    from onnx_share.calibration.sites import _previous_states

    seq, batch, hidden = 4, 2, 3
    y = np.arange(seq * 2 * batch * hidden, dtype=np.float32).reshape(seq, 2, batch, hidden)  # layout 0
    h0 = -np.ones((2, batch, hidden), np.float32)
    rows = _previous_states(y, h0, (0, "bidirectional"))
    forward = np.concatenate([h0[0][None], y[:-1, 0]]).reshape(-1, hidden)
    backward = np.concatenate([y[1:, 1], h0[1][None]]).reshape(-1, hidden)
    np.testing.assert_array_equal(rows, np.stack([forward, backward]))
    batch_first = _previous_states(y.transpose(2, 0, 1, 3), h0.transpose(1, 0, 2), (1, "bidirectional"))
    np.testing.assert_array_equal(batch_first, rows)
    without = _previous_states(y[:, :1], None, (0, "forward"))
    np.testing.assert_array_equal(without[0, :batch], 0.0)
