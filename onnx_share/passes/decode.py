"""Decode subgraphs: what replaces a compressed weight in the graph, built from its encoding.

* :func:`codebook_graph`: a :class:`~onnx_share.numerics.codebook.Codebook` → ``Gather`` / ``GatherElements``.
* :func:`dequantize_graph`: a :class:`~onnx_share.numerics.uniform.UniformGrid` → ``DequantizeLinear``.
* :func:`arithmetic_graph`: the same grid → ``Cast``, ``Sub``, ``Mul`` (any opset; nothing for a runtime to fuse).
* :func:`gather_block_graph`: a grid blocked along the rows of an embedding table → onnxruntime's
  ``com.microsoft::GatherBlockQuantized`` nodes in place of the ``Gather`` nodes that read the table.
* :func:`index_graph`: integer codes (codebook indices, grid integers), stored natively or bit-packed → int32, by
  standard operators onnxruntime constant-folds at session creation.

Native storage: the codes in their ONNX type, then ``Cast`` to int32. Packed: the bytes of
:func:`~onnx_share.numerics.packing.pack_bits`, decoded by ``Cast(→ int32) → MatMul`` (each code's word of its two
bytes) ``→ Div → Mod → Reshape`` (and ``Slice`` when the last group is padded), all opset-11 operators.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx_ir as ir

from onnx_share.ir.surgery import NameScope, constant, node
from onnx_share.numerics.codebook import Codebook
from onnx_share.numerics.packing import IndexStorage, group_layout, pack_bits
from onnx_share.numerics.uniform import UniformGrid


def index_graph(
    name: str, indices: np.ndarray, shape: tuple[int, ...], storage: IndexStorage, names: NameScope
) -> tuple[list[ir.Node], list[ir.Value]]:
    """Nodes whose last output is ``indices`` (uint8) as int32 of ``shape``, and the initializers they read.

    Native storage: the indices in their ONNX type with ``shape``, then ``Cast``. Packed: the [B, G] UINT8 bytes of
    :func:`pack_bits`, then ``Cast`` to int32; where an index may span two bytes (B > 1) ``MatMul`` by the [e, B]
    matrix of :func:`group_layout` makes each slot's word of its two byte rows (B = 1: the one row, broadcast);
    ``Div`` by [e, 1] powers of two and ``Mod`` 2**bits give the [e, G] indices; ``Reshape`` to ``shape`` (through
    1-D and ``Slice`` when the last group is padded).
    """
    if not storage.packed:
        index_type = ir.DataType[storage.type_name].numpy()
        stored = constant(names, f"{name}_indices", indices.reshape(shape).astype(index_type))
        return [node("Cast", [stored], f"{name}/decode/Cast", names, to=ir.DataType.INT32)], [stored]
    slot_words, shift = group_layout(storage.bits)
    stored = constant(names, f"{name}_indices", pack_bits(indices, storage.bits))
    decode = Subgraph(name, names, [stored])
    words = decode.step("Cast", stored, to=ir.DataType.INT32)
    if stored.shape[0] > 1:
        words = decode.step("MatMul", decode.constant("index_words", slot_words), words)
    scale = decode.constant("index_slot_scale", (1 << shift[:, None]).astype(np.int32))
    below = decode.step("Div", words, scale)
    decoded = decode.step("Mod", below, decode.constant("index_modulus", np.int32(1 << storage.bits)))
    if stored.shape[1] * len(shift) != indices.size:
        flat = decode.step("Reshape", decoded, decode.constant("index_flat", np.array([-1], dtype=np.int64)))
        start = decode.constant("index_start", np.array([0], dtype=np.int64))
        stop = decode.constant("index_stop", np.array([indices.size], dtype=np.int64))
        decoded = decode.step("Slice", flat, start, stop)
    decode.step("Reshape", decoded, decode.constant("index_shape", np.array(shape, dtype=np.int64)))
    return decode.nodes, decode.initializers


class Subgraph:
    """Nodes and initializers of one weight's decode, appended in order, named after the weight."""

    def __init__(self, weight_name: str, names: NameScope, initializers: list[ir.Value]) -> None:
        self.weight_name = weight_name
        self.names = names
        self.nodes: list[ir.Node] = []
        self.initializers = initializers

    def constant(self, base: str, array: np.ndarray | np.generic) -> ir.Value:
        """A new initializer named ``{weight}_{base}``."""
        self.initializers.append(constant(self.names, f"{self.weight_name}_{base}", np.asarray(array)))
        return self.initializers[-1]

    def step(self, op_type: str, *inputs: ir.Value, **attributes: object) -> ir.Value:
        """Append an ``op_type`` node named ``{weight}/decode/{op_type}``; its output."""
        self.nodes.append(node(op_type, inputs, f"{self.weight_name}/decode/{op_type}", self.names, **attributes))
        return self.nodes[-1].outputs[0]


