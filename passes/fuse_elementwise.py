"""fuse-elementwise (graph IR): chains of elementwise and view ops, with broadcasts, become one kernel.

Forms ELEMENTWISE groups (`ir.groups`): one iteration space, the shape of the group's results; each
member is computed inline at the indices its consumers need, so a broadcast operand (a bias of shape
[N] feeding an [M, N] add) is simply read at the broadcast index. Splat constants and iotas join the
groups that use them. Reductions end a chain (fuse-reductions fuses across them), as do matmuls
(fuse-epilogue) and concatenations. Legal because the group contract is checked for every merge
(`passes.fusion_common`): members keep their values, a group never forms a cycle with the rest of the
graph, and the interpreter's result of the graph does not depend on groups at all.
"""

from __future__ import annotations

from ir import ops
from ir.graph import Graph
from ir.groups import GroupKind
from passes.context import PassContext
from passes.fusion_common import FusionOptions, FusionPolicy, Refusal, dense_everywhere, run_fusion
from passes.registry import Pass, register_pass


def _seed(graph: Graph, node: int) -> bool:
    op = graph.node(node).op
    return ops.in_group(op, ops.ELEMENTWISE) or ops.in_group(op, ops.VIEW)


def _admit(graph: Graph, node: int) -> Refusal | None:
    op = graph.node(node).op
    if ops.in_group(op, ops.REDUCTION):
        return ("reduction-boundary", "is a reduction: an elementwise group stops there (fuse-reductions fuses "
                                      "across reductions)")
    if ops.in_group(op, ops.MATMUL):
        return ("not-fusible", "is a matmul: an elementwise group cannot hold one (fuse-epilogue fuses a "
                               "matmul's epilogue)")
    if not (_seed(graph, node) or op in ("constant", "iota")):
        return ("not-fusible", f"is a {op}, which no fusion group holds (only elementwise, view, reduction and "
                               "matmul ops fuse)")
    return dense_everywhere(graph, node)


POLICY = FusionPolicy(frozenset({GroupKind.ELEMENTWISE}), _seed, _admit)


@register_pass
class FuseElementwise(Pass):
    name = "fuse-elementwise"
    summary = "fuse chains of elementwise and view ops (with broadcasts) into one kernel each"
    Options = FusionOptions

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return run_fusion(graph, ctx, POLICY, self.options, self.name)
