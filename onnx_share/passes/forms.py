"""The size model: the candidate forms of one weight, each with its exact byte cost and its measured error.

A :class:`Form` is one way to store a weight: a codebook (per tensor, per group of output channels, per channel)
or a uniform grid (per tensor, per output channel, per block along the reduction axis) of some width, decoded by
one of the graphs of :mod:`~onnx_share.passes.decode` in the storage the opset allows. A :class:`CandidateTable`
holds one weight's forms at one opset: :meth:`~CandidateTable.cost` is the bytes the form's decode graph puts in the
file (initializer data, names and dims, nodes), found by building that graph over a placeholder encoding of the
right shapes, so it is the figure the pass later writes; :meth:`~CandidateTable.fit` encodes the weight and
measures ‖W − Ŵ‖ / ‖W‖. Both are cached per form, so the pass, ``inspect`` and a budget search read one table.

:func:`choose_form` picks the form a spec asks for. An explicit granularity gives that one form. ``auto``:

* codebook: the finest grouping of output channels (per channel, then groups of 2, 4, ... channels) whose cost
  stays within the codebook per tensor plus :data:`AUTO_TABLE_BITS` per weight, at the requested width; per tensor
  when none does (short rows, small tensors, no channel axis). For exact k-means the finer of two nested groupings
  never has the larger error (each group's optimum is at most the coarser codebook restricted to it), so this is the
  smallest error within that size. Measured on a real layout detector (F1 0.971 in float, docs/BENCHMARKS.md): one
  4-bit codebook per tensor 0.683, this rule 0.864 for 2% more bytes, per channel 0.975; narrower codebooks with
  finer groups (weighed by weight error) 0.405, so they are not candidates.
* uniform: the layout runtimes fuse at the requested bits (blocks along the reduction axis of MatMul/Gemm weights
  below 8 bits, per output channel otherwise); it is the budget, and the finest grid within it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import ml_dtypes
import numpy as np
import onnx_ir as ir

from onnx_share.calibration.statistics import WeightStatistics
from onnx_share.config import WeightSpec
from onnx_share.ir.surgery import NameScope
from onnx_share.ir.weights import RECURRENT_OPS, WeightTensor
from onnx_share.numerics.codebook import (
    Codebook,
    channels_per_codebook,
    codebook_ids,
    fit_codebook,
    fit_codebooks_per_tensor,
    with_values,
)
from onnx_share.numerics.gptq import CodebookRounder, GridRounder, gptq_round, refit_centroids
from onnx_share.numerics.metrics import count_zeros, relative_error
from onnx_share.numerics.packing import IndexStorage, index_storage, storage_opsets
from onnx_share.numerics.uniform import UniformGrid, integer_range, quantize_uniform
from onnx_share.passes.base import stored_bytes
from onnx_share.passes.decode import arithmetic_graph, codebook_graph, dequantize_graph, gather_block_graph

Decode = Literal["gather", "dequantize", "arithmetic", "gather-block"]

# bits -> (signed type, unsigned type, first opset whose DequantizeLinear takes them)
QUANT_TYPES: dict[int, tuple[type, type, int]] = {
    8: (np.int8, np.uint8, 10),
    4: (ml_dtypes.int4, ml_dtypes.uint4, 21),
    2: (ml_dtypes.int2, ml_dtypes.uint2, 25),
}
PER_AXIS_MIN_OPSET = 13
BLOCKED_MIN_OPSET = 21
HALF_SCALE_MIN_OPSET = 19
FUSABLE_OPS = frozenset({"MatMul", "Gemm"})
GATHER_ELEMENTS_MIN_OPSET = 11  # the decode of per-channel and grouped codebooks
GATHER_BLOCK_NOTE = ("read by com.microsoft GatherBlockQuantized (onnxruntime only): the table stays quantized "
                     "when the model runs")
# What auto granularity may spend on more codebooks (their tables and decode nodes), in bits per weight on top of
# the codebook per tensor.
AUTO_TABLE_BITS = 0.25


@dataclass(frozen=True)
class Form:
    """One stored form of a weight.

    ``group_size``: codebook, output channels per codebook (1 per channel); uniform, block length along ``axis``.
    ``storage``: how the integer codes are stored (codebook indices; uniform codes decoded by ``arithmetic``);
    None for ``DequantizeLinear``, whose integer type follows from ``bits``. ``notes`` say where the requested
    granularity could not be had.
    """

    scheme: Literal["codebook", "uniform"]
    bits: int
    clusters: int
    granularity: str
    axis: int | None
    group_size: int | None
    decode: Decode
    storage: IndexStorage | None = None
    symmetric: bool = True
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        """``codebook 3-bit per channel``, ``uniform 4-bit blocks of 128``..."""
        where = {"tensor": "per tensor", "channel": "per channel"}.get(self.granularity)
        if where is None:
            where = f"groups of {self.group_size}" if self.scheme == "codebook" else f"blocks of {self.group_size}"
        return f"{self.scheme} {self.bits}-bit {where}"

    @property
    def fit_key(self) -> tuple:
        """What the fitted encoding depends on: not how it is stored or decoded (so opsets share fits)."""
        return self.scheme, self.clusters, self.granularity, self.axis, self.group_size, self.symmetric


@dataclass(frozen=True)
class Fitted:
    """A form fitted to the weight: its encoding, ‖W − Ŵ‖ / ‖W‖ against the weight as loaded, and the decoded
    weight's count of exact zeros (codebooks; None for grids) and the fitted values' (``zeros_before``). With
    calibration statistics: ‖X(W − Ŵ)‖ / ‖XW‖ on the held-out samples (``activation_error``), E[x]·(W − Ŵ) per
    output channel (``bias_shift``), and what the data changed (``methods``)."""

    encoding: Codebook | UniformGrid
    relative_error: float
    zeros: int | None
    zeros_before: int = 0
    activation_error: float | None = None
    bias_shift: np.ndarray | None = None
    methods: tuple[str, ...] = ()


class CandidateTable:
    """The candidate forms of one weight at default-domain ``opset``, their byte costs and fits (cached).

    ``reference`` is the weight as loaded (errors are measured against it); the weight's current values (pruned,
    say) are what is fitted. ``spec`` gives the k-means seeding and zero pinning and what calibration
    ``statistics`` (when given) change, ``seed`` the k-means seed, ``target`` the runtime the forms are for
    (:data:`~onnx_share.config.RUNTIMES`).
    """

    def __init__(
        self,
        weight: WeightTensor,
        opset: int,
        spec: WeightSpec,
        *,
        target: str = "portable",
        reference: np.ndarray | None = None,
        seed: int = 0,
        statistics: WeightStatistics | None = None,
    ) -> None:
        self.weight = weight
        self.statistics = statistics
        self.opset = opset
        self.spec = spec
        self.target = target
        self.seed = seed
        self._reference = reference
        self._costs: dict[Form, int] = {}
        self._data: dict[Form, int] = {}
        self._fits: dict[tuple, Fitted] = {}
        self._clustered: dict[int, Codebook] = {}  # k-means codebooks per tensor by size, until their form is fitted

    def serves(self, weight: WeightTensor, spec: WeightSpec, target: str, seed: int) -> bool:
        """Whether this table's fits hold for ``weight`` under ``spec``: the same values and everything a fit
        depends on but the form (scheme, bits, clusters, granularity and block size pick the form)."""
        form_fields = {"scheme": "codebook", "bits": 8, "clusters": None, "granularity": "auto", "group_size": 128}
        return (weight.name == self.weight.name and weight.shape == self.weight.shape
                and weight.dtype == self.weight.dtype and target == self.target and seed == self.seed
                and replace(spec, **form_fields) == replace(self.spec, **form_fields))

    def rebound(self, weight: WeightTensor, opset: int, statistics: WeightStatistics | None) -> CandidateTable:
        """A table for ``weight`` (the same values in another graph) at ``opset`` that shares this table's fits
        (and its costs, at the same opset)."""
        table = CandidateTable(weight, opset, self.spec, target=self.target, reference=self._reference,
                               seed=self.seed, statistics=statistics)
        table._fits, table._clustered = self._fits, self._clustered
        if opset == self.opset:
            table._costs, table._data = self._costs, self._data
        return table

    @property
    def stored_cost(self) -> int:
        """Bytes of the weight as stored now: its data, name and dims (the "left as is" form)."""
        return int(self.weight.tensor.nbytes) + len(self.weight.name) + 2 * len(self.weight.shape) + 8

    def cost(self, form: Form) -> int:
        """Bytes the form's decode graph puts in the file: the graph built over a placeholder encoding (for
        ``GatherBlockQuantized``, less the ``Gather`` nodes it replaces)."""
        if form not in self._costs:
            placeholder = _placeholder(self.weight, form)
            if form.decode == "gather-block":
                readers = gather_readers(self.weight)
                standins = [ir.Value(name=reader.inputs[1].name) for reader in readers]
                nodes, initializers = self.graph(form, NameScope(), placeholder, standins)
                for new, old in zip(nodes, readers, strict=True):
                    new.outputs[0].name = old.outputs[0].name
                replaced = sum(ir.serde.serialize_node(old).ByteSize() for old in readers)
                self._costs[form] = stored_bytes(nodes, initializers) - replaced
            else:
                nodes, initializers = self.graph(form, NameScope(), placeholder)
                nodes[-1].outputs[0].name = self.weight.name  # as replace_weight names it
                self._costs[form] = stored_bytes(nodes, initializers)
            self._data[form] = sum(int(v.const_value.nbytes) for v in initializers if v.const_value is not None)
            for value in initializers:  # nodes and values refer to each other: free the data now, not at the next gc
                value.const_value = None
        return self._costs[form]

    def data_cost(self, form: Form) -> int:
        """Bytes of the form's stored numbers alone (indices or codes, codebooks, scales, zero points): what a
        budget in bits per weight counts."""
        self.cost(form)
        return self._data[form]

    def fit(self, form: Form) -> Fitted:
        """The weight encoded in ``form`` and its error (cached)."""
        if form.fit_key not in self._fits:
            self._fits[form.fit_key] = self._fit(form)
        return self._fits[form.fit_key]

    def cluster_per_tensor(self, forms: list[Form]) -> None:
        """Run the k-means of the codebooks per tensor among ``forms`` in one go
        (:func:`~onnx_share.numerics.codebook.fit_codebooks_per_tensor`); their fits start from these codebooks,
        the same ones their own k-means would find."""
        sizes = sorted({form.clusters for form in forms if form.scheme == "codebook" and form.granularity == "tensor"
                        and form.fit_key not in self._fits})
        if len(sizes) < 2 or self.spec.init != "optimal":
            return
        values = self.weight.numpy()
        books = fit_codebooks_per_tensor(values, sizes, pin_zero=self.spec.pin_zero,
                                         sample_weight=self._element_weights(values))
        self._clustered.update(zip(sizes, books, strict=True))

    def decoded(self, form: Form) -> np.ndarray:
        """Ŵ of the fitted form as its decode graph computes it, in the weight's layout and dtype."""
        return _decoded(self.fit(form).encoding, self.weight.numpy())

    def graph(
        self,
        form: Form,
        names: NameScope,
        encoding: Codebook | UniformGrid | None = None,
        ids: list[ir.Value] | None = None,
    ) -> tuple[list[ir.Node], list[ir.Value]]:
        """The decode nodes and initializers of ``form`` (over the fitted encoding unless one is given); for
        ``GatherBlockQuantized`` one node per ``Gather`` reader, reading ``ids`` (default: the readers' indices)."""
        weight = self.weight
        encoding = self.fit(form).encoding if encoding is None else encoding
        if form.decode == "gather-block":
            assert isinstance(encoding, UniformGrid)
            ids = [reader.inputs[1] for reader in gather_readers(weight)] if ids is None else ids
            return gather_block_graph(weight.name, encoding, form.bits, ids, names)
        if form.decode == "gather":
            assert isinstance(encoding, Codebook) and form.storage is not None
            return codebook_graph(weight.name, weight.shape, weight.dtype.numpy(), encoding, form.storage, names)
        assert isinstance(encoding, UniformGrid)
        if form.decode == "arithmetic":
            assert form.storage is not None
            return arithmetic_graph(weight.name, weight.dtype, encoding, form.bits, form.storage, names)
        return dequantize_graph(weight.name, weight.dtype, encoding, _quant_type(weight, form), names)

    def storage_label(self, form: Form) -> str:
        """What the integers are stored as: ``UINT4``, ``UINT8 packed 3-bit``, ``INT4`` (``DequantizeLinear``)..."""
        if form.storage is not None:
            return form.storage.label
        if form.decode == "gather-block":
            return "UINT8" if form.bits == 8 else "INT4" if form.symmetric else "UINT4"
        return ir.DataType.from_numpy(np.dtype(_quant_type(self.weight, form))).name

    def _fit(self, form: Form) -> Fitted:
        values = self.weight.numpy()
        reference = values if self._reference is None else self._reference
        statistics, spec = self.statistics, self.spec
        weights = self._element_weights(values)
        hessian = statistics.hessian if statistics is not None and spec.rounding == "gptq" else None
        encoding: Codebook | UniformGrid
        if form.scheme == "codebook":
            clustered = self._clustered.pop(form.clusters, None) if form.granularity == "tensor" else None
            encoding = clustered if clustered is not None else fit_codebook(
                values, form.clusters, form.axis, granularity=form.granularity, group_size=form.group_size or 1,
                init=spec.init, pin_zero=spec.pin_zero, seed=self.seed, sample_weight=weights,
            )
            if statistics is not None and hessian is not None:
                ids = statistics.view.to_view(codebook_ids(encoding, values.shape))
                rounded = gptq_round(statistics.view.to_view(values), statistics.gptq_plan(),
                                     CodebookRounder(encoding.centroids, ids))
                encoding = with_values(encoding, statistics.view.from_view(rounded, values.shape))
            if statistics is not None and spec.refit and statistics.hessian is not None:
                view = statistics.view
                assignment = view.to_view(encoding.in_layout(encoding.indices, values.shape))
                centroids = refit_centroids(view.to_view(values), statistics.hessian,
                                            view.to_view(codebook_ids(encoding, values.shape)), assignment,
                                            encoding.centroids)
                encoding = encoding.with_centroids(centroids, values.dtype)
            error, zeros = encoding.measure(reference)
            zeros_before = count_zeros(values)
        else:
            encoding = quantize_uniform(
                values, form.bits, symmetric=form.symmetric, axis=form.axis, block_size=form.group_size,
                scale_dtype=_scale_dtype(self.weight), sample_weight=weights,
            )
            if statistics is not None and hessian is not None:
                qmin, qmax = integer_range(form.bits, form.symmetric)
                scale, zero_point = (statistics.view.to_view(p) for p in encoding.per_element())
                rounded = gptq_round(statistics.view.to_view(values), statistics.gptq_plan(),
                                     GridRounder(scale, zero_point, qmin, qmax))
                encoding = encoding.with_values(statistics.view.from_view(rounded, values.shape))
            error, zeros, zeros_before = relative_error(reference, _decoded(encoding, values)), None, 0
        if statistics is None:
            return Fitted(encoding, error, zeros, zeros_before)
        decoded = _decoded(encoding, values)
        refit = form.scheme == "codebook" and spec.refit and statistics.hessian is not None
        methods = (("activation-weighted",) * (weights is not None) + ("GPTQ rounding",) * (hessian is not None)
                   + ("centroids refit",) * refit)
        return Fitted(encoding, error, zeros, zeros_before, statistics.activation_error(reference, decoded),
                      statistics.bias_shift(reference, decoded) if self._corrects_bias() else None, methods)

    def _element_weights(self, values: np.ndarray) -> np.ndarray | None:
        """The weight of each element's squared error in the fits (from the statistics), or None."""
        return self.statistics.element_weights(values.shape) if self.statistics is not None and self._weighs() else None

    def _weighs(self) -> bool:
        """``spec.weighting``, or (None) for every weight but ``Gather`` tables."""
        if self.spec.weighting is not None:
            return self.spec.weighting
        return self.statistics is not None and self.statistics.row_counts is None

    def _corrects_bias(self) -> bool:
        """``spec.bias_correction``, or (None) for every weight but those of recurrent ops."""
        if self.spec.bias_correction is not None:
            return self.spec.bias_correction
        return not set(self.weight.op_types) & RECURRENT_OPS


