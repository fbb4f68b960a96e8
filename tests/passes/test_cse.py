"""cse: equal operations on equal operands are computed once; nothing else is merged."""

from __future__ import annotations

from ir.dtypes import DType
from ir.graph import Graph
from ir.types import TensorType
from passes.context import PassContext

F32 = TensorType((4,), DType.F32)


def ops_of(graph: Graph) -> list[str]:
    return [node.op for _, node in graph.nodes() if node.op != "param"]


def test_duplicates_collapse_transitively_and_commutatively(graph_of, run_passes) -> None:
    graph = graph_of("def f(x: f32[4], y: f32[4]) { return exp(x + y) * exp(y + x) }")
    ctx = PassContext()
    result = run_passes(graph, "cse", ctx=ctx)
    assert ops_of(result) == ["add", "exp", "mul"]
    assert ctx.stats[0].text == "2 duplicate nodes merged" and ctx.stats[0].counters["merged"] == 2


def test_different_operand_order_of_non_commutative_ops_is_kept(graph_of, run_passes) -> None:
    graph = graph_of("def f(x: f32[4], y: f32[4]) { return (x - y) * (y - x) }")
    assert ops_of(run_passes(graph, "cse")).count("sub") == 2


def test_constants_are_compared_by_bits_and_parameters_never_merge(run_passes) -> None:
    graph = Graph("g")
    x = graph.add_param("x", F32)
    y = graph.add_param("y", F32)
    scalar = TensorType((), DType.F32)
    zero, negative_zero, zero_again = (graph.add_constant(v, scalar) for v in (0.0, -0.0, 0.0))
    graph.outputs = [graph.add("add", [x, zero]), graph.add("add", [x, negative_zero]),
                     graph.add("add", [y, zero_again])]
    result = run_passes(graph, "cse")
    values = sorted(str(node.attr("value")) for _, node in result.nodes() if node.op == "constant")
    assert values == ["-0.0", "0.0"]
    assert len(result.params) == 2 and ops_of(result).count("add") == 3


def test_nodes_in_different_groups_stay_apart(run_passes) -> None:
    graph = Graph("g")
    x = graph.add_param("x", F32)
    a = graph.add("exp", [x], group=0)
    b = graph.add("exp", [x], group=1)
    graph.outputs = [graph.add("neg", [a], group=0), graph.add("neg", [b], group=1)]
    assert ops_of(run_passes(graph, "cse")).count("exp") == 2


def test_a_graph_without_duplicates_is_returned_as_it_is() -> None:
    from passes.cse import CommonSubexpressionElimination
    graph = Graph("g")
    x = graph.add_param("x", F32)
    scalar = TensorType((), DType.F32)
    # Equal operations on equal operands except for the type (two constants) or the operand order
    # (a non-commutative op) are not duplicates.
    one_f32, one_f64 = graph.add_constant(1.0, scalar), graph.add_constant(1.0, TensorType((), DType.F64))
    graph.outputs = [graph.add("sub", [x, one_f32]), graph.add("sub", [one_f32, x]),
                     graph.add("cast", [one_f64], {"dtype": DType.F32})]
    ctx = PassContext()
    ctx.current_pass = "cse"
    assert CommonSubexpressionElimination().run(graph, ctx) is graph
    assert ctx.stats[0].text == "0 duplicate nodes merged"
    graph.outputs.append(graph.add("sub", [x, one_f32]))
    merged = CommonSubexpressionElimination().run(graph, ctx)
    assert merged is not graph and len(merged) == len(graph) - 1
