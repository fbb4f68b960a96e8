"""fuse-epilogue (graph IR): a matmul and the elementwise ops applied to its result become one kernel.

Forms MATMUL groups (`ir.groups`): one matmul; views and casts of its operands, folded into the operand
loads; and an epilogue of elementwise ops of the matmul's output shape (bias add, activation, residual
add, scaling, masking) applied to each output element before it is stored, so the product is never
written and read back. An elementwise op whose only users are reductions (the `h * h` of an rmsnorm
after a residual add) is left out: it is the reductions' prologue, and fuse-reductions computes it
inline from the stored `h` instead of storing `h * h` as well. Legal for the same reasons as every fusion pass (`passes.fusion_common`): only
groups `classify_group` accepts are formed, and values are unchanged.
"""

from __future__ import annotations

from ir import ops
from ir.graph import Graph
from ir.groups import GroupKind, users_of
from passes.context import PassContext
from passes.fusion_common import FusionOptions, FusionPolicy, Refusal, dense_everywhere, run_fusion
from passes.registry import Pass, register_pass


def _seed(graph: Graph, node: int) -> bool:
    return ops.in_group(graph.node(node).op, ops.MATMUL)


def _admit(graph: Graph, node: int) -> Refusal | None:
    op = graph.node(node).op
    if ops.in_group(op, ops.MATMUL):
        return ("not-fusible", "is another matmul: a group holds one matmul")
    if ops.in_group(op, ops.REDUCTION):
        return ("reduction-boundary", "is a reduction: a matmul's epilogue cannot hold one")
    if not (ops.in_group(op, ops.ELEMENTWISE) or ops.in_group(op, ops.VIEW) or op in ("constant", "iota")):
        return ("not-fusible", f"is a {op}, which no fusion group holds (only elementwise, view, reduction and "
                               "matmul ops fuse)")
    users = users_of(graph, node)
    if users and all(ops.in_group(graph.node(u).op, ops.REDUCTION) for u in users):
        return ("reduction-boundary", "feeds only reductions: it is their prologue, which fuse-reductions "
                                      "computes inline instead of storing it")
    return dense_everywhere(graph, node)


POLICY = FusionPolicy(frozenset({GroupKind.MATMUL}), _seed, _admit)


@register_pass
class FuseEpilogue(Pass):
    name = "fuse-epilogue"
    summary = "fuse a matmul with its epilogue (bias, activation, residual, scaling) and operand views"
    Options = FusionOptions

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return run_fusion(graph, ctx, POLICY, self.options, self.name)