def codebook_graph(
    name: str, shape: tuple[int, ...], dtype: np.dtype, codebook: Codebook, storage: IndexStorage, names: NameScope
) -> tuple[list[ir.Node], list[ir.Value]]:
    """The nodes and initializers that compute the weight ``name`` of ``shape`` from ``codebook``: the table in
    ``dtype`` and the index decode (:func:`index_graph`); per tensor ``Gather``; per channel or group
    ``GatherElements`` over [G, M], then ``Reshape`` (and ``Transpose``) back to the weight's layout."""
    if codebook.axis is None:
        table = constant(names, f"{name}_codebook", codebook.centroids[0].astype(dtype))
        index_nodes, index_constants = index_graph(name, codebook.indices, shape, storage, names)
        gather = node("Gather", [table, index_nodes[-1].outputs[0]], f"{name}/decode/Gather", names, axis=0)
        return [*index_nodes, gather], [table, *index_constants]
    axis = codebook.axis
    moved = (shape[axis], *shape[:axis], *shape[axis + 1 :])
    table = constant(names, f"{name}_codebook", codebook.centroids.astype(dtype))
    index_nodes, index_constants = index_graph(name, codebook.indices, codebook.indices.shape, storage, names)
    target_shape = constant(names, f"{name}_shape", np.array(moved, dtype=np.int64))
    gather = node(
        "GatherElements", [table, index_nodes[-1].outputs[0]], f"{name}/decode/GatherElements", names, axis=1
    )
    reshape = node("Reshape", [gather.outputs[0], target_shape], f"{name}/decode/Reshape", names)
    nodes = [*index_nodes, gather, reshape]
    if axis != 0:
        perm = [*range(1, axis + 1), 0, *range(axis + 1, len(shape))]
        nodes.append(node("Transpose", [reshape.outputs[0]], f"{name}/decode/Transpose", names, perm=perm))
    return nodes, [table, *index_constants, target_shape]


def dequantize_graph(
    name: str, dtype: ir.DataType, grid: UniformGrid, quant_type: type, names: NameScope
) -> tuple[list[ir.Node], list[ir.Value]]:
    """``DequantizeLinear(q, scale[, zero_point])`` with ``q`` (and the zero point) in ``quant_type``; for a
    bfloat16 weight the scales are float32 and a ``Cast`` follows (onnxruntime has no bfloat16 kernel)."""
    quantized = constant(names, f"{name}_quantized", grid.quantized.astype(quant_type))
    scale = constant(names, f"{name}_scale", grid.scale)
    inputs = [quantized, scale]
    if grid.zero_point is not None:
        inputs.append(constant(names, f"{name}_zero_point", grid.zero_point.astype(quant_type)))
    attributes: dict[str, int] = {}
    if grid.axis is not None:
        attributes["axis"] = grid.axis
    if grid.block_size is not None:
        attributes["block_size"] = grid.block_size
    dequantize = node("DequantizeLinear", inputs, f"{name}/decode/DequantizeLinear", names, **attributes)
    if dtype != ir.DataType.BFLOAT16:
        return [dequantize], inputs
    cast = node("Cast", [dequantize.outputs[0]], f"{name}/decode/Cast", names, to=dtype)
    return [dequantize, cast], inputs


