"""What a region's operations ask of a PE, from shapes alone: a matmul's shape, and the vector
operations one element of an elementwise or reduction op costs.

Both the compiler (`targets.wse.codegen`, `targets.wse.local_plan`) and the analytical pricing
(`targets.wse.analysis`) read these; they live apart from the per-PE instruction set so that pricing a
program never loads the code generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ir.graph import Graph
from ir.types import TensorType
from targets.counts import UNARY_COST
from targets.wse.machine import WseMachine


@dataclass(frozen=True)
class MatmulShape:
    batch: int
    m: int
    k: int
    n: int


def matmul_shape(graph: Graph, anchor: int) -> MatmulShape:
    a, _ = graph.operands(anchor)
    return shape_of_matmul(graph.node(anchor).type, graph.node(a).type)


def shape_of_matmul(result: TensorType, a: TensorType) -> MatmulShape:
    """The shape of a matmul from its result's type and its first operand's."""
    shape = result.shape
    return MatmulShape(math.prod(shape[:-2]), shape[-2], a.shape[-1], shape[-1])


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
