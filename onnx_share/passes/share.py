"""Weight tying: identical constant tensors become one tensor read by every former reader; with a tolerance,
near-identical float tensors read the first of them; a 2-D float tensor equal to another's transpose becomes
``Transpose(other)``. A tensor in a subgraph is tied to an outer-scope one, never the other way round.

Exact duplicates within a graph are merged by onnx-ir's ``DeduplicateHashedInitializersPass`` (hashes, so large
and external tensors are never held twice; any dtype and size: identical bytes are harmless to share, shape
constants included). This pass adds what that one leaves out: duplicates across graphs (at least
``min_elements``), near and transposed duplicates (float, at least ``min_elements``), and a report row per
kept tensor. Graph inputs and outputs are never merged. (``Constant`` nodes were lifted to initializers when
the model was loaded.)

Near duplicates keep the first tensor in graph order rather than the group mean: every replaced tensor then
moves by exactly the relative error checked against the tolerance (‖A − B‖ / ‖B‖ for a replaced B), the kept
one not at all, and no new tensor is written. A mean would move every member, the kept one included, and could
take some past the tolerance.

onnxruntime 1.31 fails to load a ``DequantizeLinear`` in a subgraph whose inputs come from an outer scope (its
MatMulNBits fusion looks them up in the subgraph only), so tensors read by one stay in their subgraph.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir
import onnx_ir.passes.common as common_passes
from onnx_ir.passes.common import initializer_deduplication

from onnx_share.config import OptimizeConfig, ShareConfig
from onnx_share.io.load import release
from onnx_share.io.proto import DEFAULT_DOMAINS
from onnx_share.ir.surgery import NameScope, allow_plain_initializers, node, replace_weight
from onnx_share.ir.weights import WeightTensor
from onnx_share.passes.base import PassOutcome, change_row
from onnx_share.report.data import TensorReport

SHARE_FLOAT_TYPES = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.DOUBLE})
# Ops whose inputs onnxruntime must find in their own graph (see the module docstring).
LOCAL_INPUT_OPS = frozenset({"DequantizeLinear"})
SAMPLE_SIZE = 4096  # elements compared first, a lower bound on ‖A − B‖ that rejects most pairs cheaply


@dataclass(eq=False)
class _Entry:
    """One initializer and the graph that holds it."""

    value: ir.Value
    graph: ir.Graph
    tensor: ir.TensorProtocol
    order: int

    @property
    def name(self) -> str:
        return self.value.name or ""

    @property
    def key(self) -> tuple[ir.DataType, tuple[int, ...]]:
        return self.tensor.dtype, tuple(int(d) for d in self.tensor.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.key[1], dtype=np.int64))

    @property
    def alive(self) -> bool:
        return self.graph.initializers.get(self.name) is self.value


@dataclass
class _Group:
    """A kept tensor and what now reads it instead of its own copy."""

    kept: _Entry
    kind: str
    merged: list[str] = field(default_factory=list)
    errors: dict[str, float] = field(default_factory=dict)
    bytes_saved: int = 0

    def row(self) -> TensorReport:
        nbytes = int(self.kept.tensor.nbytes)
        details: dict[str, Any] = {"merged": self.merged}
        if self.kind == "near":
            details["errors"] = self.errors
        return change_row(
            self.kept.name, f"merge-{self.kind}", nbytes + self.bytes_saved, nbytes,
            max(self.errors.values(), default=0.0), **details,
        )


class _Scopes:
    """Which graph encloses which: a value of graph G is visible in G and every subgraph below it."""

    def __init__(self, model: ir.Model) -> None:
        self.parent: dict[ir.Graph, ir.Graph | None] = {model.graph: None}
        for graph in model.graphs():  # outer graphs come first, so each subgraph ends with its innermost owner
            for subgraph in graph.subgraphs():
                self.parent[subgraph] = graph

    def chain(self, graph: ir.Graph) -> list[ir.Graph]:
        """``graph`` and its enclosing graphs, innermost first."""
        found: list[ir.Graph] = []
        current: ir.Graph | None = graph
        while current is not None:
            found.append(current)
            current = self.parent.get(current)
        return found

    def visible(self, owner: ir.Graph, reader: ir.Graph) -> bool:
        return owner in self.chain(reader)

    def depth(self, graph: ir.Graph) -> int:
        return len(self.chain(graph)) - 1

    def common(self, graphs: list[ir.Graph]) -> ir.Graph:
        shared = self.chain(graphs[0])
        for graph in graphs[1:]:
            chain = set(self.chain(graph))
            shared = [g for g in shared if g in chain]
        return shared[0]


class ShareWeightsPass(ir.passes.InPlacePass):
    """Merge exact, transposed and (with a tolerance) near-duplicate constant tensors across all graphs."""

    def __init__(self, config: ShareConfig | None = None, *, min_elements: int = 4096) -> None:
        super().__init__()
        self.config = config if config is not None else ShareConfig()
        self.min_elements = min_elements

    @classmethod
    def from_config(cls, config: OptimizeConfig, *, progress: bool = False) -> ShareWeightsPass:
        """The pass as the pipeline builds it: the ``share`` section and the global ``min_elements``."""
        return cls(config.share, min_elements=config.min_elements)

    def call(self, model: ir.Model) -> PassOutcome:
        sharing = _Sharing(model, self.min_elements)
        sharing.merge_exact()
        if self.config.transposed:
            sharing.merge_transposed()
        if self.config.tolerance is not None:
            sharing.merge_near(self.config.tolerance)
        result = PassOutcome(model, modified=bool(sharing.groups))
        result.changes.extend(group.row() for group in sharing.groups.values())
        result.notes.extend(dict.fromkeys(sharing.notes))
        return result


class _Sharing:
    def __init__(self, model: ir.Model, min_elements: int) -> None:
        self.model = model
        self.min_elements = min_elements
        self.scopes = _Scopes(model)
        self.groups: dict[tuple[ir.Value, str], _Group] = {}
        self.notes: list[str] = []
        self._names: NameScope | None = None

    @property
    def names(self) -> NameScope:
        if self._names is None:
            self._names = NameScope(self.model)
        return self._names

    # what there is

    def entries(self, *, initializers_of_any_size: bool) -> list[_Entry]:
        """Initializers in graph order (main graph first): of any dtype and size when asked, else float and at
        least ``min_elements``."""
        found: list[_Entry] = []
        for graph in self.model.graphs():
            for value in list(graph.initializers.values()):
                tensor = value.const_value
                if tensor is None or value.is_graph_input() or value.is_graph_output():
                    continue
                entry = _Entry(value, graph, tensor, len(found))
                if initializers_of_any_size or self._is_float_weight(entry):
                    found.append(entry)
        return found

    def _is_float_weight(self, entry: _Entry) -> bool:
        return entry.tensor.dtype in SHARE_FLOAT_TYPES and entry.size >= self.min_elements

    # exact duplicates

    def merge_exact(self) -> None:
        buckets: dict[tuple[Any, ...], list[_Entry]] = {}
        for entry in self.entries(initializers_of_any_size=True):
            buckets.setdefault((*entry.key, _digest(entry.tensor)), []).append(entry)
        twins = [bucket for bucket in buckets.values() if len(bucket) > 1]
        if not twins:
            return
        before = {graph: dict(graph.initializers) for graph in self.model.graphs()}
        with _quiet_skips():
            common_passes.DeduplicateHashedInitializersPass(size_limit=2**62)(self.model)
        for bucket in twins:
            self._record_in_graph_merges(bucket, before)
            self._merge_across_graphs([e for e in bucket if e.alive and e.size >= self.min_elements])

    def _record_in_graph_merges(self, bucket: list[_Entry], before: dict[ir.Graph, dict[str, ir.Value]]) -> None:
        for entry in bucket:
            if entry.alive or before.get(entry.graph, {}).get(entry.name) is not entry.value:
                continue
            kept = next((e for e in bucket if e.graph is entry.graph and e.alive), None)
            if kept is not None:
                self._group(kept, "exact").merged.append(entry.name)
                self._group(kept, "exact").bytes_saved += int(entry.tensor.nbytes)

    def _merge_across_graphs(self, alive: list[_Entry]) -> None:
        """Tie subgraph copies to an outer copy; copies in sibling subgraphs to one hoisted above them."""
        if len({id(e.graph) for e in alive}) < 2:
            return
        movable = []
        for entry in alive:
            if entry.graph is not self.model.graph and self._reads_locally(entry.value):
                self.notes.append(f"{entry.name!r} feeds a DequantizeLinear in its subgraph; not tied to its copies "
                                  "elsewhere (onnxruntime wants that input in the same graph)")
            else:
                movable.append(entry)
        movable.sort(key=lambda e: (self.scopes.depth(e.graph), e.order))
        kept: list[_Entry] = []
        for entry in movable:
            outer = next((k for k in kept if self.scopes.visible(k.graph, entry.graph)), None)
            if outer is not None:
                self._tie(entry, outer, "exact")
            else:
                kept.append(entry)
        if len(kept) > 1:  # copies in sibling subgraphs: hoist the first to where all can see it
            home = self.scopes.common([k.graph for k in kept])
            first = min(kept, key=lambda e: e.order)
            self._hoist(first, home, [k.name for k in kept])
            for entry in kept:
                if entry is not first:
                    self._tie(entry, first, "exact")

    def _reads_locally(self, value: ir.Value) -> bool:
        return any(use.node.op_type in LOCAL_INPUT_OPS and use.node.domain in DEFAULT_DOMAINS for use in value.uses())

    def _tie(self, entry: _Entry, kept: _Entry, kind: str, error: float = 0.0) -> None:
        """Every reader of ``entry`` reads ``kept`` instead; ``entry`` is dropped."""
        name = entry.name
        entry.value.replace_all_uses_with(kept.value)
        entry.graph.initializers.pop(name)
        group = self._group(kept, kind)
        group.merged.append(name)
        group.bytes_saved += int(entry.tensor.nbytes)
        if kind == "near":
            group.errors[name] = error
        for key in [key for key in self.groups if key[0] is entry.value]:  # what had been tied to ``entry``
            earlier = self.groups.pop(key)
            group.merged.extend(earlier.merged)
            group.bytes_saved += earlier.bytes_saved
            if kind == "near":
                group.errors.update({merged: max(error, earlier.errors.get(merged, 0.0)) for merged in earlier.merged})

    def _hoist(self, entry: _Entry, home: ir.Graph, own_names: list[str]) -> None:
        """Move an initializer up to ``home``, renamed if its name is defined anywhere else."""
        entry.graph.initializers.pop(entry.name)
        elsewhere = _defined_names(self.model).get(entry.name, 0) - (own_names.count(entry.name) - 1)
        if elsewhere > 0:
            entry.value.name = self.names.fresh(entry.name)
        home.register_initializer(entry.value)
        self._ensure_plain_initializers()
        entry.graph = home

    def _ensure_plain_initializers(self) -> None:
        note = allow_plain_initializers(self.model)
        if note is not None:
            self.notes.append(note)

    def _group(self, kept: _Entry, kind: str) -> _Group:
        group = self.groups.get((kept.value, kind))
        if group is None:
            group = self.groups[kept.value, kind] = _Group(kept, kind)
        return group

    # transposed duplicates

    def merge_transposed(self) -> None:
        """Pair matrices by a cheap key (one's first row, the other's first column), then compare in full."""
        matrices = [e for e in self.entries(initializers_of_any_size=False) if len(e.key[1]) == 2]
        shapes = {e.key for e in matrices}
        earlier: dict[tuple[Any, ...], list[_Entry]] = {}  # by (dtype, shape, first row) of their transposes
        for entry in matrices:
            dtype, (rows, cols) = entry.key
            if (dtype, (cols, rows)) not in shapes or not entry.alive:
                continue
            values = entry.tensor.numpy()
            row_key = (dtype, (rows, cols), _digest_array(values[0]))
            if any(self._transpose_tie(entry, match) for match in earlier.get(row_key, []) if match.alive):
                continue
            column_key = (dtype, (cols, rows), _digest_array(np.ascontiguousarray(values[:, 0])))
            earlier.setdefault(column_key, []).append(entry)
            del values
            release(entry.tensor)

    def _transpose_tie(self, later: _Entry, earlier: _Entry) -> bool:
        """Replace one of two mutually transposed tensors by ``Transpose`` of the other (the earlier is kept
        unless only the later is visible from both graphs)."""
        if later.value is earlier.value:
            return False
        if not _same_bits(later.tensor.numpy(), earlier.tensor.numpy().T):
            return False
        if self.scopes.visible(earlier.graph, later.graph):
            kept, replaced = earlier, later
        elif self.scopes.visible(later.graph, earlier.graph):
            kept, replaced = later, earlier
        else:
            return False
        name = replaced.name
        transpose = node("Transpose", [kept.value], f"{name}/tie/Transpose", self.names, perm=[1, 0])
        replace_weight(WeightTensor(replaced.value, replaced.graph, ()), [transpose], [])
        group = self._group(kept, "transposed")
        group.merged.append(name)
        group.bytes_saved += int(replaced.tensor.nbytes)
        replaced.value = transpose.outputs[0]
        return True

    # near duplicates

    def merge_near(self, tolerance: float) -> None:
        buckets: dict[tuple[Any, ...], list[_Entry]] = {}
        for entry in self.entries(initializers_of_any_size=False):
            if entry.alive:
                buckets.setdefault(entry.key, []).append(entry)
        for bucket in buckets.values():
            if len(bucket) > 1:
                self._merge_near_bucket(bucket, tolerance)

    def _merge_near_bucket(self, bucket: list[_Entry], tolerance: float) -> None:
        norms: list[float] = []  # kept tensors sorted by norm
        kept: list[tuple[_Entry, np.ndarray]] = []
        for entry in bucket:
            values = entry.tensor.numpy().astype(np.float64).ravel()
            norm = float(np.linalg.norm(values))
            best: tuple[float, _Entry] | None = None
            low = bisect.bisect_left(norms, norm * (1 - tolerance))
            high = bisect.bisect_right(norms, norm * (1 + tolerance))
            own_sample = _sample(values)
            for candidate, sample in kept[low:high]:
                if not self.scopes.visible(candidate.graph, entry.graph) or (
                    entry.graph is not candidate.graph and self._reads_locally(entry.value)
                ):
                    continue
                if np.sum((sample - own_sample) ** 2) > (tolerance * norm) ** 2:
                    continue  # a lower bound on ‖A − B‖² already exceeds the tolerance
                error = _relative_error(entry.tensor.numpy(), candidate.tensor.numpy(), norm)
                if error <= tolerance and (best is None or error < best[0]):
                    best = (error, candidate)
            if best is not None:
                self._tie(entry, best[1], "near", best[0])
                continue
            position = bisect.bisect(norms, norm)
            norms.insert(position, norm)
            kept.insert(position, (entry, _sample(values)))


def _relative_error(replaced: np.ndarray, kept: np.ndarray, norm: float) -> float:
    """‖kept − replaced‖ / ‖replaced‖ in float64 (infinite for a zero tensor that is not matched exactly)."""
    diff = float(np.linalg.norm(kept.astype(np.float64) - replaced.astype(np.float64)))
    if norm == 0:
        return 0.0 if diff == 0 else float("inf")
    return diff / norm


def _sample(values: np.ndarray) -> np.ndarray:
    step = max(1, values.size // SAMPLE_SIZE)
    return values[::step]


def _digest(tensor: ir.TensorProtocol) -> str:
    """A hash of the tensor's bytes; an external-data tensor's pages are let go once read."""
    if tensor.dtype == ir.DataType.STRING:
        hashed = hashlib.blake2b(digest_size=32)
        for item in tensor.string_data():  # type: ignore[attr-defined]
            hashed.update(len(item).to_bytes(8, "little"))
            hashed.update(item)
        return hashed.hexdigest()
    digest = _digest_array(tensor.numpy())
    release(tensor)
    return digest


def _digest_array(array: np.ndarray) -> str:
    return hashlib.blake2b(_bits(array).data, digest_size=32).hexdigest()


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equality (no copy of a transposed view): -0.0 differs from 0.0, equal NaNs are equal."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    unsigned = np.dtype(f"u{a.dtype.itemsize}")
    return bool(np.array_equal(a.view(unsigned), b.view(unsigned)))


def _bits(array: np.ndarray) -> np.ndarray:
    """The array's bytes as a contiguous uint8 array (so -0.0 and NaN payloads count as different)."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def _defined_names(model: ir.Model) -> dict[str, int]:
    """How many times each value name is defined (graph input, initializer or node output) in the model."""
    counts: dict[str, int] = {}
    for graph in model.graphs():
        names = [v.name for v in graph.inputs] + list(graph.initializers)
        names += [v.name for graph_node in graph for v in graph_node.outputs]
        for name in names:
            if name:
                counts[name] = counts.get(name, 0) + 1
    return counts


class _SkipFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Skipped deduplication")


@contextmanager
def _quiet_skips() -> Iterator[None]:
    """onnx-ir warns once per graph-input initializer it leaves alone (every initializer of an IR 3 model)."""
    logger = logging.getLogger(initializer_deduplication.__name__)
    quiet = _SkipFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
