"""The budget search: every weight's form chosen to meet a size, bits or loss budget, then built and verified.

1. The passes before ``compress`` run on a copy of the model; every weight they leave gets its candidates
   (:mod:`~onnx_share.budget.candidates`) and its sensitivity (:mod:`~onnx_share.budget.sensitivity`).
2. :func:`~onnx_share.budget.allocate.pareto_frontier` gives the allocation of least predicted output error for
   every byte count: the predicted rate–distortion curve.
3. A size or bits budget takes the best point within it (bits: at most :data:`BITS_TOLERANCE` above); the model
   is built by the whole pipeline from the original, as the saved config would build it, and saved. Where it comes
   out over the budget (the file's bytes beyond the weights were estimated), the budget is lowered by the excess
   and the point chosen again. Then :data:`ALTERNATIVES` cheaper points within the tolerance (bits: down to
   :data:`BITS_TOLERANCE` below; size: 1% below) are built too, with every single-form allocation (each weight
   in the same candidate spec, such as 4-bit codebooks per tensor) that lands in that window, and the one of least
   measured loss is kept.
4. A loss budget starts at the cheapest point whose predicted loss is within the bound, measures each model it
   builds on the held-out samples (or by the user's score) and bisects for the cheapest point that holds: over
   :data:`CURVE_POINTS` points spread along the frontier, then over the frontier's own points between the two that
   bracket the bound (:data:`REFINE_STEPS` more builds at most). A measured loss or score need not fall as the
   model grows, and predicted errors do not always add, so two more searches follow: a bisection over the
   single-form allocations (ordered by size; those no cheaper than a model that held are not built), then a descent
   from the cheapest model that held towards the largest cheaper one that failed, lowering one weight at a time
   where its error costs the least output error per byte saved (:data:`REFINE_STEPS` builds). The cheapest model
   that held is kept.

Every model built is a row of the report; the chosen one's per-tensor settings become ``tensors`` overrides of
a config that reproduces it without searching.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx_ir as ir

from onnx_share.budget.allocate import Frontier, pareto_frontier
from onnx_share.budget.candidates import Layer, build_layers, search_opsets
from onnx_share.budget.sensitivity import (
    Outputs,
    float_outputs,
    measure_sensitivities,
    output_loss,
    predicted_loss,
    runner,
)
from onnx_share.calibration.statistics import Statistics
from onnx_share.check.feeds import Feeds, prepare_feeds
from onnx_share.config import BudgetConfig, OptimizeConfig
from onnx_share.errors import OnnxShareError
from onnx_share.io.proto import ProtoModel
from onnx_share.io.save import PROTOBUF_LIMIT_BYTES, data_file, estimated_size_bytes, save_model
from onnx_share.ir.opset import raise_opset_to_best
from onnx_share.ir.selection import select_weights
from onnx_share.passes.forms import CandidateTable
from onnx_share.passes.registry import run_pipeline, wanted_opset
from onnx_share.report.data import BudgetLayer, BudgetPoint, BudgetReport, Report

# Frontier points a loss budget bisects over, and that the report's curve shows.
CURVE_POINTS = 32
# Rebuilds of a size or bits budget that came out over it.
MAX_REPAIRS = 4
# How far above ``target_bits`` a model may land: the candidates' sizes are discrete, and a model of a few weights
# may have no allocation just under the target.
BITS_TOLERANCE = 0.05
# Cheaper allocations a bits or size budget also builds, within its tolerance, keeping the best measured.
ALTERNATIVES = 3
# Bisection steps of a loss budget along the frontier between the two curve points that bracket the bound.
REFINE_STEPS = 4

Score = Callable[[str], float]
Allocation = tuple[int, ...]  # a candidate index per layer
# The model to build at an opset: the loaded original, or its conversion to that opset where raising the opset is
# not enough and the converted model gives the same outputs.
Prepare = Callable[[int | None], ir.Model]


@dataclass
class SearchResult:
    """The config that builds the chosen model (``budget`` off, one ``tensors`` override per weight), the
    candidate tables whose fits the final build reuses, and the search's report."""

    config: OptimizeConfig
    tables: dict[str, CandidateTable]
    report: BudgetReport


