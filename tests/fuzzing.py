"""The fuzz tier: seeded random valid models, seeded random option sets, and the checks one example must pass.

``random_model(seed)`` builds a small model that passes ``onnx.checker.check_model(full_check=True)`` and runs in
onnxruntime (CPU), at opsets 13-21 and IR versions <= 10, from one to three branches:

- dense layers on ``[batch, features]``: ``MatMul(x, W)``, ``Gemm`` with random ``transA``/``transB``/``alpha``/
  ``beta`` and an optional bias, the weight as the *left* operand (``MatMul(W, xᵀ)``, ``Gemm(W, xᵀ)``), parallel
  twin layers (the same weight, an identical copy, a near copy, a transposed copy), a weight that also feeds a data
  input (its first row ``Gather``-ed and added), and a matrix-vector head (a 1-D weight);
- ``Conv`` (1-D or 2-D, grouped or not, with or without bias) and ``ConvTranspose``;
- ``Gather`` as an embedding table (along axis 0, or axis 1 of a transposed table), followed by a 3-D ``MatMul``
  and/or a tied output head reading the table through a ``Transpose`` node or from a transposed copy of it;

with weights that are float32, or float16/bfloat16 behind a ``Cast`` to float, in initializers or ``Constant``
nodes, sometimes behind an ``Identity``, sometimes also a graph input (an overridable default) or a graph output,
with values from several families (normal, heavy-tailed, low-rank, partly zero, few distinct values, integers,
constant, all zero, tiny, large, positive) and names in several exporters' styles, some ending like the names
onnx-share gives what it creates (``<weight>_codebook``...).

``random_options(seed)`` draws a valid config dict: scheme, bits, clusters, granularity, group size, symmetric,
k-means init, pin_zero, an op-type override, a name-glob override, ``min_elements`` (16 to 4096, so small weights
get compressed too), external data, the pass list (the default pipeline, or a random order of a random subset of
the passes) and the prune (fraction or threshold, per tensor or global, sparse or not), lowrank (rank, energy or
max_error, min_saving) and share (tolerance, transposed) sections.

``check_example(seed, tmp_dir)`` runs ``onnx_share.api.optimize`` on one example and returns the problems found
(an empty list when there are none), each ``"<kind>: <detail>"`` (see :data:`KINDS` and :func:`run_example`);
:data:`SYMPTOMS` names the onnx-share bugs found so far, which ``tests/test_fuzz.py`` expects where they show.
"""

from __future__ import annotations

import hashlib
import math
import traceback
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnxruntime as ort

FLOAT = onnx.TensorProto.FLOAT
INT64 = onnx.TensorProto.INT64
WEIGHT_DTYPES = {np.dtype(np.float32): onnx.TensorProto.FLOAT, np.dtype(np.float16): onnx.TensorProto.FLOAT16,
                 np.dtype(ml_dtypes.bfloat16): onnx.TensorProto.BFLOAT16}
# What onnx-share names the tensors it creates after a weight; some generated names end like this on purpose.
TOOL_SUFFIXES = ("_codebook", "_indices", "_shape", "_quantized", "_scale", "_zero_point", "_lowrank_a",
                 "_lowrank_b")
# |reported - recomputed| <= ERROR_RTOL * recomputed + ERROR_ATOL for every reported relative weight error.
ERROR_RTOL = 1e-5
ERROR_ATOL = 1e-9
PASS_NAMES = ("fold-shapes", "fold-qdq", "share", "lowrank", "prune", "compress")

KINDS = {
    "generator": "the generated model is invalid (a mistake of this module, not of onnx-share)",
    "refused": "onnx-share refused a valid model and option set with an OnnxShareError",
    "traceback": "onnx-share raised any other exception",
    "warning": "onnx-share's code raised a Python warning (numpy: division by zero, NaN cast to an integer...)",
    "input-modified": "the input file changed",
    "checker": "the output fails onnx.checker.check_model(full_check=True)",
    "onnxruntime": "onnxruntime cannot load or run the output",
    "outputs": "the output's outputs differ in number, shape or dtype, or turn non-finite",
    "bigger": "the output file is bigger than the input file",
    "nondeterministic": "a second run from the same input and options writes different bytes",
    "report": "the report names a tensor the files do not hold, or miscounts file bytes",
    "error-mismatch": "a reported relative weight error differs from the one recomputed from the files",
    "cross-check": "the recomputed error differs from onnx_share.check.weight_diff's (only with cross_check)",
}

# The onnx-share bugs the fuzz tier has found and not seen fixed yet: a name, and what the problem line says.
SYMPTOMS = {
    "VALUE_INFO": "bigger: the rewritten file carries a value_info entry (type and shape) for every initializer and "
                  "typed value, which onnx-ir writes and the input did not have; without them it is not bigger",
    "DECODE_OVERHEAD": "bigger: compressing a tensor of a few hundred bytes saves less tensor data than its decode "
                       "nodes, names and value_info cost (the not-smaller rule counts tensor data only)",
    "INT2_TRANSPOSE": "onnxruntime: a 2-bit DequantizeLinear with a zero point (asymmetric uniform, per tensor or "
                      "channel) read by a Transpose fails onnxruntime's constant folding (Element type mismatch)",
    "ONE_BLOCK": "onnxruntime: a blocked DequantizeLinear whose scale has one element (a 1-D weight, block >= its "
                 "length) fails at run: block_size must be 0 for per-tensor quantization",
    "HALF_SCALE": "warning: float16 uniform scales of tiny weights round to 0 in uniform.py: division by zero, NaN "
                  "cast to integers, weight error 1.0",
    "CODEBOOK_AS_WEIGHT": "error-mismatch: a codebook whose packed indices are decoded by more than 4 nodes looks "
                          "like an embedding table to ir/weights.py (_is_constant_expression, depth 4), so a later "
                          "pass prunes or quantizes the codebook itself and the codebook rows' errors are wrong",
    # onnx_share.check.weight_diff (behind `onnx-share compare`), seen with cross_check only
    "DIFF_BFLOAT16": "cross-check: weight_diff fails on a bfloat16 weight (onnxruntime returns no bfloat16 arrays)",
    "DIFF_SPARSE": "cross-check: weight_diff fails on a pruned weight saved as a sparse Constant (onnxruntime "
                   "returns a SparseTensor, or refuses one of more than 2 dimensions)",
}


