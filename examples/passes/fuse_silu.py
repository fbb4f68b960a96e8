"""A plugin pass: rewrite `x * sigmoid(x)` into one `silu` op.

    niche compile examples/passes/activations.nk --load-pass examples/passes/fuse_silu.py \
        --passes fuse-silu,canonicalize,cse,fuse-elementwise --print-ir-after fuse-silu

Why it is legal: silu is defined as x * sigmoid(x) (ir/ops.py, and the reference interpreter computes
it that way), and the pattern names `x` twice, so it only matches when both factors read one value.
"""

from ir.graph import Graph
from passes.context import PassContext
from passes.registry import Pass, register_pass
from passes.rewrite import Match, Rewriter, Rule, RuleSet, any_value, apply_rules, op

# mul is commutative, so this also matches sigmoid(x) * x.
X_TIMES_SIGMOID_X = op("mul", any_value("x"), op("sigmoid", any_value("x")))


def to_silu(rw: Rewriter, match: Match) -> int:
    """The replacement for the matched mul: silu of the captured x."""
    return rw.add("silu", [match["x"]])


RULES = RuleSet(Rule(X_TIMES_SIGMOID_X, to_silu))


@register_pass
class FuseSilu(Pass):
    name = "fuse-silu"
    summary = "rewrite x * sigmoid(x) into one silu op"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return apply_rules(graph, RULES, ctx=ctx).graph
