"""Low-rank split: a constant 2-D MatMul/Gemm weight W becomes two thin factors, ``x·W`` → ``(x·A)·B``.

``MatMul(x, W)`` → ``MatMul(MatMul(x, A), B)``; ``MatMul(W, x)`` → ``MatMul(A', MatMul(B', x))``;
``Gemm(x, W, C)`` → ``Gemm(MatMul(x, A), B, C)`` with alpha, beta, the bias and transB kept (for transB=1
both factors are stored transposed and read with transB=1; transA=1 or transB=1 make the first, thin step a
bias-free ``Gemm``). The factors come from a truncated SVD of W with sqrt(S) on each side, are stored in W's
dtype as initializers ``<W>_lowrank_a`` (read first) and ``<W>_lowrank_b`` (the cluster pass then finds them
as ordinary MatMul/Gemm weights), and every rewritten node keeps its output value, so its name is unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnx_share.config import LowRankConfig
from onnx_share.io.load import default_opset
from onnx_share.io.proto import DEFAULT_DOMAINS
from onnx_share.ir.selection import select_weights
from onnx_share.ir.surgery import NameScope, constant, node
from onnx_share.ir.weights import WeightTensor
from onnx_share.numerics import low_rank
from onnx_share.numerics.metrics import relative_error
from onnx_share.passes.base import PassOutcome, WeightPass, not_smaller, stored_bytes, tensor_row, working_on
from onnx_share.report.data import TensorReport

log = logging.getLogger("onnx_share")

# Gemm's bias C became optional in opset 11; older models cannot take the bias-free first Gemm.
OPTIONAL_GEMM_BIAS_OPSET = 11
SPLIT_OPS = frozenset({"MatMul", "Gemm"})
# Bytes of the node a split adds per consumer (a MatMul with three value names), for the not-smaller rule.
SPLIT_NODE_BYTES = 64


@dataclass(frozen=True)
class _Use:
    """One consumer of W and how it reads the stored matrix W [rows, cols] = P [rows, r] @ Q [r, cols].

    ``kind``: ``right`` (x @ W: MatMul input 1, Gemm transB=0), ``left`` (W @ x: MatMul input 0) or
    ``right_t`` (x @ Wᵀ: Gemm transB=1).
    """

    node: ir.Node
    kind: str

    @property
    def rows_are_inputs(self) -> bool:
        """Whether W's rows index the consumer's input features (x @ W) rather than its outputs."""
        return self.kind == "right"


class SplitLowRankPass(WeightPass):
    """Split every selected 2-D MatMul/Gemm weight into SVD factors where that saves ``min_saving``."""

    name = "lowrank"

    def call(self, model: ir.Model) -> PassOutcome:
        options = self.config.lowrank
        result = PassOutcome(model, modified=False)
        if not options.enabled:
            result.notes.append("lowrank: no rank, energy or max_error set; nothing split")
            return result
        names = NameScope(model)
        opset = default_opset(model) or OPTIONAL_GEMM_BIAS_OPSET
        chosen = select_weights(model, self.config).chosen
        for weight, _ in self.progress_bar(chosen):
            if not SPLIT_OPS & set(weight.op_types):
                log.debug("lowrank: skip %s: not a MatMul/Gemm weight", weight.name)
                continue
            uses, reason = _uses(weight, opset)
            if uses is not None:
                with working_on(weight.name):
                    row, reason = _split(weight, uses, options, names)
                if row is not None:
                    result.changes.append(row)
                    result.modified = True
                    continue
            log.debug("lowrank: keep %s: %s", weight.name, reason)
            result.notes.append(f"lowrank: kept {weight.name} {list(weight.shape)}: {reason}")
        return result


def _uses(weight: WeightTensor, opset: int) -> tuple[list[_Use] | None, str]:
    """How each consumer reads W, or why W cannot be split."""
    if len(weight.shape) != 2:
        return None, f"{len(weight.shape)}-D weight; only 2-D MatMul/Gemm weights are split"
    uses: list[_Use] = []
    for use in weight.value.uses():
        consumer, index = use.node, use.idx
        if any(u.node is consumer for u in uses):
            return None, f"feeds two inputs of {consumer.op_type} node {consumer.name!r}"
        standard = consumer.domain in DEFAULT_DOMAINS
        if standard and consumer.op_type == "MatMul" and index in (0, 1):
            uses.append(_Use(consumer, "right" if index == 1 else "left"))
            continue
        if standard and consumer.op_type == "Gemm" and index == 1:
            trans_a, trans_b = _int_attr(consumer, "transA"), _int_attr(consumer, "transB")
            if (trans_a or trans_b) and opset < OPTIONAL_GEMM_BIAS_OPSET:
                return None, (
                    f"Gemm {consumer.name!r} with transA/transB needs a bias-free Gemm (opset >= "
                    f"{OPTIONAL_GEMM_BIAS_OPSET}); the model has opset {opset}"
                )
            uses.append(_Use(consumer, "right_t" if trans_b else "right"))
            continue
        where = "Gemm input A (a constant A is not split)" if consumer.op_type == "Gemm" else (
            f"{consumer.op_type} input {index}"
        )
        return None, f"read by {where}; only MatMul inputs and Gemm input B are split"
    if not uses:
        return None, "no consumer"
    return uses, ""


def _split(
    weight: WeightTensor, uses: list[_Use], options: LowRankConfig, names: NameScope
) -> tuple[TensorReport | None, str]:
    """Factor W and rewire its consumers, or say why the split would not pay."""
    original = weight.numpy()
    rows, cols = original.shape
    fan_in, fan_out = (rows, cols) if uses[0].rows_are_inputs else (cols, rows)
    budget = low_rank.max_saving_rank(rows, cols, options.min_saving)
    if budget == 0:
        return None, f"no rank saves {options.min_saving:.0%} of a [{rows}x{cols}] weight"
    values = None
    if options.energy is not None or options.max_error is not None:
        values = low_rank.singular_values(original)
    rank = low_rank.choose_rank(
        values, (rows, cols), rank=options.rank, energy=options.energy, max_error=options.max_error
    )
    if rank > budget:
        error = "" if values is None else f" (weight error {low_rank.truncation_error(values, rank):.3g})"
        return None, (
            f"needs rank {rank}{error}: {rank * (rows + cols)} of {rows * cols} elements, which does not save "
            f"min_saving {options.min_saving:.0%} (the largest rank that does is {budget})"
        )
    factors = low_rank.factorize(original, rank)
    dtype = original.dtype
    left, right = factors.left.astype(dtype), factors.right.astype(dtype)
    first_is_left = uses[0].rows_are_inputs
    first, second = (left, right) if first_is_left else (right, left)
    a = constant(names, f"{weight.name}_lowrank_a", first)
    b = constant(names, f"{weight.name}_lowrank_b", second)
    stored = stored_bytes([], [a, b]) + SPLIT_NODE_BYTES * len(uses)
    if not_smaller(weight, stored) is not None:
        return None, f"the factors at rank {rank} (about {stored} bytes with their nodes) would not be smaller"
    p, q = (a, b) if first_is_left else (b, a)
    for use in uses:
        _rewire(use, p, q, weight, names)
    _remove(weight)
    for value in (a, b):
        weight.graph.register_initializer(value)
    approx = left.astype(np.float64) @ right.astype(np.float64)
    row = tensor_row(
        weight,
        change="split",
        bytes_before=int(original.nbytes),
        bytes_after=int(left.nbytes + right.nbytes),
        relative_error=relative_error(original, approx),
        details={
            "matrix": [rows, cols], "rank": rank, "in": fan_in, "out": fan_out,
            "energy": low_rank.energy_kept(factors.singular_values, rank), "factors": [a.name, b.name],
        },
    )
    return row, ""


def _rewire(
    use: _Use, p: ir.Value, q: ir.Value, weight: WeightTensor, names: NameScope
) -> None:
    """Insert the thin first step before ``use.node`` and make the node read it and the second factor.

    W = P @ Q: x @ W = (x @ P) @ Q; W @ x = P @ (Q @ x); x @ Wᵀ = (x @ Qᵀ) @ Pᵀ.
    """
    consumer = use.node
    base = f"{consumer.name or weight.name}/lowrank"
    if use.kind == "left":
        step = node("MatMul", [q, consumer.inputs[1]], f"{base}/MatMul", names)
        first_input, second = 1, p
    else:
        x = consumer.inputs[0]
        assert x is not None
        trans_a = _int_attr(consumer, "transA") if consumer.op_type == "Gemm" else 0
        if use.kind == "right" and not trans_a:
            step = node("MatMul", [x, p], f"{base}/MatMul", names)
        elif use.kind == "right":
            step = node("Gemm", [x, p], f"{base}/Gemm", names, transA=1)
        else:
            step = node("Gemm", [x, q], f"{base}/Gemm", names, transA=trans_a, transB=1)
        first_input, second = 0, (q if use.kind == "right" else p)
        if trans_a:
            consumer.attributes["transA"] = ir.AttrInt64("transA", 0)
    step.outputs[0].dtype = weight.dtype
    graph = consumer.graph
    assert graph is not None
    graph.insert_before(consumer, [step])
    consumer.replace_input_with(first_input, step.outputs[0])
    consumer.replace_input_with(1 - first_input, second)


def _remove(weight: WeightTensor) -> None:
    """Drop W (now unused) from its graph."""
    weight.graph.initializers.pop(weight.name)


def _int_attr(consumer: ir.Node, name: str) -> int:
    attr = consumer.attributes.get(name)
    return attr.as_int() if attr is not None else 0