def symptom_of(problem: str) -> str | None:
    """The :data:`SYMPTOMS` name a problem line shows, or None for a problem not seen before."""
    kind = kind_of(problem)
    if kind == "bigger":
        return "VALUE_INFO" if "all from" in problem else "DECODE_OVERHEAD"
    if kind in ("onnxruntime", "cross-check") and "Element type mismatch" in problem:
        return "INT2_TRANSPOSE"
    if kind in ("onnxruntime", "cross-check") and "block_size must be 0 for per-tensor" in problem:
        return "ONE_BLOCK"
    if kind == "warning" and "at uniform.py:" in problem:
        return "HALF_SCALE"
    if problem.startswith("error-mismatch: codebook row ") or (
            kind == "report" and "_codebook not found in the files" in problem):
        return "CODEBOOK_AS_WEIGHT"
    if kind == "cross-check" and "Tensor Type. bfloat16" in problem:
        return "DIFF_BFLOAT16"
    if kind == "cross-check" and ("SparseTensor" in problem or "dims higher than 2" in problem):
        return "DIFF_SPARSE"
    return None


# --------------------------------------------------------------------------------------------- the generator


@dataclass
class _Weight:
    name: str  # the constant's value name
    array: np.ndarray  # as stored
    read: str  # what consumers read: the constant, or its Cast/Identity
    initializer: bool  # an initializer, or a Constant node


@dataclass
class _Builder:
    rng: np.random.Generator
    batch: int | str
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    outputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    weights: list[_Weight] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    node_names: set[str] = field(default_factory=set)

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, options: Iterable[Any]) -> Any:
        options = list(options)
        return options[int(self.rng.integers(len(options)))]

    def fresh(self, base: str) -> str:
        name, n = base, 0
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        return name

    def node(self, op_type: str, inputs: list[str], **attributes: Any) -> str:
        """Append a node; its one output's name."""
        output = self.fresh(f"{op_type.lower()}_{len(self.nodes)}")
        name = ""
        if self.chance(0.8):
            name = self.pick([f"{op_type}_{len(self.nodes)}", f"/layer{len(self.nodes)}/{op_type}"])
            while name in self.node_names:
                name += "_"
            self.node_names.add(name)
        self.nodes.append(oh.make_node(op_type, inputs, [output], name=name, **attributes))
        return output

    def input(self, base: str, elem_type: int, shape: list[int | str]) -> str:
        name = self.fresh(base)
        self.inputs.append(oh.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, value: str, shape: list[int | str]) -> None:
        self.outputs.append(oh.make_tensor_value_info(value, FLOAT, shape))

    def activation(self, value: str) -> str:
        op = self.pick(["Relu", "Tanh", "Sigmoid", None, None])
        return value if op is None else self.node(op, [value])

    # weights

    def weight_name(self) -> str:
        i = len(self.weights)
        if self.weights and self.chance(0.08):  # a name onnx-share would give something it creates
            return self.fresh(self.pick(self.weights).name + self.pick(TOOL_SUFFIXES))
        style = self.pick([f"w{i}", f"layers.{i}.weight", f"model/dense_{i}/kernel:0", f"onnx::MatMul_{i}",
                           f"encoder.block.{i}.proj.weight", f"W_{i}"])
        return self.fresh(style)

    def weight(self, shape: tuple[int, ...], *, twin: bool = False) -> str:
        """A weight of ``shape`` for a consumer to read: new, or shared / copied / near-copied / transposed-copied
        from one made before (``twin``: one of these whenever possible); the value name the consumer should read."""
        same = [w for w in self.weights if w.array.shape == shape]
        flipped = [w for w in self.weights if len(shape) == 2 and w.array.shape == shape[::-1]]
        draw = self.rng.random()
        how = None
        if twin and same:
            how = self.pick(["shared", "copy", "near", "near"] + ["transposed"] * bool(flipped))
        elif same and draw < 0.15:
            how = "shared"
        elif same and draw < 0.25:
            how = "copy"
        elif flipped and draw < 0.40:
            how = "transposed"
        elif same and draw < 0.45:
            how = "near"
        if how == "shared":
            return self.pick(same).read  # one tensor, several readers
        if how == "copy":
            return self.store(self.pick(same).array.copy())  # an identical copy under another name
        if how == "transposed":
            return self.store(np.ascontiguousarray(self.pick(flipped).array.T))
        if how == "near":  # a near copy (share merges it under a tolerance)
            near = self.pick(same).array
            noise = self.rng.normal(0, float(self.pick([1e-4, 1e-2])), near.shape) * np.abs(near).max()
            return self.store((near.astype(np.float64) + noise).astype(near.dtype))
        dtype = self.pick([np.float32] * 13 + [np.float16] * 5 + [ml_dtypes.bfloat16] * 2)
        return self.store(weight_values(self.rng, shape, np.dtype(dtype)))

    def store(self, array: np.ndarray) -> str:
        name = self.weight_name()
        tensor = onh.from_array(array, name)
        tensor.data_type = WEIGHT_DTYPES[array.dtype]
        initializer = self.chance(0.7)
        if initializer:
            self.initializers.append(tensor)
        else:
            self.nodes.append(oh.make_node("Constant", [], [name], value=tensor))
        read = name
        if array.dtype != np.float32:
            read = self.node("Cast", [read], to=FLOAT)
        if self.chance(0.1):
            read = self.node("Identity", [read])
        self.weights.append(_Weight(name, array, read, initializer))
        return read

    def small_bias(self, shape: tuple[int, ...]) -> str:
        name = self.fresh(self.pick(["bias", "b", "fc.bias"]))
        self.initializers.append(onh.from_array(self.rng.normal(0, 0.1, shape).astype(np.float32), name))
        return name


