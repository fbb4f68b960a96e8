"""cse (graph IR): common-subexpression elimination; equal operations on equal operands are computed once.

Two nodes are equal when they have the same op, type, attributes, fusion group and operands (in
either order for the ops of the COMMUTATIVE group). Walking the nodes in topological order, each
node's operands are already canonical, so chains of duplicates collapse in one sweep. Legal because
every op is a pure function of its operands and attributes (the reference interpreter evaluates a
node from nothing else), so equal nodes have equal values. Float attributes are compared by their
bits, so 0.0 and -0.0 (or two NaNs) are not confused; parameters are never merged.
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


def node_key(graph: Graph, node_id: int, node: Node) -> tuple:
    operands = graph.operands(node_id)
    if len(operands) == 2 and ops.in_group(node.op, ops.COMMUTATIVE):
        operands = sorted(operands)
    attrs = tuple((name, _attr_key(value)) for name, value in node.attrs)
    return (node.op, node.type, attrs, node.group, tuple(operands))


@register_pass
class CommonSubexpressionElimination(Pass):
    name = "cse"
    summary = "compute equal operations on equal operands once"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
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
