"""Where a weight meets its activation, and how the weight reads as input features by outputs.

A :class:`Site` is one consumer of a weight together with the activation that multiplies it: the ``A`` of
``MatMul(A, W)`` or ``Gemm``, the input of a ``Conv`` as patches, the ``X`` of a recurrent op's W and its hidden
states for R, the ids of a ``Gather``. Its :class:`View` turns the weight W (stored layout) into matrices
V [G, d, out] with ``Y = X_g V_g`` per group g, rows being input features; :meth:`Site.rows` turns one run's
activation into the matching rows [G, n, d]. Sites with equal :attr:`Site.key` read the same rows, so their
statistics are gathered once (the Q, K and V projections of one attention input).

Recurrent ops' R multiplies the previous hidden state h_{t-1}: its rows are the initial state (the op's
``initial_h``, zeros without one) and the states the op outputs but the last (the first, for a reverse direction).
A ``GRU`` applies R's hidden-gate rows to r ⊙ h_{t-1} (without ``linear_before_reset``); they are taken as h_{t-1}.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnx_share.ir.weights import WeightTensor, WeightUse

# Positions of a convolution's output sampled per run for its patch statistics (all of them when fewer).
MAX_PATCHES = 2048

Kind = str  # "matmul", "gemm", "conv", "recurrent-input", "recurrent-hidden", "gather"


@dataclass(frozen=True)
class View:
    """How a weight W becomes V [G, d, out]: W transposed by ``axes`` is what the consumer reads (M); then
    ``features_first`` 2-D M is [d, out] (else [out, d]); a grouped M (conv [out, d/...], recurrent
    [G, out, d]) is split into ``groups``."""

    axes: tuple[int, ...]
    kind: Kind
    groups: int = 1
    features_first: bool = True

    def to_view(self, weights: np.ndarray) -> np.ndarray:
        """W (stored layout) as V [G, d, out]."""
        read = np.transpose(weights, self.axes)
        if self.kind == "conv":
            outputs = read.shape[0] // self.groups
            return read.reshape(self.groups, outputs, -1).transpose(0, 2, 1)
        if self.kind.startswith("recurrent"):
            return read.transpose(0, 2, 1)
        return (read if self.features_first else read.T)[None]

    def from_view(self, view: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """V [G, d, out] back to W's stored ``shape`` (the inverse of :meth:`to_view`)."""
        read_shape = tuple(shape[a] for a in self.axes)
        if self.kind == "conv":
            read = view.transpose(0, 2, 1).reshape(read_shape)
        elif self.kind.startswith("recurrent"):
            read = view.transpose(0, 2, 1)
        else:
            read = view[0] if self.features_first else view[0].T
        return np.transpose(read, np.argsort(self.axes))


@dataclass(frozen=True)
class Site:
    """One consumer of a weight and the activation it multiplies the weight with (see the module docstring).

    ``activation``: the value name onnxruntime is asked for; ``groups``: groups of rows the activation gives
    (1 when one X serves every group, as a recurrent op's input serves both directions); ``features``: d;
    ``geometry``: what else shapes the rows (a convolution's kernel, strides, pads, dilations; a ``Gemm``'s transA;
    a recurrent op's layout and direction); ``initial``: a recurrent op's ``initial_h``, when it has one.
    """

    kind: Kind
    activation: str
    groups: int
    features: int
    geometry: tuple
    view: View
    initial: str | None = None

    @property
    def key(self) -> Hashable:
        """Sites with one key read the same rows."""
        return (self.kind, self.activation, self.groups, self.features, self.geometry, self.initial)

    def rows(self, activation: np.ndarray, rng: np.random.Generator, initial: np.ndarray | None = None
             ) -> np.ndarray:
        """One run's activation as rows [groups, n, features] in float32 (a convolution: patches at up to
        :data:`MAX_PATCHES` positions drawn from ``rng``; a recurrent op's R: the states before each step, from
        its outputs and ``initial``)."""
        data = np.asarray(activation, np.float32)
        if self.kind == "matmul":
            return data.reshape(1, -1, self.features)
        if self.kind == "gemm":
            return (data.T if self.geometry[0] else data)[None]
        if self.kind == "recurrent-input":
            return (data if self.geometry[0] == 0 else np.swapaxes(data, 0, 1)).reshape(1, -1, self.features)
        if self.kind == "recurrent-hidden":
            return _previous_states(data, initial, self.geometry)
        return _patches(data, self.groups, self.geometry, rng)

    def counts(self, ids: np.ndarray) -> np.ndarray:
        """How often each row of a ``Gather`` table is read by ``ids`` (negative ids count from the end)."""
        rows = self.features
        return np.bincount(np.asarray(ids, np.int64).ravel() % rows, minlength=rows)


def weight_sites(weight: WeightTensor, main: ir.Graph) -> list[Site] | str:
    """The sites of every consumer of ``weight``, all in the ``main`` graph, or why its activations cannot be
    used."""
    sites = []
    for use in weight.uses:
        if use.node is None or use.node.graph is not main:
            return "read inside a subgraph, whose activations onnxruntime does not output"
        site = _site(use, weight.shape)
        if isinstance(site, str):
            return site
        sites.append(site)
    views = {site.view for site in sites}
    if len(views) > 1:
        return "its consumers read it in different layouts"
    return sites


