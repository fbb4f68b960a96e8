"""A plugin pass: put `gelu(a @ b + bias)` into one fusion group, a matmul with a custom epilogue.

    niche compile examples/passes/activations.nk --load-pass examples/passes/fuse_matmul_bias_gelu.py \
        --passes "canonicalize,fuse-matmul-bias-gelu,fuse-reductions,fuse-elementwise" --explain-fusion

The pass only marks nodes with a group id; `Rewriter.fuse` checks the group with
`ir.groups.classify_group` first, so the lowering of every target can compile it (a MATMUL group: the
bias add and the gelu are applied to each output element before it is stored). Values do not change.
"""

from dataclasses import dataclass

from ir.graph import Graph
from passes.context import PassContext
from passes.registry import Pass, register_pass
from passes.rewrite import Match, Rewriter, Rule, RuleSet, any_value, apply_rules, one_use, op, ungrouped

# The matmul and the bias add must have no other users, or the group would have to store them too.
PATTERN = op("gelu",
             op("add",
                op("matmul", capture="product", where=(ungrouped, one_use)),
                any_value("bias"),
                capture="biased", where=(ungrouped, one_use)),
             where=ungrouped)


def fuse_epilogue(rw: Rewriter, match: Match) -> None:
    """Group the three nodes; `fuse` leaves them alone when they cannot form one kernel."""
    rw.fuse([match["product"], match["biased"], match.root])


@dataclass(frozen=True)
class Options:
    report: bool = True  # print a statistics line with --pass-stats


@register_pass
class FuseMatmulBiasGelu(Pass):
    name = "fuse-matmul-bias-gelu"
    summary = "fuse gelu(a @ b + bias) into one matmul kernel with a bias-and-gelu epilogue"
    Options = Options

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        rules = RuleSet(Rule(PATTERN, fuse_epilogue))
        return apply_rules(graph, rules, ctx=ctx, report=self.options.report).graph
