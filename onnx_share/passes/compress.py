"""The ``compress`` step: every selected float weight W becomes a decode subgraph that computes Ŵ, under W's name.

Per weight, the spec's scheme and granularity pick a :class:`~onnx_share.passes.forms.Form` from the weight's
:class:`~onnx_share.passes.forms.CandidateTable` (``auto``: the smallest error within the requested size), and
the form's graph replaces W:

* codebook: ``Gather(centroids, indices)`` per tensor; per channel or group ``GatherElements`` over [G, M] and
  ``Reshape``/``Transpose`` back to W's layout. Indices are stored in a native type of exactly their width
  (UINT2, UINT4, UINT8) or bit-packed into bytes, as the opset allows.
* uniform: ``DequantizeLinear(q, scale[, zero_point])``, q INT8/INT4/INT2 (symmetric) or unsigned with a zero
  point, scales per tensor, per output channel or per block along the reduction axis (a MatMul weight [K, N]
  blocked along K with a power-of-two block of 16-256 is what onnxruntime fuses into ``MatMulNBits``); where the
  opset's ``DequantizeLinear`` lacks the type or layout, the same grid decoded by ``Cast``/``Sub``/``Mul``; for
  ``target`` onnxruntime, an embedding table read only by ``Gather`` becomes ``GatherBlockQuantized`` nodes that
  read the grid directly, so it is never expanded to float.

First the model's opset is raised to the highest one the weights' forms benefit from, where that is safe.
A form that would not be smaller than W as stored leaves W as it is. Forms are chosen and fitted on
``config.jobs`` threads a chunk of weights at a time while the graph stands still, then written in order, so the
output is byte-identical for any number of workers. Where the model has a :class:`~onnx_share.io.spill.TensorSpill`
attached, each rewritten weight's large tensors go to it as soon as they are written, so memory holds the chunk
being worked on, not the compressed model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx_ir as ir

from onnx_share.config import OptimizeConfig, WeightSpec
from onnx_share.io.load import release
from onnx_share.io.spill import TensorSpill, spill_of
from onnx_share.ir.opset import raise_opset_to_best
from onnx_share.ir.selection import select_weights
from onnx_share.ir.surgery import NameScope, add_to_bias, replace_readers, replace_weight
from onnx_share.ir.weights import WeightTensor
from onnx_share.passes.base import (
    ORIGINAL_META_KEY,
    PassOutcome,
    WeightPass,
    in_order,
    not_smaller,
    tensor_row,
    working_on,
)
from onnx_share.passes.decode import CONTRIB_DOMAIN
from onnx_share.passes.forms import CandidateTable, Fitted, Form, choose_form, gather_readers, wanted_opsets
from onnx_share.report.data import TensorReport

if TYPE_CHECKING:
    from onnx_share.calibration.statistics import Statistics

# A weight's table, its chosen form, the skip row when that form would not be smaller, and why the calibration
# data could not be used for it (None when it was, or when there is none).
Plan = tuple[CandidateTable, Form, TensorReport | None, str | None]


class CompressPass(WeightPass):
    """Replace every selected weight by the decode subgraph of the form its spec chooses; with calibration
    ``statistics``, fitted to the activations it multiplies (see :class:`~onnx_share.config.WeightSpec`).
    ``tables``: candidate tables by weight name, whose fits are reused where they hold (a budget search fitted
    them) and where the tables this pass builds are kept."""

    name = "compress"

    def __init__(self, config: OptimizeConfig, *, progress: bool = False, statistics: Statistics | None = None,
                 tables: dict[str, CandidateTable] | None = None) -> None:
        super().__init__(config, progress=progress)
        self.statistics = statistics
        self.tables = tables

    @classmethod
    def from_config(cls, config: OptimizeConfig, *, progress: bool = False, statistics: Statistics | None = None,
                    tables: dict[str, CandidateTable] | None = None) -> CompressPass:
        return cls(config, progress=progress, statistics=statistics, tables=tables)

    def opsets_wanted(self, model: ir.Model) -> set[int]:
        """The default-domain opsets the selected weights' forms benefit from (native packed types,
        ``DequantizeLinear`` layouts)."""
        return _wanted(select_weights(model, self.config).chosen)

    def call(self, model: ir.Model) -> PassOutcome:
        chosen = select_weights(model, self.config).chosen
        names = NameScope(model)
        result = PassOutcome(model, modified=False)
        opset, blockers = raise_opset_to_best(model, _wanted(chosen))
        if blockers:
            result.notes.append(
                f"a newer opset would store some weights smaller, but it is not safe to raise to "
                f"({', '.join(blockers[:5])}); weights are stored as opset {opset} allows (see each tensor's storage)"
            )
        plans = in_order(lambda item: self._plan(*item, opset, model.graph), chosen, self.config.worker_count)
        spill = spill_of(model)
        for (weight, spec), plan in self.progress_bar(plans, total=len(chosen)):
            with working_on(weight.name):
                result.tensors.append(self._rewrite(model, weight, spec, plan, names, spill))
            release(weight.value.const_value)  # the replaced (or kept) input tensor's pages
        result.modified = any(row.scheme is not None for row in result.tensors)
        return result

    def _plan(self, weight: WeightTensor, spec: WeightSpec, opset: int, main: ir.Graph) -> Plan:
        """The weight's table, chosen form, and the skip row when that form is not smaller; fitted unless skipped.
        Reads the graph, never changes it: plans of several weights run on worker threads."""
        with working_on(weight.name):
            original = weight.value.meta.get(ORIGINAL_META_KEY)
            statistics = None if self.statistics is None else self.statistics.for_weight(weight, main)
            measured = None if isinstance(statistics, str) else statistics
            cached = None if self.tables is None else self.tables.get(weight.name)
            if cached is not None and cached.serves(weight, spec, self.config.target, self.config.seed):
                table = cached.rebound(weight, opset, measured)
            else:
                table = CandidateTable(
                    weight, opset, spec, target=self.config.target,
                    reference=None if original is None else original.numpy(), seed=self.config.seed,
                    statistics=measured,
                )
                if self.tables is not None:
                    self.tables[weight.name] = table
            form = choose_form(table, spec)
            refused = not_smaller(weight, table.cost(form))
            if refused is None:
                table.fit(form)
            release(weight.tensor)  # the fit is made: its pages wait for the rewrite no more (read again if asked)
            return table, form, refused, statistics if isinstance(statistics, str) else None

    def _rewrite(
        self,
        model: ir.Model,
        weight: WeightTensor,
        spec: WeightSpec,
        plan: Plan,
        names: NameScope,
        spill: TensorSpill | None,
    ) -> TensorReport:
        table, form, refused, data_free = plan
        if refused is not None:
            return refused
        fitted = table.fit(form)
        nodes, initializers = table.graph(form, names)
        bytes_before = int(weight.tensor.nbytes)
        if form.decode == "gather-block":
            replace_readers(weight, list(zip(gather_readers(weight), nodes, strict=True)), initializers)
            model.opset_imports.setdefault(CONTRIB_DOMAIN, 1)
        else:
            replace_weight(weight, nodes, initializers)
        if spill is not None:
            for value in initializers:
                value.const_value = spill.store(value.const_value)
        notes = list(form.notes)
        if spec.granularity == "auto" and spec.scheme == "codebook":
            notes.append(f"auto granularity: {form.label}")
        if weight.dtype == ir.DataType.BFLOAT16 and form.decode == "dequantize":
            notes.append("float32 scales and a Cast to bfloat16: onnxruntime has no bfloat16 DequantizeLinear kernel")
        if fitted.zeros_before:  # codebooks report how much sparsity survived
            size = int(np.prod(weight.shape, dtype=np.int64))
            notes.append(f"sparsity {fitted.zeros_before / size:.1%} -> {fitted.zeros / size:.1%}")
        if data_free is not None:
            notes.append(f"data-free: {data_free}")
        calibrated = [*fitted.methods, *filter(None, [self._correct_bias(weight, fitted, names)])]
        if calibrated:
            notes.append(f"calibrated: {', '.join(calibrated)}")
        return tensor_row(
            weight,
            bytes_before=bytes_before,
            bytes_after=sum(int(v.const_value.nbytes) for v in initializers if v.const_value is not None),
            scheme=form.scheme,
            bits=form.bits,
            clusters=form.clusters,
            granularity=form.granularity,
            group_size=form.group_size,
            storage=table.storage_label(form),
            relative_error=fitted.relative_error,
            activation_error=fitted.activation_error,
            notes=notes,
        )

    @staticmethod
    def _correct_bias(weight: WeightTensor, fitted: Fitted, names: NameScope) -> str | None:
        """Add the fit's bias shift to the bias of the weight's one consumer; what happened, for the report."""
        use = weight.uses[0]
        if fitted.bias_shift is None or use.node is None:
            return None
        problem = add_to_bias(use.node, use.input_index, fitted.bias_shift, names)
        return "bias corrected" if problem is None else f"bias not corrected: {problem}"


def _wanted(chosen: list[tuple[WeightTensor, WeightSpec]]) -> set[int]:
    return set().union(*(wanted_opsets(weight, spec) for weight, spec in chosen))