def weight_values(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Random weight values of one of several families, in ``dtype``."""
    size = int(np.prod(shape))
    family = rng.choice(["normal"] * 8 + ["heavy", "lowrank", "lowrank", "zeros_part", "few", "integers",
                                            "constant", "all_zero", "tiny", "large", "positive"])
    if family == "heavy":
        values = rng.standard_t(2, size) * 0.05
    elif family == "lowrank" and len(shape) == 2:
        rank = int(rng.integers(1, max(2, min(shape) // 3)))
        values = rng.normal(size=(shape[0], rank)) @ rng.normal(size=(rank, shape[1])) / math.sqrt(rank)
        values = values + rng.normal(0, float(rng.choice([0.0, 1e-3, 1e-2])), values.shape)
    elif family == "zeros_part":
        values = rng.normal(0, 0.1, size) * (rng.random(size) > rng.uniform(0.1, 0.95))
    elif family == "few":
        values = rng.choice(rng.normal(0, 0.5, int(rng.integers(1, 6))), size)
    elif family == "integers":
        values = rng.integers(-3, 4, size).astype(np.float64)
    elif family == "constant":
        values = np.full(size, rng.normal())
    elif family == "all_zero":
        values = np.zeros(size)
    elif family == "tiny":
        values = rng.normal(0, 1e-6, size)
    elif family == "large":
        values = rng.normal(0, 300.0, size)
    elif family == "positive":
        values = np.abs(rng.normal(0, 0.2, size)) + 0.01
    else:
        values = rng.normal(0, float(rng.choice([0.02, 0.1, 0.5])), size)
    return np.asarray(values, dtype=np.float64).reshape(shape).astype(dtype)


def _dense_branch(b: _Builder) -> None:
    features = b.pick([8, 16, 24, 32, 48])
    h = b.input("x", FLOAT, [b.batch, features])
    for _ in range(int(b.rng.integers(1, 4))):
        out = b.pick([8, 16, 24, 32, 48, 64])
        kind = b.pick(["matmul", "matmul", "gemm", "gemm", "left_matmul", "left_gemm"])
        if kind == "matmul":
            w = b.weight((features, out))
            y = b.node("MatMul", [h, w])
            if b.chance(0.3):  # a parallel twin layer: the same weight, a copy, a near copy
                y = b.node("Add", [y, b.node("MatMul", [h, b.weight((features, out), twin=True)])])
            h, w_in_out = y, w  # w_in_out: the weight as [features, out], if at hand
        elif kind == "gemm":
            trans_a, trans_b = int(b.chance(0.3)), int(b.chance(0.5))
            a = b.node("Transpose", [h], perm=[1, 0]) if trans_a else h
            w = b.weight((out, features) if trans_b else (features, out))
            inputs = [a, w]
            if b.chance(0.6):
                inputs.append(b.small_bias(b.pick([(out,), (1, out), ()])))
            attributes = {"transA": trans_a, "transB": trans_b}
            for key in ("alpha", "beta"):
                if b.chance(0.5):
                    attributes[key] = float(b.pick([0.5, 2.0, -1.0, round(float(b.rng.uniform(-2, 2)), 3)]))
            h = b.node("Gemm", inputs, **attributes)
            w_in_out = b.node("Transpose", [w], perm=[1, 0]) if trans_b and b.chance(0.1) else None if trans_b else w
        else:  # the weight is the left operand: y = (W @ hᵀ)ᵀ
            h_t = b.node("Transpose", [h], perm=[1, 0])
            if kind == "left_matmul":
                y = b.node("MatMul", [b.weight((out, features)), h_t])
            else:
                trans_a, trans_b = int(b.chance(0.5)), int(b.chance(0.5))
                w = b.weight((features, out) if trans_a else (out, features))
                inputs = [w, h if trans_b else h_t]
                if b.chance(0.4):
                    inputs.append(b.small_bias((out, 1)))
                y = b.node("Gemm", inputs, transA=trans_a, transB=trans_b)
            h, w_in_out = b.node("Transpose", [y], perm=[1, 0]), None
        if w_in_out is not None and b.chance(0.1):  # the weight also feeds a data input: its first row, added
            row = b.fresh("row_index")
            b.initializers.append(onh.from_array(np.array([0], np.int64), row))
            h = b.node("Add", [h, b.node("Gather", [w_in_out, row])])
        h = b.activation(h)
        features = out
    if b.chance(0.15):  # a matrix-vector head: a 1-D weight
        b.output(b.node("MatMul", [h, b.weight((features,))]), [b.batch])
    b.output(h, [b.batch, features])


def _conv_branch(b: _Builder) -> None:
    dims = 1 if b.chance(0.2) else 2
    channels, size = b.pick([1, 2, 3, 4, 8]), b.pick([5, 6, 7, 8])
    h = b.input("image", FLOAT, [b.batch, channels, *[size] * dims])
    for _ in range(int(b.rng.integers(1, 3))):
        out, k = b.pick([4, 8, 16, 32]), b.pick([1, 3, 3])
        if b.chance(0.15):  # ConvTranspose: weight [C_in, C_out, k...], output grows by k - 1
            inputs = [h, b.weight((channels, out, *[k] * dims))]
            if b.chance(0.5):
                inputs.append(b.small_bias((out,)))
            h = b.node("ConvTranspose", inputs)
            size += k - 1
        else:
            group = channels if channels > 1 and out % channels == 0 and b.chance(0.3) else 1
            pad = b.pick([0, k // 2])
            inputs = [h, b.weight((out, channels // group, *[k] * dims))]
            if b.chance(0.6):
                inputs.append(b.small_bias((out,)))
            h = b.node("Conv", inputs, group=group, pads=[pad] * 2 * dims, kernel_shape=[k] * dims)
            size = size + 2 * pad - k + 1
        channels = out
        h = b.activation(h)
    b.output(h, [b.batch, channels, *[size] * dims])


def _embedding_branch(b: _Builder) -> None:
    vocab, dim, length = b.pick([16, 32, 64, 100]), b.pick([8, 16, 32]), b.pick([1, 3, 5])
    ids = b.input("ids", INT64, [b.batch, length])
    if b.chance(0.2):  # a [dim, vocab] table read along axis 1
        table = b.weight((dim, vocab))
        gathered = b.node("Gather", [table, ids], axis=1)  # [dim, batch, length]
        h = b.node("Transpose", [gathered], perm=[1, 2, 0])
        head_table = b.node("Identity", [table])
        tied_shape = (dim, vocab)
    else:
        table = b.weight((vocab, dim))
        h = b.node("Gather", [table, ids])
        head_table = None
        tied_shape = None
    heads = []
    if b.chance(0.6):
        out = b.pick([8, 16, 24])
        heads.append((b.node("MatMul", [h, b.weight((dim, out))]), out))
    if b.chance(0.5) or not heads:
        if tied_shape is not None:
            head = head_table
        elif b.chance(0.5):
            head = b.node("Transpose", [table], perm=[1, 0])  # tied: the head reads the table transposed
        else:
            head = b.weight((dim, vocab))  # often a transposed copy of the table
        heads.append((b.node("MatMul", [h, head]), vocab))
    for value, width in heads:
        b.output(value, [b.batch, length, width])


def random_model(seed: int) -> onnx.ModelProto:
    """A small valid model (full check, onnxruntime CPU) drawn from ``seed``."""
    rng = np.random.default_rng([seed, 0])
    opset = int(rng.integers(13, 22))
    batch: int | str = ["N", "batch", 2, 1][int(rng.integers(4))] if rng.random() < 0.5 else 2
    builder = _Builder(rng, batch)
    branches = [_dense_branch, _conv_branch, _embedding_branch]
    count = int(rng.integers(1, 4))
    for index in rng.choice(len(branches), count, replace=rng.random() < 0.3):
        branches[int(index)](builder)
    stored = [w for w in builder.weights if w.initializer]
    if stored and rng.random() < 0.06:  # an initializer that is also a graph input (a default that can be fed)
        weight = stored[int(rng.integers(len(stored)))]
        builder.inputs.append(oh.make_tensor_value_info(weight.name, WEIGHT_DTYPES[weight.array.dtype],
                                                        list(weight.array.shape)))
    if builder.weights and rng.random() < 0.06:  # a weight (or its Cast/Identity) that is also a graph output
        weight = builder.weights[int(rng.integers(len(builder.weights)))]
        if weight.read not in {o.name for o in builder.outputs}:
            builder.output(weight.read, list(weight.array.shape))
    if rng.random() < 0.5:
        order = list(rng.permutation(len(builder.initializers)))
        builder.initializers[:] = [builder.initializers[i] for i in order]
    graph = oh.make_graph(builder.nodes, f"fuzz_{seed}", builder.inputs, builder.outputs,
                          initializer=builder.initializers)
    ir_version = oh.find_min_ir_version_for([oh.make_opsetid("", opset)])
    ir_version = int(rng.integers(ir_version, 11))
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=ir_version,
                          producer_name="onnx-share-fuzz")
    onnx.checker.check_model(model, full_check=True)
    return model


def random_feeds(model: onnx.ModelProto, seed: int) -> dict[str, np.ndarray]:
    """Inputs for ``model``: batch 2 for symbolic sizes, token ids inside the table they index."""
    rng = np.random.default_rng([seed, 2])
    feeds = {}
    defaults = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in defaults:
            continue
        shape = [d.dim_value if d.HasField("dim_value") else 2 for d in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == INT64:
            feeds[value.name] = rng.integers(0, _table_rows(model, value.name), shape).astype(np.int64)
        else:
            feeds[value.name] = rng.normal(size=shape).astype(np.float32)
    return feeds


def _table_rows(model: onnx.ModelProto, ids: str) -> int:
    """The size of the axis the ``Gather`` reading ``ids`` indexes (its table traced through Cast/Identity)."""
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    shapes.update({n.output[0]: list(n.attribute[0].t.dims) for n in graph.node if n.op_type == "Constant"})
    sizes = []
    for node in graph.node:
        if node.op_type == "Gather" and node.input[1] == ids:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            table = node.input[0]
            while table not in shapes:
                table = producers[table].input[0]
            sizes.append(shapes[table][axis])
    return min(sizes)


# ----------------------------------------------------------------------------------------------- the options


def random_options(seed: int) -> dict[str, Any]:
    """A valid ``optimize`` config dict drawn from ``seed``."""
    rng = np.random.default_rng([seed, 1])

    def chance(p: float) -> bool:
        return bool(rng.random() < p)

    def pick(options: list[Any]) -> Any:
        return options[int(rng.integers(len(options)))]

    def spec(scheme: str) -> dict[str, Any]:
        found: dict[str, Any] = {"scheme": scheme}
        found["bits"] = pick([2, 4, 8]) if scheme == "uniform" else int(rng.integers(1, 9))
        if chance(0.8):
            found["granularity"] = pick(["auto", "tensor", "channel", "group"])
        if chance(0.6):
            found["group_size"] = pick([1, 2, 3, 4, 8, 16, 24, 32, 64, 128])
        if scheme == "uniform" and chance(0.5):
            found["symmetric"] = chance(0.5)
        if scheme == "codebook":
            if chance(0.1):
                found["clusters"] = int(rng.integers(2, 257))
            if chance(0.15):
                found["init"] = pick(["linear", "density", "random", "kmeans++"])
            if chance(0.2):
                found["pin_zero"] = chance(0.5)
        return found

    options: dict[str, Any] = {
        "default": spec(pick(["codebook", "codebook", "uniform"])),
        "min_elements": pick([16, 64, 128, 256, 512, 1024, 4096]),
        "seed": int(rng.integers(0, 1000)),
    }
    if chance(0.2):
        options["op_types"] = {pick(["Conv", "MatMul", "Gemm", "Gather", "ConvTranspose"]):
                               spec(pick(["codebook", "uniform"]))}
    if chance(0.1):
        options["tensors"] = {pick(["*weight*", "w1*", "*kernel*", "*_1"]): pick([{"skip": True},
                                                                              spec("codebook")])}
    if chance(0.5):
        names = [p for p in PASS_NAMES if chance(0.6)]
        if "compress" not in names and chance(0.7):
            names.append("compress")
        options["passes"] = [names[i] for i in rng.permutation(len(names))] or ["compress"]
    if chance(0.35):
        if chance(0.7):
            options["prune"] = {"fraction": pick([0.0, 0.1, 0.3, 0.5, 0.75, 0.9, 1.0, round(rng.uniform(), 3)])}
        else:
            options["prune"] = {"threshold": pick([0.0, 0.01, 0.05, 0.2, 1.0])}
        if chance(0.3):
            options["prune"]["scope"] = "global" if "fraction" in options["prune"] else "tensor"
        if chance(0.3):
            options["prune"]["sparse"] = chance(0.5)
    if chance(0.35):
        how = pick(["rank", "energy", "max_error"])
        options["lowrank"] = {"rank": int(rng.integers(1, 17)), "energy": pick([0.5, 0.9, 0.99, 1.0]),
                              "max_error": pick([0.0, 0.01, 0.1, 0.5])}
        options["lowrank"] = {how: options["lowrank"][how]}
        if chance(0.4):
            options["lowrank"]["min_saving"] = pick([0.0, 0.1, 0.2, 0.5])
    if chance(0.05):
        options["external_data"] = True
    if chance(0.35):
        options["share"] = {"tolerance": pick([0.0, 1e-3, 0.05, 0.5, 0.5])} if chance(0.8) else {"transposed": False}
    return options


# ------------------------------------------------------------------------------------------------ the checks


class _Values:
    """The values of one model file by name: its constants, and any other value computed in onnxruntime."""

    def __init__(self, path: Path, feeds: Mapping[str, np.ndarray]) -> None:
        self.path = path
        self.proto = onnx.load(path)
        self.feeds = feeds
        self.constants: dict[str, np.ndarray] = {}
        for tensor in self.proto.graph.initializer:
            self.constants[tensor.name] = onh.to_array(tensor)
        for sparse in self.proto.graph.sparse_initializer:
            self.constants[sparse.values.name] = _densify(sparse)
        for node in self.proto.graph.node:
            if node.op_type == "Constant":
                for attribute in node.attribute:
                    if attribute.name == "value":
                        self.constants[node.output[0]] = onh.to_array(attribute.t)
                    elif attribute.name == "sparse_value":
                        self.constants[node.output[0]] = _densify(attribute.sparse_tensor)
        self.produced = {o for node in self.proto.graph.node for o in node.output if o}
        self.computed: dict[str, np.ndarray] = {}

    def has(self, name: str) -> bool:
        return name in self.constants or name in self.produced

    def arrays(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """float64 arrays of ``names`` (those this file holds or computes)."""
        names = [n for n in dict.fromkeys(names) if self.has(n)]
        wanted = [n for n in names if n not in self.constants and n not in self.computed]
        if wanted:
            self.computed.update(_computed(self.proto, wanted, self.feeds))
        found = {}
        for name in names:
            array = self.constants[name] if name in self.constants else self.computed[name]
            found[name] = np.asarray(array).astype(np.float64)
        return found


def _densify(sparse: onnx.SparseTensorProto) -> np.ndarray:
    values = onh.to_array(sparse.values)
    indices = onh.to_array(sparse.indices).astype(np.int64)
    shape = tuple(sparse.dims)
    dense = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype=values.dtype)
    if indices.ndim == 2:
        indices = np.ravel_multi_index(tuple(indices.T), shape)
    dense[indices] = values
    return dense.reshape(shape)


def _computed(proto: onnx.ModelProto, names: list[str], feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``proto`` in onnxruntime with no graph optimization, each of ``names`` cast to float32 (exact for
    every float type; onnxruntime's Python API cannot return bfloat16) and made a graph output."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    outputs = []
    for i, name in enumerate(names):
        widened = f"__fuzz_float_{i}"
        copy.graph.node.append(oh.make_node("Cast", [name], [widened], to=FLOAT))
        copy.graph.output.append(oh.make_empty_tensor_value_info(widened))
        outputs.append(widened)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    session = ort.InferenceSession(copy.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip(names, session.run(outputs, dict(feeds)), strict=True))


def relative_error(original: np.ndarray, approximation: np.ndarray) -> float:
    """‖W − Ŵ‖ / ‖W‖ in float64 (0 for an all-zero W)."""
    w, a = np.asarray(original, np.float64), np.asarray(approximation, np.float64)
    reference = float(np.sum(w * w))
    return math.sqrt(float(np.sum((w - a) ** 2)) / reference) if reference > 0 else 0.0


def run_model(path: Path, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run a model file in onnxruntime CPU with default graph optimizations."""
    options = ort.SessionOptions()
    options.log_severity_level = 4
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, dict(feeds))


