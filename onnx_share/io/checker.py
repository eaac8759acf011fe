"""Structural checks: what the input must pass to be read (every value defined, no cycle), and the level of
onnx's checker every output must pass to be written (the level the input passed)."""

from __future__ import annotations

import os
from collections.abc import Iterable

import onnx

# Set on a loaded ``ir.Model``'s ``meta``: the strictest level of onnx's checker the input passed ("full": with
# strict shape inference; "basic"; "none"). Outputs are checked at that level: a declared output without a
# shape, or a wrong declared shape, stays as the exporter wrote it, and onnxruntime runs such models.
CHECK_LEVEL_META_KEY = "onnx_share.check_level"
CHECK_LEVELS = ("full", "basic", "none")


def checker_problem(model: onnx.ModelProto | str | os.PathLike, *, full: bool) -> str | None:
    """The first line of what onnx's checker finds wrong with ``model`` (a proto, or a path whose external data
    lies beside it), or None when it passes; ``full`` adds strict shape inference."""
    try:
        onnx.checker.check_model(model if isinstance(model, onnx.ModelProto) else os.fspath(model), full_check=full)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        text = str(exc).strip() or type(exc).__name__
        return " ".join(text.split())[:300]
    return None


def check_level(model: onnx.ModelProto | str | os.PathLike) -> tuple[str, str | None]:
    """The strictest checker level ``model`` passes, and what the next stricter level found wrong."""
    full = checker_problem(model, full=True)
    if full is None:
        return "full", None
    basic = checker_problem(model, full=False)
    return ("basic", full) if basic is None else ("none", basic)


def structure_problem(graph: onnx.GraphProto, outer: Iterable[str] = ()) -> str | None:
    """Why ``graph`` (and its subgraphs) cannot run: a node reads a value nothing defines, or nodes form a cycle;
    None when every value is defined and the nodes can be ordered."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer} | set(outer)
    defined |= {t.values.name for t in graph.sparse_initializer}
    produced = {name: node for node in graph.node for name in node.output if name}
    for node in graph.node:
        for name in node.input:
            if name and name not in defined and name not in produced:
                return f"node {node.name or node.op_type!r} reads {name!r}, which no node, input or initializer defines"
    waiting = {id(node): {n for n in node.input if n in produced and n not in defined} for node in graph.node}
    ready = [node for node in graph.node if not waiting[id(node)]]
    done = set()
    while ready:
        node = ready.pop()
        done.add(id(node))
        for name in node.output:
            for other in graph.node:
                if name in waiting[id(other)]:
                    waiting[id(other)].discard(name)
                    if not waiting[id(other)] and id(other) not in done:
                        ready.append(other)
    stuck = [node.name or node.op_type for node in graph.node if id(node) not in done]
    if stuck:
        return f"nodes {', '.join(repr(n) for n in stuck[:5])} form a cycle (or wait on one)"
    scope = defined | set(produced)
    for node in graph.node:
        for attribute in node.attribute:
            for body in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                problem = structure_problem(body, scope)
                if problem is not None:
                    return problem
    return None
