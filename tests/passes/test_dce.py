"""dce: values no output needs are removed; parameters stay."""

from __future__ import annotations

from ir.dtypes import DType
from ir.graph import Graph
from ir.types import TensorType
from passes.context import PassContext
from passes.dce import DeadCodeElimination


def test_dead_values_go_and_parameters_stay() -> None:
    graph = Graph("g")
    x = graph.add_param("x", TensorType((4,), DType.F32))
    unused = graph.add_param("unused", TensorType((2,), DType.F32))
    dead = graph.add("exp", [x])
    graph.add("neg", [dead])
    graph.outputs = [graph.add("tanh", [x])]
    ctx = PassContext()
    ctx.current_pass = "dce"
    result = DeadCodeElimination().run(graph, ctx)
    assert sorted(node.op for _, node in result.nodes()) == ["param", "param", "tanh"]
    assert result.params == [x, unused]
    assert ctx.stats[0].text == "2 dead nodes removed"
    assert len(graph) == 5  # the input is unchanged


def test_a_graph_without_dead_values_is_returned_as_it_is() -> None:
    graph = Graph("g")
    x = graph.add_param("x", TensorType((4,), DType.F32))
    graph.add_param("unused", TensorType((2,), DType.F32))  # parameters stay, used or not
    exp = graph.add("exp", [x])
    graph.outputs = [graph.add("tanh", [exp]), exp]
    ctx = PassContext()
    ctx.current_pass = "dce"
    assert DeadCodeElimination().run(graph, ctx) is graph
    assert ctx.stats[0].text == "0 dead nodes removed"
    graph.add("neg", [graph.add("exp", [exp])])  # dead: its use is itself dead
    result = DeadCodeElimination().run(graph, ctx)
    assert result is not graph and len(result) == len(graph) - 2