def arithmetic_graph(
    name: str, dtype: ir.DataType, grid: UniformGrid, bits: int, storage: IndexStorage, names: NameScope
) -> tuple[list[ir.Node], list[ir.Value]]:
    """The grid decoded by standard operators, for opsets whose ``DequantizeLinear`` lacks the integer type or
    the layout: the codes ``q - min`` as unsigned ``bits``-bit integers in ``storage`` (:func:`index_graph`),
    ``Cast`` to float32, ``Sub`` the zero point, ``Mul`` the scale (both float32, shaped to broadcast; blocks as
    an extra axis, then ``Reshape`` and, when the last block is padded, ``Slice``), ``Cast`` to the weight's
    type unless float32. Computes what ``DequantizeLinear`` computes, exactly; onnxruntime fuses none of it."""
    shape, axis, block = grid.quantized.shape, grid.axis, grid.block_size
    offset = 1 << (bits - 1) if grid.zero_point is None else 0  # symmetric grids are stored unsigned
    zero = np.float32(offset) if grid.zero_point is None else grid.zero_point.astype(np.float32)
    scale = grid.scale.astype(np.float32)
    codes = (grid.quantized + offset).astype(np.uint8)
    decode_shape = shape
    if axis is not None and block is None:  # per channel: [C] → broadcastable
        view = [1] * len(shape)
        view[axis] = -1
        zero, scale = (np.reshape(p, view) if np.ndim(p) else p for p in (zero, scale))
    elif axis is not None:  # blocks: axis K becomes (blocks, block) with K padded to whole blocks
        blocks = scale.shape[axis]
        padded = [(0, 0)] * len(shape)
        padded[axis] = (0, blocks * block - shape[axis])
        codes = np.pad(codes, padded, constant_values=offset)
        decode_shape = (*shape[:axis], blocks, block, *shape[axis + 1 :])
        zero, scale = (np.expand_dims(p, axis + 1) if np.ndim(p) else p for p in (zero, scale))
    index_nodes, initializers = index_graph(name, codes, decode_shape, storage, names)
    decode = Subgraph(name, names, initializers)
    decode.nodes.extend(index_nodes)
    value = decode.step("Cast", index_nodes[-1].outputs[0], to=ir.DataType.FLOAT)
    value = decode.step("Sub", value, decode.constant("zero_point", zero))
    value = decode.step("Mul", value, decode.constant("scale", scale))
    if decode_shape != shape:
        whole = (*shape[:axis], decode_shape[axis] * block, *shape[axis + 1 :])
        value = decode.step("Reshape", value, decode.constant("unblocked_shape", np.array(whole, dtype=np.int64)))
        if whole[axis] != shape[axis]:
            value = decode.step(
                "Slice", value, decode.constant("unpad_start", np.array([0], dtype=np.int64)),
                decode.constant("unpad_stop", np.array([shape[axis]], dtype=np.int64)),
                decode.constant("unpad_axis", np.array([axis], dtype=np.int64)),
            )
    if dtype != ir.DataType.FLOAT:
        decode.step("Cast", value, to=dtype)
    return decode.nodes, decode.initializers


CONTRIB_DOMAIN = "com.microsoft"


def gather_block_graph(
    name: str, grid: UniformGrid, bits: int, ids: list[ir.Value], names: NameScope
) -> tuple[list[ir.Node], list[ir.Value]]:
    """One ``GatherBlockQuantized`` per ``Gather`` of the table ``name`` [V, D] (``ids``: each Gather's indices),
    over the grid blocked along D: ``gather_axis`` 0, ``quantize_axis`` 1, ``block_size`` B (a power of two from
    16; onnxruntime 1.32 also takes B > D, one block per row), scales [V, ceil(D / B)] in the output's type.

    4 bits: INT4 (symmetric; zero point 0 by default) or UINT4 with UINT4 zero points, both [V, D]. 8 bits: UINT8
    with ``bits`` 8, whose default zero point is 128 (symmetric grids are stored shifted by it) or UINT8 zero
    points [V, ceil(D / B)]. onnxruntime computes ``(q - zero_point) * scale`` in float32, as ``DequantizeLinear``.
    """
    if bits == 4:
        stored = grid.quantized.astype(ml_dtypes.int4 if grid.zero_point is None else ml_dtypes.uint4)
    else:
        stored = (grid.quantized + (128 if grid.zero_point is None else 0)).astype(np.uint8)
    inputs = [constant(names, f"{name}_quantized", stored), constant(names, f"{name}_scale", grid.scale)]
    if grid.zero_point is not None:
        inputs.append(constant(names, f"{name}_zero_point", grid.zero_point.astype(stored.dtype)))
    nodes = []
    for index in ids:
        inputs_of_node = [inputs[0], index, *inputs[1:]]
        nodes.append(node(
            "GatherBlockQuantized", inputs_of_node, f"{name}/decode/GatherBlockQuantized", names,
            domain=CONTRIB_DOMAIN, gather_axis=0, quantize_axis=1, block_size=grid.block_size, bits=bits,
        ))
    return nodes, inputs