def _decoded(encoding: Codebook | UniformGrid, values: np.ndarray) -> np.ndarray:
    """Ŵ as the decode graph computes it, in ``values``' dtype (grids decoded in float32, as the graph does)."""
    if isinstance(encoding, Codebook):
        return encoding.decode(values.shape).astype(values.dtype)
    return encoding.dequantize(np.float32).astype(values.dtype)


def requested_form(weight: WeightTensor, spec: WeightSpec, opset: int, target: str = "portable") -> Form:
    """The form ``spec`` names, resolved for this weight: its granularity (``auto``: per tensor for codebooks,
    the fusable layout for grids), falling back where the weight's consumers give no axis; the storage or decode
    ``opset`` allows. For ``target`` onnxruntime, a 4- or 8-bit grid of an embedding table read only by ``Gather``
    is blocked along its rows and read by ``GatherBlockQuantized``."""
    if spec.scheme == "uniform":
        form = _uniform_form(weight, spec, opset)
        if target == "onnxruntime" and form.decode == "dequantize" and _gather_block_eligible(weight, spec):
            return Form("uniform", spec.bits, 2**spec.bits, "group", 1, spec.group_size, "gather-block",
                        symmetric=spec.symmetric, notes=(GATHER_BLOCK_NOTE,))
        return form
    return _codebook_form(weight, spec.num_clusters, "tensor" if spec.granularity == "auto" else spec.granularity,
                          spec.group_size, opset)


