"""What the weight passes share: their base class, the result every pass returns, and its report rows."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import onnx_ir as ir
from tqdm import tqdm

from onnx_share.config import OptimizeConfig
from onnx_share.errors import first_line
from onnx_share.ir.weights import WeightTensor
from onnx_share.report.data import TensorReport

T = TypeVar("T")
R = TypeVar("R")
# Set in a weight value's ``meta`` by a pass that changes its values in place (prune): the tensor as loaded, so
# a later pass reports its error against the original weight, not against the intermediate one.
ORIGINAL_META_KEY = "onnx_share.original"


class WeightPass(ir.passes.InPlacePass):
    """A pass configured by the whole :class:`OptimizeConfig` (selection globs, specs, its own section), with
    an optional progress bar over the tensors it visits. ``name`` is the pipeline name it is registered under."""

    name = "weights"

    def __init__(self, config: OptimizeConfig, *, progress: bool = False) -> None:
        super().__init__()
        self.config = config
        self.progress = progress

    @classmethod
    def from_config(cls, config: OptimizeConfig, *, progress: bool = False) -> WeightPass:
        """The pass as the pipeline builds it."""
        return cls(config, progress=progress)

    def progress_bar(self, items: Iterable[T], unit: str = "tensor", total: int | None = None) -> Iterable[T]:
        """``items``, with a progress bar on stderr when asked for."""
        return tqdm(items, desc=self.name, unit=unit, total=total, disable=not self.progress)


# Items a worker pool takes at a time, per worker: bounds what waits in memory for its turn.
CHUNK_PER_WORKER = 4


def in_order(function: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[tuple[T, R]]:
    """``(item, function(item))`` for every item, in order, computed on ``workers`` threads a chunk of
    ``CHUNK_PER_WORKER * workers`` items at a time; the consumer's work on one chunk runs while no worker does (so
    ``function`` may read what the consumer changes). One worker: plain sequential calls, no thread."""
    if workers <= 1:
        yield from ((item, function(item)) for item in items)
        return
    chunk = CHUNK_PER_WORKER * workers
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            yield from zip(part, list(pool.map(function, part)), strict=True)


@contextlib.contextmanager
def working_on(tensor: str) -> Iterator[None]:
    """Name the tensor in any unexpected error raised while a pass works on it."""
    try:
        yield
    except TensorError:
        raise
    except Exception as exc:
        raise TensorError(tensor, exc) from exc


class TensorError(RuntimeError):
    """An unexpected failure while a pass rewrote one tensor; the pipeline adds the pass name."""

    def __init__(self, tensor: str, cause: BaseException) -> None:
        super().__init__(f"tensor {tensor!r}: {type(cause).__name__}: {first_line(cause)}")
        self.tensor = tensor


def original_values(weight: WeightTensor) -> np.ndarray:
    """The weight's values as loaded, before any pass of this run changed them."""
    original = weight.value.meta.get(ORIGINAL_META_KEY)
    return original.numpy() if original is not None else weight.numpy()


def stored_bytes(nodes: Sequence[ir.Node], initializers: Sequence[ir.Value]) -> int:
    """Bytes a decode subgraph adds to the file: its initializers' data, their names and dims, and its nodes."""
    data = sum(int(v.const_value.nbytes) for v in initializers if v.const_value is not None)
    headers = sum(len(v.name or "") + 2 * len(v.shape or ()) + 8 for v in initializers)
    return data + headers + sum(ir.serde.serialize_node(n).ByteSize() for n in nodes)


def not_smaller(weight: WeightTensor, stored_bytes: int) -> TensorReport | None:
    """A skip row when the compressed form (data, names, decode nodes, and the ``value_info`` its decoded value
    gets) would take at least the bytes the weight is stored in now."""
    current = int(weight.tensor.nbytes) + len(weight.name) + 2 * len(weight.shape) + 8
    stored_bytes += len(weight.name) + 2 * len(weight.shape) + 16  # the decoded value's type and shape
    if stored_bytes < current:
        return None
    return tensor_row(
        weight,
        skipped=f"compressed form ({stored_bytes} bytes) would not be smaller than the stored tensor "
        f"({current} bytes); left as is",
    )


def tensor_row(weight: WeightTensor, **fields: object) -> TensorReport:
    """A report row for ``weight`` (name, consumers, shape, dtype filled in) with the pass's own ``fields``."""
    fields.setdefault("bytes_before", 0)
    fields.setdefault("bytes_after", 0)
    return TensorReport(
        name=weight.name,
        consumers=list(weight.op_types),
        shape=list(weight.shape),
        dtype=weight.dtype.name,
        **fields,
    )


def change_row(
    name: str, change: str, bytes_before: int, bytes_after: int, relative_error: float = 0.0, **details: object
) -> TensorReport:
    """A report row for one rewrite by a pass other than compression (a merge, a split, a removed node...)."""
    return TensorReport(
        name=name,
        consumers=[],
        shape=[],
        dtype="",
        bytes_before=int(bytes_before),
        bytes_after=int(bytes_after),
        relative_error=float(relative_error),
        change=change,
        details=dict(details),
    )


@dataclass
class PassOutcome(ir.passes.PassResult):
    """A pass result that also says what the pass did.

    ``tensors``: per-tensor rows of the compression passes (codebook / uniform).
    ``changes``: one row per rewrite of the other passes (a merge, a split, a pruned tensor...).
    """

    tensors: list[TensorReport] = field(default_factory=list)
    changes: list[TensorReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