def _one_line(exc: BaseException) -> str:
    """The exception on one line; long onnxruntime messages keep their start and their end (where the cause is)."""
    text = " ".join(str(exc).split()) or ""
    if len(text) > 300:
        text = f"{text[:100]} … {text[-180:]}"
    return f"{type(exc).__name__}: {text}"


def _where(exc: BaseException) -> str:
    """The innermost onnx_share frame of a traceback (and its causes), as file:line."""
    frames = []
    current: BaseException | None = exc
    while current is not None:
        frames += [f for f in traceback.extract_tb(current.__traceback__) if "onnx_share" in f.filename]
        current = current.__cause__
    if not frames:
        return ""
    frame = frames[-1]
    return f" (at {Path(frame.filename).name}:{frame.lineno})"


@dataclass
class Outcome:
    """What one example found, and how much it checked."""

    seed: int
    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # reported errors recomputed, by row kind
    prefix_runs: int = 0  # extra runs stopped after a pass, for intermediate tensors
    bytes_before: int = 0
    bytes_after: int = 0
    digest: str | None = None  # sha256 of the output file


@dataclass
class _Run:
    """One example's files and report."""

    source: Path
    output: Path
    options: dict[str, Any]
    feeds: dict[str, np.ndarray]
    report: Any
    tmp: Path
    outcome: Outcome
    states: dict[int, _Values] = field(default_factory=dict)

    def state(self, index: int) -> _Values:
        """The model after the pipeline's pass ``index`` (-1: the input; the last: the output); in between, the
        output of a run whose pass list stops after that pass."""
        if index not in self.states:
            last = len(self.report.passes) - 1
            if index == -1:
                self.states[index] = _Values(self.source, self.feeds)
            elif index >= last:
                self.states[index] = _Values(self.output, self.feeds)
            else:
                from onnx_share.api import optimize

                names = [section.name for section in self.report.passes[: index + 1]]
                path = self.tmp / f"{self.source.stem}_after_{index}.onnx"
                with warnings.catch_warnings():  # the first run reported them
                    warnings.simplefilter("ignore")
                    optimize(self.source, {**self.options, "passes": names}).save(path)
                self.outcome.prefix_runs += 1
                self.states[index] = _Values(path, self.feeds)
        return self.states[index]