def choose_form(table: CandidateTable, spec: WeightSpec) -> Form:
    """The form to write for ``table``'s weight under ``spec`` (see the module docstring for ``auto``)."""
    weight = table.weight
    requested = requested_form(weight, spec, table.opset, table.target)
    if spec.granularity != "auto" or spec.scheme == "uniform" or weight.channel_axis is None:
        return requested
    size = int(np.prod(weight.shape, dtype=np.int64))
    budget = table.cost(requested) + int(AUTO_TABLE_BITS * size / 8)
    return _finest_affordable(table, spec.num_clusters, budget) or requested


def wanted_opsets(weight: WeightTensor, spec: WeightSpec) -> set[int]:
    """Default-domain opsets worth raising the model to for this weight: where its index or code storages and
    (grids) its ``DequantizeLinear`` layout become available."""
    if spec.scheme == "uniform":
        form = _uniform_form(weight, spec, opset=10**6)
        return {_dequantize_opset(weight, spec.bits, form.axis, form.group_size), *storage_opsets([spec.bits])}
    grouped = {GATHER_ELEMENTS_MIN_OPSET} if spec.granularity != "tensor" else set()
    return storage_opsets([spec.index_bits]) | grouped


def gather_readers(weight: WeightTensor) -> list[ir.Node]:
    """The nodes that read ``weight`` (all ``Gather`` of its rows, for :func:`_gather_block_eligible`)."""
    return [use.node for use in weight.value.uses()]


