"""fuse-reductions (graph IR): a reduction with its prologue and epilogue becomes one kernel.

Forms REDUCTION groups (`ir.groups`): reductions over the same axes of one domain shape D, the
elementwise and view ops of shape D that feed them (the prologue: `x - max`, `exp`, `d * d`), and the
ops after them, of shape D or of the reduced shape with the reduced axes kept (the epilogue:
`e / sum`, `rsqrt(var + eps)`, `d * r * gamma + beta`). The prelude's softmax, layernorm and rmsnorm
each become one such group, which reads its input once or twice instead of writing and reading five
temporaries. Reductions over different axes, and reduced values without keepdims read by
domain-shaped ops, are boundaries. Legal for the same reasons as every fusion pass
(`passes.fusion_common`): only groups `classify_group` accepts are formed, values are unchanged.
"""

from __future__ import annotations

from ir import ops
from ir.graph import Graph
from ir.groups import GroupKind
from passes.context import PassContext
from passes.fusion_common import FusionOptions, FusionPolicy, Refusal, dense_everywhere, run_fusion
from passes.registry import Pass, register_pass


def _seed(graph: Graph, node: int) -> bool:
    return ops.in_group(graph.node(node).op, ops.REDUCTION)


def _admit(graph: Graph, node: int) -> Refusal | None:
    op = graph.node(node).op
    if ops.in_group(op, ops.MATMUL):
        return ("not-fusible", "is a matmul: a matmul and a reduction cannot share a kernel")
    inline = ops.in_group(op, ops.ELEMENTWISE) or ops.in_group(op, ops.VIEW) or op in ("constant", "iota")
    if not (inline or ops.in_group(op, ops.REDUCTION)):
        return ("not-fusible", f"is a {op}, which no fusion group holds (only elementwise, view, reduction and "
                               "matmul ops fuse)")
    return dense_everywhere(graph, node)


POLICY = FusionPolicy(frozenset({GroupKind.REDUCTION}), _seed, _admit)


@register_pass
class FuseReductions(Pass):
    name = "fuse-reductions"
    summary = "fuse each reduction with its elementwise prologue and epilogue (softmax, layernorm -> one kernel)"
    Options = FusionOptions

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return run_fusion(graph, ctx, POLICY, self.options, self.name)