def check_example(seed: int, tmp_dir: str | Path, *, cross_check: bool = False) -> list[str]:
    """Everything wrong with example ``seed`` (model and options), as ``"<kind>: <detail>"`` lines (see
    :data:`KINDS`); empty when nothing is. Files go to ``tmp_dir``."""
    return run_example(seed, tmp_dir, cross_check=cross_check).problems


def run_example(seed: int, tmp_dir: str | Path, *, cross_check: bool = False) -> Outcome:
    """:func:`check_example` with counts: optimize the example, save it, and check

    - no exception (``refused`` for onnx-share's own one-line errors, ``traceback`` for any other);
    - the input file is unchanged; the output passes the full checker, loads and runs in onnxruntime (default
      optimizations) with outputs of the same number, shapes and dtypes, finite where the original's are;
    - the output file is no bigger than the input file, and the report's file byte counts are the files';
    - a second run writes the same bytes;
    - every reported relative weight error matches one recomputed from the files (:func:`_error_problems`);
      with ``cross_check``, also matches onnx_share.check.weight_diff's.
    """
    from onnx_share.api import optimize
    from onnx_share.errors import OnnxShareError

    outcome = Outcome(seed)
    tmp = Path(tmp_dir)
    try:
        model = random_model(seed)
        options = random_options(seed)
    except Exception as exc:
        outcome.problems.append(f"generator: {_one_line(exc)}")
        return outcome
    source = tmp / f"fuzz_{seed}.onnx"
    # the second run writes under the same file name (an external data file's name is written into the model)
    output, again = (_fresh_dir(tmp / f"fuzz_{seed}_{run}") / f"fuzz_{seed}_out.onnx" for run in ("first", "again"))
    onnx.save(model, source)
    feeds = random_feeds(model, seed)
    try:
        expected = run_model(source, feeds)
    except Exception as exc:
        outcome.problems.append(f"generator: the input fails in onnxruntime: {_one_line(exc)}")
        return outcome
    before = source.read_bytes()
    problems = outcome.problems
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = optimize(source, options)
            result.save(output)
        except OnnxShareError as exc:
            problems.append(f"refused: {_one_line(exc)}")
        except Exception as exc:
            problems.append(f"traceback: {_one_line(exc)}{_where(exc)}")
    places = {(Path(w.filename).name, w.lineno): w for w in caught if "onnx_share" in w.filename}
    for (name, line), w in places.items():
        problems.append(f"warning: {w.category.__name__} at {name}:{line}: {w.message}")
    if any(kind_of(p) in ("refused", "traceback") for p in problems):
        return outcome
    written = _saved_bytes(output)
    outcome.bytes_before, outcome.bytes_after = len(before), len(written)
    outcome.digest = hashlib.sha256(written).hexdigest()
    if source.read_bytes() != before:
        problems.append("input-modified: the input file changed")
    try:
        onnx.checker.check_model(str(output), full_check=True)
    except Exception as exc:
        problems.append(f"checker: {_one_line(exc)}")
    try:
        got = run_model(output, feeds)
    except Exception as exc:
        problems.append(f"onnxruntime: {_one_line(exc)}")
    else:
        problems += _output_problems(expected, got)
    # External data asked for an inline input: each external tensor's location/offset/length entries are due.
    allowance = _external_references(output) if options.get("external_data") else 0
    if len(written) > len(before) + allowance:
        problems.append(f"bigger: {len(written)} bytes written from {len(before)} (+{len(written) - len(before)}); "
                        f"{_growth(output, len(before))}; {_modified_passes(result.report)}")
    if (result.report.file_bytes_before, result.report.file_bytes_after) != (len(before), len(written)):
        problems.append(f"report: file bytes {result.report.file_bytes_before} -> {result.report.file_bytes_after}, "
                        f"the files hold {len(before)} -> {len(written)}")
    try:
        with warnings.catch_warnings():  # the first run reported them
            warnings.simplefilter("ignore")
            optimize(source, options).save(again)
        if _saved_bytes(again) != written:
            problems.append("nondeterministic: a second run in the same process wrote different bytes")
    except Exception as exc:
        problems.append(f"nondeterministic: the second run failed: {_one_line(exc)}")
    run = _Run(source, output, options, feeds, result.report, tmp, outcome)
    try:
        problems += _error_problems(run)
    except Exception as exc:
        if not any(kind_of(p) == "onnxruntime" for p in problems):  # else the same failure, already counted
            problems.append(f"report: recomputing the errors failed: {_one_line(exc)}{_where(exc)}")
    if cross_check:
        try:
            problems += _cross_check(run)
        except Exception as exc:
            problems.append(f"cross-check: onnx_share.check.weight_diff failed: {_one_line(exc)}{_where(exc)}")
    return outcome