@dataclass
class _Built:
    row: int  # in the report's ``tried``
    file_bytes: int
    bits: float
    loss: float | None
    score: float | None


@dataclass
class _Search:
    """What every build of the search needs; ``sizes`` are each layer's candidate sizes the budget counts."""

    model: ir.Model
    prepare: Prepare
    config: OptimizeConfig
    layers: list[Layer]
    sizes: list[np.ndarray]
    frontier: Frontier
    statistics: Statistics | None
    samples: list[dict[str, np.ndarray]]
    outputs: list[str]
    reference: Outputs | None
    original: ProtoModel
    score: Score | None
    report: BudgetReport
    tables: dict[str, CandidateTable]
    built: dict[Allocation, _Built] = field(default_factory=dict)

    def point(self, index: int) -> Allocation:
        """The allocation of frontier point ``index``."""
        return tuple(self.frontier.choice(index))

    def size(self, picks: Allocation) -> int:
        """What the budget counts of allocation ``picks``: its stored numbers' bytes (bits) or its weights'."""
        return int(sum(sizes[pick] for sizes, pick in zip(self.sizes, picks, strict=True)))

    def config_for(self, picks: Allocation) -> OptimizeConfig:
        """The user's config with one override per weight naming its form in allocation ``picks``."""
        tensors = {key: dict(changes) for key, changes in self.config.tensors.items()}
        for layer, pick in zip(self.layers, picks, strict=True):
            key = exact_pattern(layer.name)
            tensors[key] = {**tensors.pop(key, {}), **layer.changes[pick]}
        return self.config.updated(tensors=tensors, budget=BudgetConfig())

    def build(self, picks: Allocation, step: str) -> _Built:
        """Build allocation ``picks`` as the pipeline does from the original, save it, and measure it."""
        if picks in self.built:
            return self.built[picks]
        config = self.config_for(picks)
        model = self.prepare(wanted_opset(self.model, config)).clone()
        built = Report(tool_version="", config={})
        run_pipeline(model, config, built, statistics=self.statistics, tables=self.tables)
        compressed = built.compressed
        elements = sum(int(np.prod(row.shape, dtype=np.int64)) for row in compressed)
        bits = 8 * sum(row.bytes_after for row in compressed) / max(elements, 1)
        external = self.config.external_data
        if external is None:
            external = estimated_size_bytes(model) >= PROTOBUF_LIMIT_BYTES
        with tempfile.TemporaryDirectory(prefix="onnx-share-budget-") as folder:
            path = save_model(model, Path(folder) / "candidate.onnx", external_data=external)
            file_bytes = sum(p.stat().st_size for p in (path, data_file(path)) if p.is_file())
            loss = None
            if self.reference is not None:
                loss = output_loss(self.reference, runner(str(path), None, self.outputs)(self.samples),
                                   self.config.budget.loss)
            score = None if self.score is None else float(self.score(str(path)))
        result = _Built(len(self.report.tried), file_bytes, bits, loss, score)
        self.built[picks] = result
        self.report.tried.append(BudgetPoint(step, file_bytes, bits, self.predicted(picks), loss, score))
        return result

    def predicted(self, picks: Allocation) -> float:
        distortion = sum(layer.sensitivity * float(layer.distortions[pick])
                         for layer, pick in zip(self.layers, picks, strict=True))
        return predicted_loss(distortion, self.config.budget.loss)

    def single_forms(self) -> list[Allocation]:
        """Every allocation giving each weight the same candidate spec (a weight without it: its candidate of least
        distortion), cheapest first."""
        keys = list(dict.fromkeys(key for layer in self.layers for key in layer.named))
        allocations = {tuple(layer.named.get(key, int(np.argmin(layer.distortions))) for layer in self.layers)
                       for key in keys}
        return sorted(allocations, key=lambda picks: (self.size(picks), picks))