def _gather_block_eligible(weight: WeightTensor, spec: WeightSpec) -> bool:
    """Whether onnxruntime's ``GatherBlockQuantized`` can read this weight's grid: a float32/float16 table [V, D]
    read only by default-domain ``Gather`` along axis 0, 4 or 8 bits, blocks (auto or group granularity) of a power
    of two from 16."""
    readers = weight.value.uses()
    return (
        len(weight.shape) == 2
        and weight.dtype in (ir.DataType.FLOAT, ir.DataType.FLOAT16)
        and spec.bits in (4, 8)
        and spec.granularity in ("auto", "group")
        and spec.group_size >= 16
        and spec.group_size & (spec.group_size - 1) == 0
        and len(readers) > 0
        and all(
            use.node.op_type == "Gather" and use.node.domain in ("", "ai.onnx") and use.idx == 0
            and (use.node.attributes.get_int("axis", 0) or 0) == 0
            for use in readers
        )
    )


def _finest_affordable(table: CandidateTable, clusters: int, budget: int) -> Form | None:
    """The codebook of ``clusters`` entries with the most codebooks (per channel, then groups of 2, 4, ...
    channels) whose cost stays within ``budget``; None when no grouping finer than the whole tensor does."""
    weight, opset = table.weight, table.opset
    channels = weight.shape[weight.channel_axis] if weight.channel_axis is not None else 1
    forms = [_codebook_form(weight, clusters, "channel", 1, opset)]
    size = 2
    while size < channels:
        form = _codebook_form(weight, clusters, "group", size, opset)
        if form.group_size not in (forms[-1].group_size, channels):
            forms.append(form)
        size *= 2
    # Cost falls as groups grow (fewer tables): bisect for the first affordable one.
    low, high = 0, len(forms)
    while low < high:
        middle = (low + high) // 2
        if table.cost(forms[middle]) <= budget:
            high = middle
        else:
            low = middle + 1
    return forms[low] if low < len(forms) else None


