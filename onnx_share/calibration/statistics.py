"""Statistics of the activations the compressed weights multiply, from the original model run in onnxruntime.

Every site's activation is made an output of the original model, which runs one sample at a time; each run's rows
are added to running sums and let go, so memory holds one run's activations plus the sums: per site the row count,
Σx and Σx² per feature, and XᵀX per group while the Gram matrices of all sites fit in :data:`GRAM_BUDGET_BYTES`
(sites are served smallest first; the rest keep the diagonal only); per ``Gather`` table, how often each row was
read. Calibration and held-out samples are summed apart: the first tune the weights, the second measure them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from onnx_share.calibration.sites import Site, View, weight_sites
from onnx_share.errors import OnnxShareError, first_line
from onnx_share.ir.weights import WeightTensor
from onnx_share.numerics.gptq import GptqPlan, activation_error, output_energy

log = logging.getLogger("onnx_share")

# The Gram matrices (XᵀX per site and group, float64, calibration and held-out) held at once.
GRAM_BUDGET_BYTES = 1 << 30
# Added to every row count of a Gather table when weighting its rows: a row the samples never read still counts.
UNSEEN_ROW_COUNT = 1.0


@dataclass
class Moments:
    """Running sums over the rows [G, n, d] of one site: the row count n, Σx and Σx² [G, d], XᵀX [G, d, d]
    (when kept)."""

    count: int
    total: np.ndarray
    square: np.ndarray
    gram: np.ndarray | None

    @classmethod
    def empty(cls, groups: int, features: int, gram: bool) -> Moments:
        zeros = np.zeros((groups, features))
        return cls(0, zeros, zeros.copy(), np.zeros((groups, features, features)) if gram else None)

    def add(self, rows: np.ndarray) -> None:
        """Add one run's rows [G, n, d] (float32: each run's products in float32, the sums in float64)."""
        self.count += rows.shape[1]
        self.total += rows.sum(axis=1, dtype=np.float64)
        if self.gram is not None:
            gram = np.matmul(rows.transpose(0, 2, 1), rows)
            self.gram += gram
            self.square += np.diagonal(gram, axis1=1, axis2=2)
        else:
            self.square += np.square(rows, dtype=np.float64).sum(axis=1)


@dataclass
class SiteStatistics:
    """One site's sums over the calibration samples and over the held-out samples (``counts`` for ``Gather``)."""

    site: Site
    calibration: Moments | np.ndarray
    held_out: Moments | np.ndarray