def _site(use: WeightUse, shape: tuple[int, ...]) -> Site | str:
    node = use.node
    assert node is not None
    if any(axis is None for axis in use.axes):
        return f"reached by {use.op_type} through a reshaping op"
    axes = tuple(int(a) for a in use.axes)  # type: ignore[arg-type]
    read_shape = tuple(shape[a] for a in axes)  # what the consumer reads: the weight transposed by ``axes``
    op, index = use.op_type, use.input_index
    activation = node.inputs[1] if op == "Gather" else node.inputs[0] if index != 0 else None
    if activation is None or not activation.name:
        return f"{op} reads it as input {index}: no activation statistics for that slot"
    name = activation.name
    if op == "MatMul" and index == 1 and len(read_shape) == 2:
        return Site("matmul", name, 1, read_shape[0], (), View(axes, "matmul"))
    if op == "Gemm" and index == 1:
        trans_a, trans_b = _int(node, "transA"), _int(node, "transB")
        features = read_shape[1] if trans_b else read_shape[0]
        return Site("gemm", name, 1, features, (trans_a,), View(axes, "gemm", features_first=not trans_b))
    if op == "Conv" and index == 1:
        groups = _int(node, "group", 1)
        kernel = read_shape[2:]
        geometry = _conv_geometry(node, kernel)
        features = int(np.prod(read_shape[1:]))
        return Site("conv", name, groups, features, geometry, View(axes, "conv", groups))
    if op in ("LSTM", "GRU", "RNN") and index in (1, 2):
        layout = _int(node, "layout")
        directions = read_shape[0]
        if index == 1:
            return Site("recurrent-input", name, 1, read_shape[2], (layout,), View(axes, "recurrent-input",
                                                                                       directions))
        states = node.outputs[0] if node.outputs else None
        if states is None or not states.name:
            return f"its {op} does not output its hidden states"
        initial = node.inputs[5] if len(node.inputs) > 5 else None
        direction = node.attributes.get_string("direction", "forward") or "forward"
        return Site("recurrent-hidden", states.name, directions, read_shape[2], (layout, direction),
                    View(axes, "recurrent-hidden", directions), initial.name if initial is not None else None)
    if op == "Gather" and index == 0 and len(read_shape) == 2 and _int(node, "axis") == 0:
        return Site("gather", name, 1, read_shape[0], (), View(axes, "gather"))
    return f"{op} input {index} has no activation statistics"


def _previous_states(states: np.ndarray, initial: np.ndarray | None, geometry: tuple) -> np.ndarray:
    """The hidden state each step of a recurrent op starts from, as rows [directions, seq * batch, hidden]: Y
    ([seq, dirs, batch, hidden], layout 0; [batch, seq, dirs, hidden], layout 1) shifted by one step along each
    direction's time order, ``initial`` ([dirs, batch, hidden] / [batch, dirs, hidden]; zeros when None) first."""
    layout, direction = geometry
    by_direction = np.moveaxis(states, 1, 0) if layout == 0 else states.transpose(2, 1, 0, 3)  # [dirs, seq, b, h]
    start = np.zeros_like(by_direction[:, 0]) if initial is None else np.asarray(initial, np.float32)
    if initial is not None and layout == 1:
        start = np.swapaxes(start, 0, 1)
    rows = []
    for d in range(by_direction.shape[0]):
        reverse = direction == "reverse" or (direction == "bidirectional" and d == 1)
        before = (by_direction[d, 1:], start[d][None]) if reverse else (start[d][None], by_direction[d, :-1])
        rows.append(np.concatenate(before).reshape(-1, by_direction.shape[-1]))
    return np.stack(rows)


def _conv_geometry(node: ir.Node, kernel: tuple[int, ...]) -> tuple:
    rank = len(kernel)
    strides = tuple(node.attributes.get_ints("strides", [1] * rank) or [1] * rank)
    dilations = tuple(node.attributes.get_ints("dilations", [1] * rank) or [1] * rank)
    pads = tuple(node.attributes.get_ints("pads", [0] * 2 * rank) or [0] * 2 * rank)
    auto_pad = node.attributes.get_string("auto_pad", "NOTSET") or "NOTSET"
    return (kernel, strides, dilations, pads, auto_pad)


def _int(node: ir.Node, name: str, default: int = 0) -> int:
    value = node.attributes.get_int(name, default)
    return default if value is None else int(value)


def _patches(data: np.ndarray, groups: int, geometry: tuple, rng: np.random.Generator) -> np.ndarray:
    """Convolution input [N, C, *spatial] as patches [groups, n, C/groups * prod(kernel)] at up to
    :data:`MAX_PATCHES` output positions."""
    kernel, strides, dilations, pads, auto_pad = geometry
    rank = len(kernel)
    spatial = data.shape[2:]
    begin, end = _pads(spatial, kernel, strides, dilations, pads, auto_pad)
    padded = np.pad(data, [(0, 0), (0, 0), *zip(begin, end, strict=True)])
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    windows = np.lib.stride_tricks.sliding_window_view(padded, reach, axis=tuple(range(2, 2 + rank)))
    windows = windows[(slice(None), slice(None), *(slice(None, None, s) for s in strides),
                       *(slice(None, None, d) for d in dilations))]
    batch = data.shape[0]
    positions = windows.shape[2 : 2 + rank]
    total = batch * int(np.prod(positions))
    picked = np.sort(rng.choice(total, MAX_PATCHES, replace=False)) if total > MAX_PATCHES else np.arange(total)
    where = np.unravel_index(picked, (batch, *positions))
    patches = windows[where[0], :, *where[1:]]  # [n, C, *kernel]
    return patches.reshape(len(picked), groups, -1).transpose(1, 0, 2)


def _pads(spatial: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...], dilations: tuple[int, ...],
          pads: tuple[int, ...], auto_pad: str) -> tuple[list[int], list[int]]:
    rank = len(kernel)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small = total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
        return begin, end
    if auto_pad == "VALID":
        return [0] * rank, [0] * rank
    return list(pads[:rank]), list(pads[rank:])
