"""The candidates of every weight a budget search may choose from, each with its exact bytes and its distortion.

Per weight, the candidate specs are codebooks of each budget width per tensor and at ``auto`` granularity, and
uniform grids of each width the scheme takes (2, 4, 8) at ``auto``, every one on top of the weight's own spec (its
rounding, weighting, symmetry...). Each resolves to a :class:`~onnx_share.passes.forms.Form` of the weight's
:class:`~onnx_share.passes.forms.CandidateTable`, whose cost is the bytes the compress step writes for it; forms
that would not be smaller than the weight as stored, and specs resolving to a form already listed, are dropped.
The k-means of a weight's codebooks per tensor runs once for all their sizes. The distortion of a form is its
squared activation error ‖X(W − Ŵ)‖² / ‖XW‖² on the held-out calibration samples where the weight's activations
were measured, else its squared weight error ‖W − Ŵ‖² / ‖W‖².
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir

from onnx_share.calibration.statistics import Statistics
from onnx_share.config import TENSORRT_INT4_BLOCKS, UNIFORM_BITS, BudgetConfig, OptimizeConfig, WeightSpec
from onnx_share.errors import OnnxShareError
from onnx_share.ir.weights import WeightTensor
from onnx_share.passes.base import in_order, not_smaller, original_values, working_on
from onnx_share.passes.forms import CandidateTable, Form, choose_form, wanted_opsets


@dataclass
class Layer:
    """One weight's candidates: the spec changes that name each (what a config override sets), its form, its
    bytes in the file (``costs``) and of stored numbers alone (``data``), and its distortion; ``sensitivity``
    scales the distortion to output error (1 until measured). ``named`` maps every candidate spec tried, as
    (scheme, bits, granularity), to the index of the form it resolved to (one listed earlier where it was the same
    form; absent where it was not smaller than the weight as stored)."""

    weight: WeightTensor
    table: CandidateTable
    changes: list[dict[str, Any]] = field(default_factory=list)
    forms: list[Form] = field(default_factory=list)
    costs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    data: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    distortions: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sensitivity: float = 1.0
    named: dict[tuple[str, int, str], int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.weight.name

    @property
    def measured_on(self) -> str:
        """What its distortion was measured on: ``activations`` (calibration data) or ``weights``."""
        return "weights" if self.table.statistics is None else "activations"

    @property
    def elements(self) -> int:
        return int(np.prod(self.weight.shape, dtype=np.int64))


def candidate_changes(spec: WeightSpec, budget: BudgetConfig, target: str) -> list[dict[str, Any]]:
    """The spec changes a search tries for a weight whose own spec is ``spec``."""
    changes: list[dict[str, Any]] = []
    reset = {"clusters": None} if spec.clusters is not None else {}
    if "codebook" in budget.schemes:
        for bits in sorted(budget.bits):
            for granularity in ("tensor", "auto"):
                changes.append({"scheme": "codebook", "bits": bits, "granularity": granularity, **reset})
    if "uniform" in budget.schemes:
        blocks_ok = target != "tensorrt" or spec.group_size in TENSORRT_INT4_BLOCKS
        for bits in sorted(set(budget.bits) & set(UNIFORM_BITS)):
            if target == "tensorrt" and (bits == 2 or (bits == 4 and not blocks_ok) or not spec.symmetric):
                continue
            changes.append({"scheme": "uniform", "bits": bits, "granularity": "auto"})
    return changes


def search_opsets(chosen: list[tuple[WeightTensor, WeightSpec]], budget: BudgetConfig, target: str) -> set[int]:
    """The opsets the candidates of the ``chosen`` weights benefit from."""
    wanted: set[int] = set()
    for weight, spec in chosen:
        for changes in candidate_changes(spec, budget, target):
            wanted |= wanted_opsets(weight, spec.updated(changes))
    return wanted


def build_layers(
    chosen: list[tuple[WeightTensor, WeightSpec]],
    config: OptimizeConfig,
    opset: int,
    main: ir.Graph,
    statistics: Statistics | None,
) -> list[Layer]:
    """Every chosen weight's candidates, fitted on ``config.worker_count`` threads (the forms in a fixed order,
    so the result is the same for any number)."""
    layers = []
    for weight, spec in chosen:
        measured = None if statistics is None else statistics.for_weight(weight, main)
        table = CandidateTable(weight, opset, spec, target=config.target, reference=original_values(weight),
                               seed=config.seed, statistics=None if isinstance(measured, str) else measured)
        layer = Layer(weight, table)
        for changes in candidate_changes(spec, config.budget, config.target):
            form = choose_form(table, spec.updated(changes))
            if form not in layer.forms and not_smaller(weight, table.cost(form)) is None:
                layer.changes.append(changes)
                layer.forms.append(form)
            if form in layer.forms:
                layer.named[(changes["scheme"], changes["bits"], changes["granularity"])] = layer.forms.index(form)
        if not layer.forms:
            raise OnnxShareError(f"tensor {weight.name!r}: no candidate form is smaller than the tensor as stored; "
                                 "exclude it or allow more candidates")
        layers.append(layer)
    list(in_order(_cluster, layers, config.worker_count))
    jobs = [(i, j) for i, layer in enumerate(layers) for j in range(len(layer.forms))]
    errors = dict(in_order(lambda job: _distortion(layers[job[0]], layers[job[0]].forms[job[1]]), jobs,
                           config.worker_count))
    for i, layer in enumerate(layers):
        layer.costs = np.array([layer.table.cost(form) for form in layer.forms], np.int64)
        layer.data = np.array([layer.table.data_cost(form) for form in layer.forms], np.int64)
        layer.distortions = np.array([errors[(i, j)] for j in range(len(layer.forms))])
    return layers


def _cluster(layer: Layer) -> None:
    """One k-means run for all the layer's codebooks per tensor (their fits then start from it)."""
    with working_on(layer.name):
        layer.table.cluster_per_tensor(layer.forms)


def _distortion(layer: Layer, form: Form) -> float:
    """The form's squared activation error where measured, else its squared weight error."""
    with working_on(layer.name):
        fitted = layer.table.fit(form)
    error = fitted.activation_error if fitted.activation_error is not None else fitted.relative_error
    return float(error) ** 2
