"""What a region's operations ask of a PE, from shapes alone: a matmul's shape, and the vector
operations one element of an elementwise or reduction op costs (the shape is `targets.counts.MatmulShape`).

Both the compiler (`targets.wse.codegen`, `targets.wse.local_plan`) and the analytical pricing
(`targets.wse.analysis`) read these; they live apart from the per-PE instruction set so that pricing a
program never loads the code generator.
"""

from __future__ import annotations

from ir.graph import Graph
from targets.counts import UNARY_COST, MatmulShape
from targets.counts import matmul_shape as shape_from_types
from targets.wse.machine import WseMachine


def matmul_shape(graph: Graph, anchor: int) -> MatmulShape:
    """The shape of the matmul `anchor` (`targets.counts.matmul_shape` of its types)."""
    a, _ = graph.operands(anchor)
    return shape_from_types(graph.node(anchor).type, graph.node(a).type)


def vop_cost(op: str, machine: WseMachine) -> int:
    """Vector operations one element of `op` costs on a PE (transcendentals run in software)."""
    if op in UNARY_COST:
        flops, transcendentals = UNARY_COST[op]
        return max(1, flops) + transcendentals * machine.transcendental_ops
    if op == "pow":
        return 1 + 2 * machine.transcendental_ops
    if op == "div":
        return machine.transcendental_ops // 2  # a reciprocal (Newton iterations) and a multiply
    return 1
