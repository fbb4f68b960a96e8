"""Matmul kernels: one matmul with its operand prologue (views, casts) and elementwise epilogue.

The operands' batch dimensions broadcast into the output's (numpy.matmul): `load_a(batch, i, k)` reads
A at the output batch index broadcast into A's batch shape, then (i, k); the prologue members between
a buffer and the matmul are views and casts, folded into that load. Epilogue members (bias, activation,
residual, scaling) all have the output's shape and read the matmul only at the element being finished,
so `epilogue_store` computes them from the accumulator before anything is stored.
"""

from __future__ import annotations

from ir.loops import Expr
from passes.lowering.context import KernelContext
from passes.lowering.spec import Indices, MatmulSpec
from passes.lowering.views import broadcast_index


def build_matmul(ctx: KernelContext, anchor: int) -> MatmulSpec:
    graph = ctx.graph
    a, b = graph.operands(anchor)
    a_shape, b_shape = graph.node(a).type.shape, graph.node(b).type.shape
    out = graph.node(anchor).type
    batch_shape = out.shape[:-2]
    elemental = ctx.elemental()

    def load_a(batch: Indices, i: Expr, k: Expr) -> Expr:
        index = broadcast_index(tuple(batch), a_shape[:-2], batch_shape) + (i, k)
        return elemental.compute([(a, index)], bind=False).value

    def load_b(batch: Indices, k: Expr, j: Expr) -> Expr:
        index = broadcast_index(tuple(batch), b_shape[:-2], batch_shape) + (k, j)
        return elemental.compute([(b, index)], bind=False).value

    return MatmulSpec(name=ctx.name, nodes=ctx.unit.live, group=ctx.unit.group, reads=ctx.reads,
                      writes=tuple(slot.buffer for slot in ctx.outputs), names=ctx.names, elemental=elemental,
                      batch_shape=batch_shape, m=out.shape[-2], n=out.shape[-1], k=a_shape[-1], dtype=out.dtype,
                      anchor=anchor, outputs=ctx.outputs, _load_a=load_a, _load_b=load_b)