@dataclass
class WeightStatistics:
    """What the samples say about one weight, per the view of its sites (:class:`~.sites.View`).

    ``hessian``/``diagonal``: XᵀX [G, d, d] (None when not kept) and its diagonal [G, d] over the calibration
    rows, divided by their count; ``mean``: E[x] [G, d] (one site only, for bias correction); ``held_hessian``/
    ``held_diagonal``: the same over the held-out rows; ``row_counts``: how often each row of a ``Gather`` table
    was read by the calibration samples, ``held_row_counts`` by the held-out ones (then the others are None).
    """

    view: View
    hessian: np.ndarray | None = None
    diagonal: np.ndarray | None = None
    mean: np.ndarray | None = None
    held_hessian: np.ndarray | None = None
    held_diagonal: np.ndarray | None = None
    row_counts: np.ndarray | None = None
    held_row_counts: np.ndarray | None = None
    _plan: GptqPlan | None = field(default=None, repr=False, compare=False)
    _energy: tuple[np.ndarray, float] | None = field(default=None, repr=False, compare=False)

    def gptq_plan(self) -> GptqPlan:
        """GPTQ's factorisation of ``hessian``, computed on first use and kept for every form rounded on it."""
        assert self.hessian is not None
        if self._plan is None:
            self._plan = GptqPlan.of(self.hessian)
        return self._plan

    def activation_error(self, original: np.ndarray, decoded: np.ndarray) -> float | None:
        """‖X(W − Ŵ)‖ / ‖XW‖ over the held-out samples (a table: the rows they read, as often as they read them);
        from the diagonal of XᵀX where the Gram matrix was not kept; None without held-out rows."""
        if self.row_counts is not None:
            if self.held_row_counts is None or not self.held_row_counts.any():
                return None
            read = np.transpose(original, self.view.axes), np.transpose(decoded, self.view.axes)
            rows = self.held_row_counts[:, None]
            error = float(np.sum(rows * (read[0].astype(np.float64) - read[1]) ** 2))
            reference = float(np.sum(rows * read[0].astype(np.float64) ** 2))
            return float(np.sqrt(error / reference)) if reference > 0 else 0.0
        if self.held_diagonal is None:
            return None
        view = self.view.to_view(original.astype(np.float64))
        if self._energy is None or self._energy[0] is not original:  # every form of a weight: one ‖XW‖²
            self._energy = original, output_energy(view, self.held_hessian, self.held_diagonal)
        return activation_error(view, self.view.to_view(decoded.astype(np.float64)), self.held_hessian,
                                self.held_diagonal, self._energy[1])

    def bias_shift(self, original: np.ndarray, decoded: np.ndarray) -> np.ndarray | None:
        """E[x]·(W − Ŵ) per output channel (what the rewrite moves the mean output by), when one site's mean is
        known; None otherwise."""
        if self.mean is None:
            return None
        difference = self.view.to_view(original.astype(np.float64) - decoded.astype(np.float64))
        return np.einsum("gd,gdo->go", self.mean, difference).reshape(-1)

    def element_weights(self, shape: tuple[int, ...]) -> np.ndarray:
        """An importance per element of W (stored layout): its input feature's E[x²] (a table row: how often it
        is read, plus :data:`UNSEEN_ROW_COUNT`), for weighted k-means and grid fitting."""
        if self.row_counts is not None:
            read = np.broadcast_to((self.row_counts + UNSEEN_ROW_COUNT)[:, None],
                                   tuple(shape[a] for a in self.view.axes))
            return np.transpose(read, np.argsort(self.view.axes))
        assert self.diagonal is not None
        view_shape = self.view.to_view(np.empty(shape, np.bool_)).shape
        diagonal = self.diagonal + 1e-12 * max(float(self.diagonal.max()), 1e-30)  # no feature weighs exactly 0
        weights = np.broadcast_to(diagonal[:, :, None], view_shape)
        return self.view.from_view(np.ascontiguousarray(weights), shape)


@dataclass
class Statistics:
    """Every site's statistics by :attr:`~.sites.Site.key`, and what the run cost."""

    sites: dict[Hashable, SiteStatistics] = field(default_factory=dict)
    gram_bytes: int = 0
    seconds: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)

    def for_weight(self, weight: WeightTensor, main: ir.Graph) -> WeightStatistics | str:
        """The statistics of ``weight``'s sites combined (their Gram matrices summed), or why there are none."""
        sites = weight_sites(weight, main)
        if isinstance(sites, str):
            return sites
        found = [self.sites.get(site.key) for site in sites]
        if any(entry is None for entry in found):
            return "an activation it multiplies was not measured (the graph changed since calibration)"
        entries = [entry for entry in found if entry is not None]
        view = sites[0].view
        if view.kind == "gather":
            counts = sum(np.asarray(entry.calibration, np.float64) for entry in entries)
            held = sum(np.asarray(entry.held_out, np.float64) for entry in entries)
            return WeightStatistics(view, row_counts=np.asarray(counts), held_row_counts=np.asarray(held))
        calibration = _summed([entry.calibration for entry in entries], view.groups)
        held_out = _summed([entry.held_out for entry in entries], view.groups)
        rows = max(calibration.count, 1)
        held_rows = max(held_out.count, 1)
        return WeightStatistics(
            view,
            hessian=None if calibration.gram is None else calibration.gram / rows,
            diagonal=calibration.square / rows,
            mean=calibration.total / rows if len(entries) == 1 else None,
            held_hessian=None if held_out.gram is None else held_out.gram / held_rows,
            held_diagonal=held_out.square / held_rows if held_out.count else None,
        )