def _codebook_form(weight: WeightTensor, clusters: int, granularity: str, group_size: int, opset: int) -> Form:
    notes: tuple[str, ...] = ()
    axis = weight.channel_axis if granularity != "tensor" else None
    if granularity != "tensor" and axis is None:
        notes = (f"{granularity} granularity needs one output-channel axis; used per tensor",)
        granularity = "tensor"
    elif granularity != "tensor" and opset < GATHER_ELEMENTS_MIN_OPSET:
        notes = (f"{granularity} codebooks are decoded by GatherElements, which opset {opset} lacks; used per tensor",)
        granularity, axis = "tensor", None
    groups = channels_per_codebook(weight.shape[axis], granularity, group_size) if axis is not None else None
    if groups is not None and groups == 1:
        granularity = "channel"
    bits = _index_bits(clusters)
    return Form("codebook", bits, clusters, granularity, axis, groups, "gather", index_storage(bits, opset),
                notes=notes)


def _uniform_form(weight: WeightTensor, spec: WeightSpec, opset: int) -> Form:
    granularity, axis, block_size, notes = _uniform_layout(weight, spec)
    form = Form("uniform", spec.bits, 2**spec.bits, granularity, axis, block_size, "dequantize",
                symmetric=spec.symmetric, notes=tuple(notes))
    need = _dequantize_opset(weight, spec.bits, axis, block_size)
    if need <= opset:
        return form
    note = (f"DequantizeLinear in this layout needs opset {need}; decoded by Cast/Sub/Mul instead, which "
            "onnxruntime does not fuse into quantized kernels")
    return replace(form, decode="arithmetic", storage=index_storage(spec.bits, opset), notes=(*form.notes, note))


