"""Concat kernels: the output is written one operand at a time, each into its block of the output.

Concat is never fused (it is neither elementwise nor a view), so it is always a kernel of its own and
its operands come from global buffers (or are constants and iotas, computed inline). Writing each
operand's block with its own loop nest needs no select and never loads outside an operand, which an
inline `select(i < n, a[i], b[i - n])` would do on targets that evaluate both sides.
"""

from __future__ import annotations

from passes.lowering.context import KernelContext
from passes.lowering.spec import CopyRegion, CopySpec


def build_concat(ctx: KernelContext) -> CopySpec:
    (node,) = ctx.unit.live
    graph = ctx.graph
    axis = graph.node(node).attr("axis")
    regions = []
    offset = 0
    for operand in graph.operands(node):
        shape = graph.node(operand).type.shape
        start = tuple(offset if a == axis else 0 for a in range(len(shape)))
        regions.append(CopyRegion(operand, shape, start))
        offset += shape[axis]
    (slot,) = ctx.outputs
    return CopySpec(name=ctx.name, nodes=ctx.unit.live, group=ctx.unit.group, reads=ctx.reads,
                    writes=(slot.buffer,), names=ctx.names, elemental=ctx.elemental(), output=slot,
                    regions=tuple(regions))