def collect_statistics(
    model: onnx.ModelProto,
    folder: Path | None,
    weights: Sequence[WeightTensor],
    main: ir.Graph,
    calibration: Sequence[Mapping[str, np.ndarray]],
    held_out: Sequence[Mapping[str, np.ndarray]],
    *,
    seed: int = 0,
) -> Statistics:
    """Run ``model`` (protobuf, external data in ``folder``) on every sample and sum the activations of the sites
    of ``weights`` (found in ``main``, the loaded model's main graph)."""
    start = time.perf_counter()
    statistics = Statistics()
    sites: dict[Hashable, Site] = {}
    for weight in weights:
        found = weight_sites(weight, main)
        if isinstance(found, str):
            statistics.skipped[weight.name] = found
            continue
        for site in found:
            sites.setdefault(site.key, site)
    if not sites:
        return statistics
    keep_gram = _grams_within_budget(list(sites.values()))
    statistics.gram_bytes = sum(_gram_bytes(sites[key]) for key in keep_gram)
    for key, site in sites.items():
        if site.kind == "gather":
            statistics.sites[key] = SiteStatistics(site, np.zeros(site.features, np.int64),
                                                   np.zeros(site.features, np.int64))
        else:
            statistics.sites[key] = SiteStatistics(
                site, Moments.empty(site.groups, site.features, key in keep_gram),
                Moments.empty(site.groups, site.features, key in keep_gram))
    names = sorted({site.activation for site in sites.values()}
                   | {site.initial for site in sites.values() if site.initial is not None})
    graph_inputs = {i.name for i in model.graph.input}
    fetched = [name for name in names if name not in graph_inputs]
    session = _session(model, folder, fetched)
    rng = np.random.default_rng(seed)
    for part, samples in (("calibration", calibration), ("held_out", held_out)):
        for sample in samples:
            try:
                outputs = session.run(fetched, dict(sample)) if fetched else []
            except Exception as exc:  # onnxruntime raises several types for bad feeds
                raise OnnxShareError(f"the original model fails on a calibration sample ({first_line(exc)})") from exc
            values = dict(zip(fetched, outputs, strict=True))
            values.update((name, sample[name]) for name in names if name in graph_inputs)
            for entry in statistics.sites.values():
                activation = values[entry.site.activation]
                target = getattr(entry, part)
                if isinstance(target, np.ndarray):
                    target += entry.site.counts(activation)
                else:
                    initial = None if entry.site.initial is None else values[entry.site.initial]
                    target.add(entry.site.rows(activation, rng, initial))
    statistics.seconds = time.perf_counter() - start
    log.info("calibration: %d site(s), %d + %d samples, %.1f s", len(sites), len(calibration), len(held_out),
             statistics.seconds)
    return statistics


def _summed(moments: list[Moments | np.ndarray], groups: int) -> Moments:
    """The sum of several sites' moments, each broadcast to ``groups`` (one input serving every direction)."""
    parts = [entry for entry in moments if isinstance(entry, Moments)]

    def total(arrays: list[np.ndarray]) -> np.ndarray:
        return sum(np.broadcast_to(a, (groups, *a.shape[1:])) for a in arrays)  # type: ignore[return-value]

    grams = [part.gram for part in parts if part.gram is not None]
    return Moments(sum(part.count for part in parts), total([part.total for part in parts]),
                   total([part.square for part in parts]), total(grams) if len(grams) == len(parts) else None)


def _gram_bytes(site: Site) -> int:
    return 0 if site.kind == "gather" else 2 * 8 * site.groups * site.features**2  # calibration and held-out


def _grams_within_budget(sites: list[Site]) -> set[Hashable]:
    """The sites whose Gram matrices are kept: smallest first while the total fits :data:`GRAM_BUDGET_BYTES`."""
    kept, used = set(), 0
    for site in sorted(sites, key=_gram_bytes):
        if used + _gram_bytes(site) > GRAM_BUDGET_BYTES:
            break
        kept.add(site.key)
        used += _gram_bytes(site)
    return kept


def _session(model: onnx.ModelProto, folder: Path | None, names: list[str]):
    """An onnxruntime CPU session on ``model`` with the activations ``names`` made outputs (graph inputs and
    outputs among them are fetched as they are)."""
    from onnx_share.check.runners import onnxrt_session

    instrumented = onnx.ModelProto()
    instrumented.CopyFrom(model)
    present = {o.name for o in instrumented.graph.output}
    instrumented.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in present)
    try:
        return onnxrt_session(instrumented.SerializeToString(), folder)()
    except Exception as exc:
        raise OnnxShareError(f"onnxruntime cannot load the model to calibrate it ({first_line(exc)})") from exc
