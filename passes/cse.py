"""cse (graph IR): common-subexpression elimination; equal operations on equal operands are computed once.

Two nodes are equal when they have the same op, type, attributes, fusion group and operands (in
either order for the ops of the COMMUTATIVE group). Walking the nodes in topological order, each
node's operands are already canonical, so chains of duplicates collapse in one sweep. Legal because
every op is a pure function of its operands and attributes (the reference interpreter evaluates a
node from nothing else), so equal nodes have equal values. Float attributes are compared by their
bits, so 0.0 and -0.0 (or two NaNs) are not confused; parameters are never merged.

A graph without two equal nodes is returned as it is, not copied (`_has_duplicates`).
"""

from __future__ import annotations

from typing import Any

from ir import ops
from ir.graph import Graph, Node
from passes.context import PassContext, plural
from passes.registry import Pass, register_pass


def _attr_key(value: Any) -> Any:
    if isinstance(value, float):
        return ("float", value.hex())
    return (type(value).__name__, value)


def _operation_key(graph: Graph, node_id: int, node: Node) -> tuple:
    """`node_key` without the type: (op, attributes, group, operands)."""
    operands = graph.operands(node_id)
    if len(operands) == 2 and ops.in_group(node.op, ops.COMMUTATIVE):
        operands = sorted(operands)
    attrs = tuple([(name, _attr_key(value)) for name, value in node.attrs]) if node.attrs else ()
    return (node.op, attrs, node.group, tuple(operands))


def node_key(graph: Graph, node_id: int, node: Node) -> tuple:
    op, attrs, group, operands = _operation_key(graph, node_id, node)
    return (op, node.type, attrs, group, operands)


def _has_duplicates(graph: Graph) -> bool:
    """Whether two nodes of `graph` as it is have equal keys. The sweep below merges nothing exactly
    when this is false: its first merge happens before any change, so between two nodes equal here.

    Nodes are first told apart by their key without the type (hashing a type is slow, and equal
    operations on equal operands mostly have equal types); full keys are compared only when those agree.
    """
    by_operation: dict[tuple, list[int]] = {}
    for node_id, data in graph.nx._node.items():
        node = data["node"]
        if node.op == "param":
            continue
        key = _operation_key(graph, node_id, node)
        same = by_operation.get(key)
        if same is None:  # the usual case: an operation seen for the first time
            by_operation[key] = [node_id]
            continue
        if any(graph.node(other).type == node.type for other in same):
            return True
        same.append(node_id)
    return False


@register_pass
class CommonSubexpressionElimination(Pass):
    name = "cse"
    summary = "compute equal operations on equal operands once"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if not _has_duplicates(graph):
            ctx.report(f"{plural(0, 'duplicate node')} merged", merged=0)
            return graph
        graph = graph.copy()
        seen: dict[tuple, int] = {}
        merged = 0
        for node_id in graph.topological_order():
            node = graph.node(node_id)
            if node.op == "param":
                continue
            key = node_key(graph, node_id, node)
            if key in seen:
                graph.replace_uses(node_id, seen[key])
                graph.remove(node_id)
                merged += 1
            else:
                seen[key] = node_id
        ctx.report(f"{plural(merged, 'duplicate node')} merged", merged=merged)
        return graph
