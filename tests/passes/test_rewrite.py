"""The rewrite engine: patterns, captures, commutation, predicates, rule sets and the greedy driver."""

from __future__ import annotations

import pytest

from ir import ops
from ir.dtypes import DType
from ir.graph import Graph
from ir.types import TensorType
from passes.context import PassContext
from passes.rewrite import (Match, RewriteError, Rewriter, Rule, RuleSet, any_value, apply_rules, constant, match,
                            one_use, op, ungrouped)

F32 = TensorType((4, 8), DType.F32)


def silu_graph(swap: bool = False, other: bool = False) -> tuple[Graph, int]:
    graph = Graph("g")
    x = graph.add_param("x", F32)
    y = graph.add_param("y", F32)
    s = graph.add("sigmoid", [y if other else x])
    root = graph.add("mul", [s, x] if swap else [x, s])
    graph.outputs = [root]
    return graph, root


SILU = op("mul", any_value("x"), op("sigmoid", any_value("x"), capture="s"))


@pytest.mark.parametrize("swap", [False, True], ids=["x*sigmoid(x)", "sigmoid(x)*x"])
def test_commutative_ops_match_in_either_order(swap: bool) -> None:
    graph, root = silu_graph(swap)
    found = match(SILU, graph, root)
    assert found is not None
    assert graph.node(found["x"]).op == "param" and graph.node(found["s"]).op == "sigmoid"
    assert found.root == root and "x" in found and "y" not in found


def test_a_name_used_twice_must_bind_one_node() -> None:
    graph, root = silu_graph(other=True)  # x * sigmoid(y)
    assert match(SILU, graph, root) is None


def test_non_commutative_ops_keep_their_order() -> None:
    graph = Graph("g")
    x = graph.add_param("x", F32)
    one = graph.add_constant(1.0, TensorType((), DType.F32))
    root = graph.add("sub", [one, x])
    assert match(op("sub", any_value("x"), constant(1)), graph, root) is None
    assert match(op("sub", constant(1), any_value("x")), graph, root) is not None


def test_groups_values_and_predicates() -> None:
    graph, root = silu_graph()
    assert match(op(None, group=ops.BINARY), graph, root) is not None
    assert match(op(None, group=ops.UNARY), graph, root) is None
    assert match(op("mul", where=ungrouped), graph, root) is not None
    graph.set_node(root, graph.node(root).replace(group=3))
    assert match(op("mul", where=ungrouped), graph, root) is None
    sigmoid = graph.operands(root)[1]
    assert match(op("sigmoid", where=one_use), graph, sigmoid) is not None
    with pytest.raises(ops.OpError, match="unknown operation 'sigmoidd'"):
        op("sigmoidd")


def test_a_later_operand_can_need_the_other_order_of_an_earlier_commutative_one() -> None:
    graph = Graph("g")
    a, b = graph.add_param("a", F32), graph.add_param("b", F32)
    root = graph.add("add", [graph.add("mul", [a, b]), b])  # (a * b) + b, matched as (x * y) + x
    found = match(op("add", op("mul", any_value("x"), any_value("y")), any_value("x")), graph, root)
    assert found is not None and (found["x"], found["y"]) == (b, a)
    other = graph.add("add", [graph.add("mul", [a, a]), b])
    assert match(op("add", op("mul", any_value("x"), any_value("y")), any_value("x")), graph, other) is None


def test_constant_values_distinguish_bools() -> None:
    graph = Graph("g")
    true = graph.add_constant(True, TensorType((), DType.BOOL))
    one = graph.add_constant(1.0, TensorType((), DType.F32))
    assert match(constant(1), graph, one) is not None
    assert match(constant(1), graph, true) is None
    assert match(constant(True), graph, true) is not None


def to_silu(rw: Rewriter, m: Match) -> int:
    return rw.add("silu", [m["x"]])


def test_driver_replaces_removes_dead_nodes_and_reports() -> None:
    graph, root = silu_graph()
    ctx = PassContext()
    ctx.current_pass = "fuse-silu"
    result = apply_rules(graph, RuleSet(Rule(SILU, to_silu)), ctx=ctx)
    ops_left = sorted(node.op for _, node in result.graph.nodes())
    assert ops_left == ["param", "param", "silu"]
    assert result.applied == {"to-silu": 1} and result.removed == 2 and result.iterations == 2
    assert ctx.stats[0].text == "1 rewrite (to-silu 1), 2 dead values removed"
    assert sorted(node.op for _, node in graph.nodes()) == ["mul", "param", "param", "sigmoid"]  # input intact


def test_rule_sets_compose_in_order() -> None:
    calls = []

    def first(rw: Rewriter, m: Match) -> None:
        calls.append("first")
        return None  # does not apply: the next rule is tried

    def second(rw: Rewriter, m: Match) -> int:
        calls.append("second")
        return rw.add("silu", [m["x"]])

    rules = RuleSet(Rule(SILU, first)) + RuleSet(Rule(SILU, second))
    assert [rule.name for rule in rules] == ["first", "second"] and len(rules) == 2
    graph, _ = silu_graph()
    assert apply_rules(graph, rules).applied == {"second": 1}
    assert calls == ["first", "second"]


def test_guards_see_all_captures() -> None:
    graph, _ = silu_graph()
    rule = Rule(SILU, to_silu, guard=lambda m: m.node("x").type.shape == (1, 1))
    assert apply_rules(graph, RuleSet(rule)).applied == {}


def test_a_replacement_must_keep_the_type() -> None:
    def shrink(rw: Rewriter, m: Match) -> int:
        return rw.add("reduce_sum", [m["x"]], {"axes": (1,), "keepdims": True})

    graph, _ = silu_graph()
    with pytest.raises(RewriteError, match=r"rule 'shrink' replaced a mul of type f32\[4,8\] with a reduce_sum "
                                           r"of type f32\[4,1\]"):
        apply_rules(graph, RuleSet(Rule(SILU, shrink)))


