"""Which intermediate tensors two models share, in the original's topological order, for layer-wise comparison.

A shared tensor is an output of a main-graph node of the original that depends on a graph input (an
activation, not a weight or a constant expression) and that the rewritten model's main graph also computes
from its inputs under the same name. The rewriting passes keep the names of tensors that still exist, so
marking these as outputs of both models shows where the rewritten model starts to drift.

Models over 2 GB work as long as their tensors live in external data: only the graph is read and rewritten,
and onnxruntime loads the data files from the model's folder.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

import onnx

from onnx_share.io.proto import iter_graph_protos


@dataclass(frozen=True)
class SharedTensor:
    """An intermediate tensor in both models: its position in the original's order and who produces it."""

    index: int
    name: str
    op_type: str
    node: str


def shared_tensors(original: onnx.GraphProto, rewritten: onnx.GraphProto) -> list[SharedTensor]:
    """Activations that both main graphs compute under the same name, in the original's topological order."""
    in_rewritten = {name for name, _ in activations(rewritten)}
    shared = [(name, node) for name, node in activations(original) if name in in_rewritten]
    return [SharedTensor(i, name, node.op_type, node.name) for i, (name, node) in enumerate(shared)]


def activations(graph: onnx.GraphProto) -> Iterator[tuple[str, onnx.NodeProto]]:
    """(tensor name, producing node) for every node output that depends on a graph input, in topological order."""
    constants = {t.name for t in graph.initializer}
    dynamic = {i.name for i in graph.input if i.name not in constants}
    for node in topological_order(graph):
        if any(name in dynamic for name in names_read(node)):
            for name in node.output:
                if name:
                    dynamic.add(name)
                    yield name, node


def topological_order(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The graph's nodes with every producer before its consumers, keeping file order where it is valid."""
    produced_by = {name: i for i, node in enumerate(graph.node) for name in node.output if name}
    waiting = [{produced_by[n] for n in names_read(node) if n in produced_by} - {i}
               for i, node in enumerate(graph.node)]
    consumers: dict[int, list[int]] = {}
    for i, needs in enumerate(waiting):
        for j in needs:
            consumers.setdefault(j, []).append(i)
    ready = [i for i, needs in enumerate(waiting) if not needs]
    heapq.heapify(ready)
    order, placed = [], set()
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        placed.add(i)
        for k in consumers.get(i, []):
            waiting[k].discard(i)
            if not waiting[k]:
                heapq.heappush(ready, k)
    order.extend(i for i in range(len(graph.node)) if i not in placed)  # cycles: leave them in file order
    return [graph.node[i] for i in order]


def names_read(node: onnx.NodeProto) -> set[str]:
    """The node's inputs and every outer-scope name its subgraphs (If/Loop/Scan bodies, at any depth) read."""
    read, defined = set(), set()
    for attribute in node.attribute:
        for body in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
            for graph in iter_graph_protos(body):
                defined |= {i.name for i in graph.input} | {t.name for t in graph.initializer}
                defined |= {o for n in graph.node for o in n.output}
                read |= {name for n in graph.node for name in n.input if name}
    return {n for n in node.input if n} | (read - defined)