def _uniform_layout(weight: WeightTensor, spec: WeightSpec) -> tuple[str, int | None, int | None, list[str]]:
    """(granularity, axis, block size, notes) for the weight, falling back where its consumers give no axis."""
    granularity = spec.granularity
    notes: list[str] = []
    if granularity == "auto":
        # 8 bits per output channel; fewer bits in blocks along the reduction axis of MatMul/Gemm weights.
        # onnxruntime fuses both into MatMulNBits for a MatMul weight [K, N]; TensorRT takes per-channel INT8
        # and blocked INT4 (it has no blocked INT8).
        blockable = set(weight.op_types) <= FUSABLE_OPS and len(weight.shape) == 2
        blocked = blockable and spec.bits < 8 and weight.reduction_axis is not None
        granularity = "group" if blocked else "channel"
    if granularity == "group":
        axis = weight.reduction_axis
        if axis is not None and (len(weight.shape) > 1 or weight.shape[axis] > spec.group_size):
            # A block longer than the axis is one block per column: the block length runtimes fuse stays.
            return "group", axis, spec.group_size, notes
        if axis is not None:  # one block of a 1-D weight: onnxruntime reads a one-element scale as per tensor
            return "tensor", None, None, ["a single block; used per tensor"]
        notes.append("no single reduction axis for blocks; used per channel")
        granularity = "channel"
    if granularity == "channel":
        axis = weight.channel_axis
        if axis is not None:
            return "channel", axis, None, notes
        notes.append("no single output-channel axis; used per tensor")
    return "tensor", None, None, notes