def output_digest(seed: int, tmp_dir: str | Path) -> str | None:
    """sha256 of the file one run writes for example ``seed`` (None if it fails): compared across processes,
    whose string hashing differs, by ``tools/fuzz_optimize.py``."""
    from onnx_share.api import optimize

    source = Path(tmp_dir) / f"fuzz_{seed}.onnx"
    path = _fresh_dir(Path(tmp_dir) / f"fuzz_{seed}_digest") / f"fuzz_{seed}_out.onnx"
    try:
        onnx.save(random_model(seed), source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimize(source, random_options(seed)).save(path)
    except Exception:
        return None
    return hashlib.sha256(_saved_bytes(path)).hexdigest()


def _fresh_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _external_references(path: Path) -> int:
    """Bytes of the external-data references (location, offset, length) the model file at ``path`` holds."""
    proto = onnx.load(path, load_external_data=False)
    return sum(sum(entry.ByteSize() + 2 for entry in tensor.external_data) + 2
               for tensor in proto.graph.initializer if tensor.data_location == onnx.TensorProto.EXTERNAL)


def _saved_bytes(path: Path) -> bytes:
    """A saved model's bytes, followed by its external data file's when it has one."""
    data = path.with_name(path.name + ".data")
    return path.read_bytes() + (data.read_bytes() if data.is_file() else b"")


def _growth(output: Path, size_in: int) -> str:
    """How much of an output's size is ``value_info`` (onnx-ir writes one per initializer and per typed value;
    the generated inputs have none)."""
    proto = onnx.load(output, load_external_data=False)
    infos = len(proto.graph.value_info)
    of_initializers = len({v.name for v in proto.graph.value_info} & {t.name for t in proto.graph.initializer})
    del proto.graph.value_info[:]
    stripped = proto.ByteSize() + len(_saved_bytes(output)) - output.stat().st_size
    if stripped <= size_in:
        return (f"all from {infos} value_info entries ({of_initializers} repeat initializers' type and shape): "
                f"{stripped} bytes without them")
    return f"still {stripped} bytes without its {infos} value_info entries"


def _modified_passes(report: Any) -> str:
    modified = [f"{s.name} ({s.count} change(s))" for s in report.passes if s.modified]
    return "modified by " + ", ".join(modified) if modified else "no pass modified the model"


def _output_problems(expected: list[np.ndarray], got: list[np.ndarray]) -> list[str]:
    if len(got) != len(expected):
        return [f"outputs: {len(got)} outputs, the input model has {len(expected)}"]
    problems = []
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        if want.shape != have.shape or want.dtype != have.dtype:
            problems.append(f"outputs: output {i} is {have.dtype}{list(have.shape)}, was {want.dtype}"
                            f"{list(want.shape)}")
        elif np.isfinite(want).all() and not np.isfinite(have).all():
            problems.append(f"outputs: output {i} turned non-finite")
    return problems


def _close(reported: float | None, recomputed: float) -> bool:
    return reported is not None and abs(reported - recomputed) <= ERROR_RTOL * recomputed + ERROR_ATOL


@dataclass
class _Recompute:
    """One reported error and where to read the two sides of it: ``state`` numbers as in :meth:`_Run.state`."""

    what: str
    kind: str  # codebook, uniform, prune, split, merge-near
    reported: float | None
    before_state: int
    before_name: str
    after_state: int
    after_names: list[str]  # one name, or a split's two factors (whose product is the approximation)


def _error_problems(run: _Run) -> list[str]:
    """Every reported relative error against one recomputed from the files.

    - compression rows (``report.tensors`` with a scheme): ‖W − Ŵ‖/‖W‖ with W the weight as loaded (from the
      input file, even when a pass pruned it first; for a low-rank factor, the factor as the split created it) and
      Ŵ the value of that name in the output, computed by onnxruntime;
    - prune and split rows (``report.passes[*].changes``): the error of the rewrite itself, W just before the pass
      against W just after it (the pruned tensor; for a split, the product of its two factors in the order that
      gives W's shape);
    - near-merge rows: ‖A − B‖/‖B‖ for each merged B and the kept A, as they were before the share pass.

    A tensor as it was between two passes (one a later pass rewrites, merges or compresses again) and a low-rank
    factor (which exists in neither file) are read from an extra run whose pass list stops after that pass: the
    error is still recomputed here, but that intermediate tensor is onnx-share's own output (the pipeline is
    deterministic, which the second run checks). Not recomputed: exact and transposed merges (their rows say 0.0
    and change no values; the kept tensor's own rows cover it).
    """
    report = run.report
    last = len(report.passes) - 1
    touched: dict[str, list[int]] = {}  # name -> the steps that changed its values, merged it away or compressed it
    created: dict[str, int] = {}  # low-rank factor -> the step that created it
    for index, section in enumerate(report.passes):
        for row in section.changes:
            if row.change in ("prune", "split"):
                touched.setdefault(row.name, []).append(index)
            if row.change == "split":
                for factor in row.details.get("factors", []):
                    created[factor] = index
            if (row.change or "").startswith("merge"):  # merged names now read the kept tensor (maybe transposed)
                for merged in row.details.get("merged", []):
                    touched.setdefault(merged, []).append(index)
    compress_step = next((i for i, section in enumerate(report.passes) if section.name == "compress"), last)
    for row in report.tensors:
        if row.scheme is not None:
            touched.setdefault(row.name, []).append(compress_step)

    def before(name: str, index: int) -> int:
        """The state holding ``name`` as it was just before step ``index``."""
        return max((i for i in touched.get(name, []) if i < index), default=created.get(name, -1))

    def after(name: str, index: int) -> int:
        """The state holding ``name`` as step ``index`` left it."""
        return index if any(i > index for i in touched.get(name, [])) else last

    jobs = [_Recompute(f"{row.scheme} row {row.name!r}", row.scheme, row.relative_error, created.get(row.name, -1),
                       row.name, last, [row.name]) for row in report.tensors if row.scheme is not None]
    for index, section in enumerate(report.passes):
        for row in section.changes:
            what = f"{section.name} {row.change} row {row.name!r}"
            if row.change == "prune":
                jobs.append(_Recompute(what, "prune", row.relative_error, before(row.name, index), row.name,
                                       after(row.name, index), [row.name]))
            elif row.change == "split":
                factors = list(row.details.get("factors", []))
                jobs.append(_Recompute(what, "split", row.relative_error, before(row.name, index), row.name,
                                       min(after(factor, index) for factor in factors), factors))
            elif row.change == "merge-near":
                for merged, error in row.details.get("errors", {}).items():
                    jobs.append(_Recompute(f"{what} merging {merged!r}", "merge-near", error, before(merged, index),
                                           merged, before(row.name, index), [row.name]))
    problems = []
    for job in jobs:
        source, target = run.state(job.before_state), run.state(job.after_state)
        missing = [n for n in [job.before_name] if not source.has(n)] + [n for n in job.after_names
                                                                           if not target.has(n)]
        if missing:
            problems.append(f"report: {job.what}: {', '.join(missing)} not found in the files")
            continue
        original = source.arrays([job.before_name])[job.before_name]
        values = [target.arrays(job.after_names)[n] for n in job.after_names]
        if len(values) == 2:
            a, b = values
            fits = a.shape[-1] == b.shape[0] and (a.shape[0], b.shape[-1]) == original.shape
            approximation = a @ b if fits else b @ a
        else:
            approximation = values[0]
        if approximation.shape != original.shape:
            problems.append(f"report: {job.what}: shape {list(approximation.shape)} after, {list(original.shape)} "
                            "before")
            continue
        recomputed = relative_error(original, approximation)
        run.outcome.checked[job.kind] = run.outcome.checked.get(job.kind, 0) + 1
        if not _close(job.reported, recomputed):
            via = "" if {job.before_state, job.after_state} <= {-1, last} else " (read via a pass-prefix run)"
            problems.append(f"error-mismatch: {job.what}: reported {job.reported!r}, recomputed {recomputed!r}{via}")
    return problems


def _cross_check(run: _Run) -> list[str]:
    """The recomputed errors of rows named in both files against ``onnx_share.check.weight_diff``'s."""
    from onnx_share.check.weight_diff import WeightDiff
    from onnx_share.io.proto import ProtoModel

    theirs = {r.name: r.relative_error for r in WeightDiff(ProtoModel.read(run.source),
                                                           ProtoModel.read(run.output)).rows()}
    source, target = run.state(-1), run.state(len(run.report.passes) - 1)
    problems = []
    for row in run.report.tensors:
        if row.scheme is None or not source.has(row.name) or row.name not in theirs:
            continue
        mine = relative_error(source.arrays([row.name])[row.name], target.arrays([row.name])[row.name])
        if theirs[row.name] is None or not _close(theirs[row.name], mine):
            problems.append(f"cross-check: {row.name!r}: weight_diff says {theirs[row.name]!r}, recomputed {mine!r}")
    return problems


def kind_of(problem: str) -> str:
    """The kind a problem line starts with."""
    return problem.split(":", 1)[0]
