"""``--target onnxruntime``: an embedding table read only by ``Gather`` becomes ``GatherBlockQuantized`` over its
grid, decoding exactly what the grid stands for; everything else keeps the portable form."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx_ir as ir
import pytest
from helpers import make_model, run, tensor_info

import onnx_share
from onnx_share.config import OptimizeConfig
from onnx_share.io.load import load_model
from onnx_share.ir.selection import select_weights
from onnx_share.numerics.uniform import quantize_uniform
from onnx_share.passes.forms import CandidateTable, requested_form
from onnx_share.targets.checks import check_model

INT64, FLOAT, FLOAT16 = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


def _embedding(table: np.ndarray, tied: bool = False) -> onnx.ModelProto:
    """ids [2, 5] → Gather(E) [2, 5, D] (→ MatMul by Eᵀ when ``tied``: E is then read by a Transpose too)."""
    elem = FLOAT16 if table.dtype == np.float16 else FLOAT
    nodes = [oh.make_node("Gather", ["E", "ids"], ["y" if not tied else "h"], name="embed")]
    if tied:
        nodes += [oh.make_node("Transpose", ["E"], ["Et"], perm=[1, 0]), oh.make_node("MatMul", ["h", "Et"], ["y"])]
    shape = [2, 5, len(table)] if tied else [2, 5, table.shape[1]]
    return make_model(nodes, [tensor_info("ids", INT64, [2, 5])], [tensor_info("y", elem, shape)], {"E": table})


def _config(bits: int, symmetric: bool = True, target: str = "onnxruntime", **spec: object) -> dict:
    return {"default": {"scheme": "uniform", "bits": bits, "symmetric": symmetric, "group_size": 32, **spec},
            "target": target, "min_elements": 16}


IDS = np.array([[0, 7, 999, 3, 3], [500, 1, 2, 998, 0]], dtype=np.int64)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [4, 8])
def test_gather_block_reads_exactly_the_grid(bits: int, symmetric: bool, dtype: type) -> None:
    table = np.random.default_rng(bits).normal(size=(1000, 80)).astype(dtype)  # 80 = 2 blocks of 32 and a part
    result = onnx_share.optimize(_embedding(table), _config(bits, symmetric))
    out = ir.to_proto(result.model)
    assert [(n.domain, n.op_type) for n in out.graph.node] == [("com.microsoft", "GatherBlockQuantized")]
    assert {o.domain: o.version for o in out.opset_import}["com.microsoft"] == 1
    (row,) = result.report.compressed
    assert (row.granularity, row.group_size) == ("group", 32)
    assert row.storage == ("UINT8" if bits == 8 else "INT4" if symmetric else "UINT4")
    grid = quantize_uniform(table, bits, symmetric=symmetric, axis=1, block_size=32, scale_dtype=dtype)
    expected = grid.dequantize(np.float32).astype(dtype)[IDS]
    np.testing.assert_array_equal(run(out, {"ids": IDS})[0], expected)


def test_cost_is_the_bytes_written() -> None:
    """The table's cost: the GatherBlockQuantized graph's bytes less the Gather it replaces."""
    table = np.random.default_rng(0).normal(size=(1000, 64)).astype(np.float32)
    model = _embedding(table)
    config = OptimizeConfig.from_dict(_config(4))
    loaded = load_model(model)
    ((weight, spec),) = select_weights(loaded, config).chosen
    cost = CandidateTable(weight, 21, spec, target="onnxruntime").cost(requested_form(weight, spec, 21, "onnxruntime"))
    before = load_model(model)  # at opset 21, as the pass writes it
    before.opset_imports[""] = 21
    out = ir.to_proto(onnx_share.optimize(model, _config(4)).model)
    written = sum(len(t.raw_data) + len(t.name) + 2 * len(t.dims) + 8 for t in out.graph.initializer)
    gather = ir.to_proto(before).graph.node[0].ByteSize()
    assert cost == written + out.graph.node[0].ByteSize() - gather


@pytest.mark.parametrize("case", ["portable", "tied", "2-bit", "channel"])
def test_other_cases_keep_the_portable_form(case: str) -> None:
    """Not for onnxruntime, a table read by more than Gather, a width GatherBlockQuantized lacks, or a
    granularity other than blocks: DequantizeLinear, standard ops only."""
    table = np.random.default_rng(0).normal(size=(1000, 64)).astype(np.float32)
    config = {"portable": _config(4, target="portable"), "tied": _config(4), "2-bit": _config(2),
              "channel": _config(4, granularity="channel")}[case]
    result = onnx_share.optimize(_embedding(table, tied=case == "tied"), config)
    out = ir.to_proto(result.model)
    assert all(n.domain in ("", "ai.onnx") for n in out.graph.node)
    assert "DequantizeLinear" in {n.op_type for n in out.graph.node}


def test_target_checks_know_both_forms(tmp_path) -> None:
    """onnxruntime: the portable table is flagged as expanded on every run, the GatherBlockQuantized one is clean;
    TensorRT rejects the contrib op."""
    table = np.random.default_rng(0).normal(size=(1000, 64)).astype(np.float32)
    paths = {}
    for target in ("portable", "onnxruntime"):
        paths[target] = onnx_share.optimize(_embedding(table), _config(4, target=target)).save(tmp_path / target)
    assert [f.rule for f in check_model(paths["portable"], "onnxruntime")] == ["dq-gather"]
    assert check_model(paths["onnxruntime"], "onnxruntime") == []
    assert [f.rule for f in check_model(paths["onnxruntime"], "tensorrt")] == ["contrib-op"]
