"""Elementwise kernels: a group of elementwise and view ops (or one such node) over one domain.

Every output has the domain's shape (`ir.groups` guarantees it for groups; a single node is its own
domain), so the kernel is one loop nest over the domain storing each output at each point; the members
in between are computed inline by the elemental emitter, views folded into the index arithmetic.
"""

from __future__ import annotations

from passes.lowering.context import KernelContext
from passes.lowering.spec import ElementwiseSpec


def build_elementwise(ctx: KernelContext) -> ElementwiseSpec:
    domain = ctx.outputs[0].buffer.shape
    return ElementwiseSpec(name=ctx.name, nodes=ctx.unit.live, group=ctx.unit.group, reads=ctx.reads,
                           writes=tuple(slot.buffer for slot in ctx.outputs), names=ctx.names,
                           elemental=ctx.elemental(), domain=domain, outputs=ctx.outputs)