def exact_pattern(name: str) -> str:
    """A ``tensors`` key (a glob) that matches the tensor ``name`` only."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def search_budget(
    model: ir.Model,
    config: OptimizeConfig,
    statistics: Statistics | None,
    held_out: Feeds | None,
    original: ProtoModel,
    prepare: Prepare,
    score: Score | None = None,
) -> SearchResult:
    """Choose every weight's form to meet ``config.budget`` (see the module docstring); ``model`` is the loaded
    original (not changed), ``prepare`` gives what a candidate config is built from (as the final build will),
    ``original`` the file it was read from, ``held_out`` the samples a loss is measured on and ``score`` the
    user's task metric. The candidates are fitted and costed at the highest opset any of them wants, converting the
    model where raising its opset is not enough, and every model is built as the final one is."""
    budget = config.budget
    if budget.max_drop is not None and score is None:
        raise OnnxShareError("budget.max_drop needs a score function (optimize(..., score=...))")
    if budget.max_loss is not None and held_out is None:
        raise OnnxShareError("a loss budget is measured on held-out samples: give calibration data (--data)")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    wanted = search_opsets(select_weights(model, config).chosen, budget, config.target)
    work = prepare(max(wanted, default=None)).clone()
    before = tuple(name for name in config.pass_names if name != "compress")
    run_pipeline(work, config.updated(passes=before), Report(tool_version="", config={}))
    chosen = select_weights(work, config).chosen
    if not chosen:
        raise OnnxShareError("no weight is selected for compression, so there is no budget to meet")
    opset, _ = raise_opset_to_best(work, search_opsets(chosen, budget, config.target))
    layers = build_layers(chosen, config, opset, work.graph, statistics)
    timings["candidates"] = time.perf_counter() - start

    start = time.perf_counter()
    feeds = held_out if held_out is not None else prepare_feeds(original.proto, config.validation)
    report = BudgetReport(_goal(budget), "score" if budget.max_drop is not None else budget.loss, feeds.source)
    outputs = float_outputs(original.proto)
    if outputs:
        report.notes.extend(measure_sensitivities(work, layers, original.folder, feeds.samples))
    elif budget.max_loss is not None:
        raise OnnxShareError("the model has no float output to measure a loss on; budget on a score instead")
    else:
        report.notes.append("no float output: sensitivities were not measured (every weight counts as 1) and no "
                            "loss is measured")
    timings["sensitivity"] = time.perf_counter() - start

    # A bits budget counts the stored numbers; the others, every byte of the file.
    sizes = [layer.data if budget.target_bits is not None else layer.costs for layer in layers]
    frontier = pareto_frontier(sizes, [layer.sensitivity * layer.distortions for layer in layers])
    elements = sum(layer.elements for layer in layers)
    fixed = estimated_size_bytes(work) - sum(layer.table.stored_cost for layer in layers)
    for point in _curve_points(frontier):
        picks = list(zip(layers, frontier.choice(point), strict=True))
        report.curve.append(BudgetPoint(
            "curve", int(fixed + sum(layer.costs[pick] for layer, pick in picks)),
            8 * float(sum(layer.data[pick] for layer, pick in picks)) / elements,
            predicted_loss(float(frontier.distortion[point]), budget.loss)))
    reference = None
    if outputs and (held_out is not None or budget.max_drop is None):
        reference = runner(original.source, original.folder, outputs)(feeds.samples)
    search = _Search(model, prepare, config, layers, sizes, frontier, statistics, list(feeds.samples), outputs,
                     reference, original, score, report, {layer.name: layer.table for layer in layers})

    start = time.perf_counter()
    if budget.target_bits is not None or budget.target_size is not None:
        picks = _within_size(search, fixed, elements)
    else:
        picks = _within_loss(search)
    timings["build"] = time.perf_counter() - start
    report.chosen = search.built[picks].row
    for layer, pick in zip(layers, picks, strict=True):
        report.layers.append(BudgetLayer(
            layer.name, layer.elements, layer.sensitivity, layer.measured_on, len(layer.forms),
            layer.forms[pick].label, 8 * float(layer.data[pick]) / layer.elements,
            layer.sensitivity * float(layer.distortions[pick]),
        ))
    report.timings_s = timings
    return SearchResult(search.config_for(picks), search.tables, report)


def _within_size(search: _Search, fixed: int, elements: int) -> Allocation:
    """The least-error allocation within a bits or size budget, rebuilt with the budget lowered by any excess."""
    budget = search.config.budget
    if budget.target_bits is not None:
        allowed = (budget.target_bits + BITS_TOLERANCE) * elements / 8
    else:
        assert budget.target_size is not None
        allowed = budget.target_size - fixed
    point = search.frontier.within(allowed)
    if point is None:
        search.report.notes.append("no allocation fits the budget: the smallest one is built")
        point = 0
    for attempt in range(MAX_REPAIRS + 1):
        built = search.build(search.point(point), "start" if attempt == 0 else "repair")
        excess = (built.bits - budget.target_bits - BITS_TOLERANCE) * elements / 8 \
            if budget.target_bits is not None else built.file_bytes - (budget.target_size or 0)
        search.report.tried[built.row].passed = excess <= 0
        if excess <= 0 or point == 0:
            break
        allowed -= excess
        lower = search.frontier.within(allowed)
        point = 0 if lower is None else min(lower, point - 1)
    best = search.point(point)
    if search.reference is None or excess > 0:
        return best
    # The predicted order of nearby allocations is not always the measured one: build a few cheaper ones within
    # the tolerance (bits) or 1% (size) below, and the single-form ones there, and keep the one the held-out
    # samples find closest to the original.
    window = 2 * BITS_TOLERANCE * elements / 8 if budget.target_bits is not None else 0.01 * allowed
    others = [search.point(index) for step in range(1, ALTERNATIVES + 1)
              if (index := search.frontier.within(allowed - step * window / ALTERNATIVES)) is not None]
    others += [picks for picks in search.single_forms() if allowed - window <= search.size(picks) <= allowed]
    for other in others:
        if other in search.built:
            continue
        built = search.build(other, "alternative")
        search.report.tried[built.row].passed = True
        if built.loss is not None and built.loss < (search.built[best].loss or 0.0):
            best = other
    return best


def _within_loss(search: _Search) -> Allocation:
    """The cheapest allocation whose built model meets the loss or score bound (see the module docstring)."""
    budget = search.config.budget
    if budget.max_drop is not None:
        assert search.score is not None
        source = search.original.source
        baseline = float(search.score(source) if isinstance(source, str) else _scored_bytes(search.score, source))
        search.report.notes.append(f"score of the original model: {baseline:.6g}")

        def holds(built: _Built) -> bool:
            assert built.score is not None
            return baseline - built.score <= (budget.max_drop or 0.0)

        points = _curve_points(search.frontier)
        position = len(points) // 2
    else:
        bound = budget.max_loss or 0.0

        def holds(built: _Built) -> bool:
            return built.loss is not None and built.loss <= bound

        squared = bound**2 if budget.loss == "relative" else 2 * bound
        start = search.frontier.first_below(squared)
        points = sorted(set(_curve_points(search.frontier)) | {start})
        position = points.index(start)

    def test(picks: Allocation, step: str) -> bool:
        built = search.build(picks, step)
        search.report.tried[built.row].passed = holds(built)
        return holds(built)

    low, high = -1, len(points)
    step = "start"
    while high - low > 1:
        if test(search.point(points[position]), step):
            high = position
        else:
            low = position
        position, step = (low + high) // 2, "bisect"
    if high < len(points):
        # Between the last curve point that failed and the first that held, the frontier's own points.
        failed, held = (points[low] if low >= 0 else -1), points[high]
        for _ in range(REFINE_STEPS):
            if held - failed <= 1:
                break
            middle = (failed + held) // 2
            failed, held = (failed, middle) if test(search.point(middle), "refine") else (middle, held)
    _bisect_single_forms(search, test)
    _descend(search, test)
    passed = _passed(search)
    if not passed:
        search.report.notes.append("no allocation met the bound: the one with the least error is kept")
        return search.point(len(search.frontier) - 1)
    return min(passed, key=lambda picks: (search.built[picks].file_bytes, search.built[picks].row))


def _passed(search: _Search) -> list[Allocation]:
    """The allocations built so far that met the budget."""
    return [picks for picks, built in search.built.items() if search.report.tried[built.row].passed]


def _cheapest_passed(search: _Search) -> Allocation | None:
    return min(_passed(search), key=search.size, default=None)


def _bisect_single_forms(search: _Search, test: Callable[[Allocation, str], bool]) -> None:
    """Bisect the single-form allocations, cheapest first, for the cheapest that holds; one no cheaper than a
    model that already held counts as holding without being built."""
    allocations = search.single_forms()
    low, high = -1, len(allocations)
    while high - low > 1:
        middle = (low + high) // 2
        cheapest = _cheapest_passed(search)
        known = cheapest is not None and search.size(allocations[middle]) >= search.size(cheapest)
        low, high = (low, middle) if known or test(allocations[middle], "single form") else (middle, high)


def _descend(search: _Search, test: Callable[[Allocation, str], bool]) -> None:
    """From the cheapest allocation that held towards the largest cheaper one that failed (else the cheapest
    frontier point), lower one weight at a time to the cheaper candidate whose added output error per byte saved
    is least; bisect that path with :data:`REFINE_STEPS` builds."""
    start = _cheapest_passed(search)
    if start is None:
        return
    passed = set(_passed(search))
    failed = [search.size(picks) for picks in search.built
              if picks not in passed and search.size(picks) < search.size(start)]
    floor = max(failed, default=int(search.frontier.bytes[0]))
    path = [start]
    while search.size(path[-1]) > floor:
        current = path[-1]
        best: tuple[float, int, int] | None = None
        for index, (layer, sizes) in enumerate(zip(search.layers, search.sizes, strict=True)):
            pick = current[index]
            cheaper = np.flatnonzero(sizes < sizes[pick])
            if cheaper.size == 0:
                continue
            added = layer.sensitivity * (layer.distortions[cheaper] - layer.distortions[pick])
            ratios = added / (sizes[pick] - sizes[cheaper])
            lowest = int(np.argmin(ratios))
            if best is None or ratios[lowest] < best[0]:
                best = (float(ratios[lowest]), index, int(cheaper[lowest]))
        if best is None:
            break
        _, index, other = best
        path.append((*current[:index], other, *current[index + 1:]))
    held, failed_at = 0, len(path)  # the path's end lies at the failed size: counted as failing
    for _ in range(REFINE_STEPS):
        if failed_at - held <= 1:
            break
        middle = (held + failed_at) // 2
        held, failed_at = (middle, failed_at) if test(path[middle], "descent") else (held, middle)


def _scored_bytes(score: Score, model: bytes) -> float:
    with tempfile.TemporaryDirectory(prefix="onnx-share-budget-") as folder:
        path = Path(folder) / "original.onnx"
        path.write_bytes(model)
        return float(score(str(path)))


def _curve_points(frontier: Frontier) -> list[int]:
    """Up to :data:`CURVE_POINTS` frontier points evenly spaced in bytes (the first and the last among them)."""
    if len(frontier) <= CURVE_POINTS:
        return list(range(len(frontier)))
    targets = np.linspace(frontier.bytes[0], frontier.bytes[-1], CURVE_POINTS)
    return sorted({int(np.searchsorted(frontier.bytes, value, side="right")) - 1 for value in targets})


def _goal(budget: BudgetConfig) -> str:
    if budget.target_bits is not None:
        return f"at most {budget.target_bits:g} stored bits per compressed weight"
    if budget.target_size is not None:
        return f"a file of at most {budget.target_size} bytes"
    if budget.max_drop is not None:
        return f"a score at most {budget.max_drop:g} below the original's"
    what = "relative output error" if budget.loss == "relative" else "1 - output cosine"
    return f"{what} at most {budget.max_loss:g} on the held-out samples"