def test_a_replacement_may_not_depend_on_the_root() -> None:
    def wrap(rw: Rewriter, m: Match) -> int:
        return rw.add("neg", [m.root])

    graph, _ = silu_graph()
    with pytest.raises(RewriteError, match="cyclic"):
        apply_rules(graph, RuleSet(Rule(SILU, wrap)))


def test_invalid_new_nodes_name_the_rule() -> None:
    def bad(rw: Rewriter, m: Match) -> int:
        return rw.add("matmul", [m["x"], m["x"]])

    graph, _ = silu_graph()
    with pytest.raises(RewriteError, match="rule 'bad' built an invalid matmul: matmul: contracting"):
        apply_rules(graph, RuleSet(Rule(SILU, bad)))


def test_the_iteration_cap_stops_rules_that_never_converge() -> None:
    def flip(rw: Rewriter, m: Match) -> int:
        return rw.add("neg", [rw.add("neg", [m["x"]])])

    graph = Graph("g")
    x = graph.add_param("x", F32)
    graph.outputs = [graph.add("neg", [graph.add("neg", [x])])]
    rule = Rule(op("neg", op("neg", any_value("x"))), flip)
    with pytest.raises(RewriteError, match="did not converge after 5 sweeps; still firing: flip"):
        apply_rules(graph, RuleSet(rule), max_iterations=5)


def test_fuse_groups_nodes_and_refuses_illegal_groups() -> None:
    graph = Graph("g")
    x = graph.add_param("x", F32)
    w = graph.add_param("w", TensorType((8, 8), DType.F32))
    product = graph.add("matmul", [x, w])
    act = graph.add("relu", [product])
    total = graph.add("reduce_sum", [act], {"axes": (1,), "keepdims": False})
    graph.outputs = [total]

    def fuse_all(rw: Rewriter, m: Match) -> None:
        rw.fuse([m["p"], m.root, m["t"]] if "t" in m else [m["p"], m.root])

    ctx = PassContext()
    ctx.current_pass = "test"
    pattern = op("reduce_sum", op("relu", op("matmul", capture="p"), capture="r"))
    refused = apply_rules(graph, [Rule(pattern, lambda rw, m: rw.fuse([m["p"], m["r"], m.root]), name="all")],
                          ctx=ctx)
    assert not refused.graph.groups() and refused.applied == {}
    assert any(not d.fused and "cannot share a kernel" in d.reason for d in ctx.fusion_log)
    fused = apply_rules(graph, [Rule(op("relu", op("matmul", capture="p"), where=ungrouped), fuse_all)], ctx=ctx)
    assert list(fused.graph.groups().values()) == [[product, act]]
    assert fused.applied == {"fuse-all": 1}


# -- rules of bounded depth: later sweeps skip the settled nodes, with the full sweeps' result ------


def _sin_to_cos(rw: Rewriter, m: Match) -> int:
    return rw.add("cos", [m["x"]])


def _drop_cos(rw: Rewriter, m: Match) -> int:
    return m["x"]


def _neg_neg(rw: Rewriter, m: Match) -> int:
    return m["x"]


def _late_rules(depth: int | None) -> RuleSet:
    return RuleSet(Rule(op("sin", any_value("x")), _sin_to_cos, depth=depth),
                   Rule(op("cos", any_value("x")), _drop_cos, depth=depth),
                   Rule(op("neg", op("neg", any_value("x"))), _neg_neg, depth=None if depth is None else 2))


def test_a_settled_node_is_tried_again_when_an_operand_below_it_changes() -> None:
    # neg(sin(neg(x))): the first sweep turns sin into a new cos, where nothing else fires (the outer neg
    # reads a cos, not a neg). The second sweep drops the cos, so the outer neg, settled in the first,
    # now reads neg(x) and must be tried again to fold the two negations away.
    graph = Graph("g")
    x = graph.add_param("x", F32)
    graph.outputs = [graph.add("neg", [graph.add("sin", [graph.add("neg", [x])])])]
    full = apply_rules(graph, _late_rules(None))
    tracked = apply_rules(graph, _late_rules(1))
    assert tracked.graph.outputs == [x] and tracked.graph.canonical() == full.graph.canonical()
    assert (tracked.applied, tracked.iterations, tracked.removed) == (full.applied, full.iterations, full.removed)
    assert tracked.applied == {"sin-to-cos": 1, "drop-cos": 1, "neg-neg": 1}


def test_settled_nodes_are_not_tried_again() -> None:
    tried: list[int] = []

    def count(rw: Rewriter, m: Match) -> None:
        tried.append(m.root)
        return None

    graph = Graph("g")
    value = graph.add_param("x", F32)
    for _ in range(5):
        value = graph.add("exp", [value])
    graph.outputs = [graph.add("sin", [value])]
    rules = [Rule(op("exp"), count, depth=0), Rule(op("sin", any_value("x")), _sin_to_cos, depth=1)]
    result = apply_rules(graph, rules)
    assert result.applied == {"sin-to-cos": 1} and result.iterations == 2
    assert len(tried) == 5  # each exp once: in the second sweep only the new cos is tried
    tried.clear()
    assert apply_rules(graph, [Rule(op("exp"), count), rules[1]]).applied == {"sin-to-cos": 1}
    assert len(tried) == 10  # without a depth, every sweep tries every node


def test_a_rule_cannot_declare_less_depth_than_its_pattern() -> None:
    with pytest.raises(ValueError, match="depth 1 is less than its pattern's depth 2"):
        Rule(op("neg", op("neg", any_value("x"))), _neg_neg, depth=1)