def _dequantize_opset(weight: WeightTensor, bits: int, axis: int | None, block_size: int | None) -> int:
    """The oldest ``DequantizeLinear`` that takes this integer type, scale dtype and layout."""
    needed = [QUANT_TYPES[bits][2]]
    if axis is not None:
        needed.append(BLOCKED_MIN_OPSET if block_size is not None else PER_AXIS_MIN_OPSET)
    if weight.dtype == ir.DataType.FLOAT16:
        needed.append(HALF_SCALE_MIN_OPSET)
    return max(needed)


def _quant_type(weight: WeightTensor, form: Form) -> type:
    """The numpy integer type of a ``DequantizeLinear`` grid: signed for symmetric grids, unsigned with a zero
    point otherwise. An unsigned 2-bit grid read through a ``Transpose`` is stored in UINT4: onnxruntime 1.32 fails
    to load the constant-folded UINT2 ``DequantizeLinear`` → ``Transpose`` ("element type mismatch")."""
    container = 4 if form.bits == 2 and not form.symmetric and _feeds_transpose(weight) else form.bits
    signed, unsigned, _ = QUANT_TYPES[container]
    return signed if form.symmetric else unsigned


def _feeds_transpose(weight: WeightTensor) -> bool:
    """Whether the weight reaches a ``Transpose``, directly or through ``Identity``/``Cast``."""
    values = [weight.value]
    while values:
        for use in values.pop().uses():
            if use.node.op_type == "Transpose":
                return True
            if use.node.op_type in ("Identity", "Cast"):
                values.extend(use.node.outputs)
    return False


def _scale_dtype(weight: WeightTensor) -> np.dtype:
    """Scales in the weight's type; float32 for bfloat16 weights (see :func:`dequantize_graph`)."""
    return np.dtype(np.float32) if weight.dtype == ir.DataType.BFLOAT16 else np.dtype(weight.dtype.numpy())


def _index_bits(clusters: int) -> int:
    return max(1, (clusters - 1).bit_length())


def _placeholder(weight: WeightTensor, form: Form) -> Codebook | UniformGrid:
    """An all-zero encoding with the shapes ``form`` gives the weight (what :meth:`CandidateTable.cost` builds)."""
    shape = weight.shape
    size = int(np.prod(shape, dtype=np.int64))
    if form.scheme == "codebook":
        groups = 1 if form.axis is None else shape[form.axis] // (form.group_size or 1)
        return Codebook(np.zeros((groups, form.clusters)), np.zeros((groups, size // groups), np.uint8), form.axis,
                        form.granularity, form.group_size)
    scale_shape: tuple[int, ...] = ()
    if form.axis is not None and form.group_size is None:
        scale_shape = (shape[form.axis],)
    elif form.axis is not None:
        scale_shape = tuple(-(-n // form.group_size) if i == form.axis else n for i, n in enumerate(shape))
    zero_point = None if form.symmetric else np.zeros(scale_shape, np.int64)
    return UniformGrid(np.zeros(shape, np.int16), np.zeros(scale_shape, _scale_dtype(weight)), zero_point,
                       form.axis, form.group_size)
