"""run_graph_pipeline: which graph the passes are given, and that the input is never changed.

A graph without dead values whose networkx dicts are in a copy's order (every frontend graph) is handed
to the passes as it is; any other graph is copied and its dead values removed first. Either way the
passes see what they would see given the copy, so the result is the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.driver import Source
from ir.dtypes import DType
from ir.graph import Graph
from ir.graph_printer import print_graph
from ir.types import TensorType
from passes.graph_pipeline import run_graph_pipeline
from targets.base import CompileOptions

ROOT = Path(__file__).resolve().parents[2]
VECTOR = TensorType((4,), DType.F32)


def _layout(graph: Graph) -> tuple:
    """The graph's networkx dicts with their order made visible."""
    return ([(n, dict(data)) for n, data in graph.nx._node.items()],
            [(n, [(u, list(keys)) for u, keys in users.items()]) for n, users in graph.nx._succ.items()],
            [(n, [(s, list(keys)) for s, keys in sources.items()]) for n, sources in graph.nx._pred.items()])


def _two_params() -> tuple[Graph, int, int]:
    graph = Graph()
    return graph, graph.add_param("a", VECTOR), graph.add_param("b", VECTOR)


def test_a_frontend_graph_is_given_to_the_passes_as_it_is() -> None:
    graph = Source.from_file(ROOT / "examples" / "mlp.nk").specialize({}, None)
    before = _layout(graph)
    assert run_graph_pipeline(graph, CompileOptions(target="ref", passes="cse,dce")) is graph
    assert _layout(graph) == before


def test_a_graph_with_dead_values_is_copied_without_them() -> None:
    graph, a, b = _two_params()
    graph.add("exp", [a])  # used by nothing
    graph.outputs = [graph.add("add", [a, b])]
    before = _layout(graph)
    result = run_graph_pipeline(graph, CompileOptions(target="ref", passes="cse"))
    assert result is not graph and len(result) == 3 and _layout(graph) == before


def test_a_graph_in_operand_order_is_copied_first() -> None:
    graph, a, b = _two_params()
    graph.outputs = [graph.add("sub", [b, a])]  # predecessors listed b, a: not the order of a copy
    before = _layout(graph)
    result = run_graph_pipeline(graph, CompileOptions(target="ref", passes="cse"))
    assert result is not graph and result.in_copy_order() and _layout(graph) == before
    assert result.operands(result.outputs[0]) == [b, a]


@pytest.mark.parametrize("name", ["mlp", "attention", "decoder_layer"])
def test_the_fused_graph_is_the_one_a_copy_gives(name: str) -> None:
    options = CompileOptions(target="ref", opt_level=2)
    graph = Source.from_file(ROOT / "examples" / f"{name}.nk").specialize({}, None)
    copied = graph.copy()
    copied.add("neg", [copied.params[0]])  # a dead value: the pipeline copies this graph first
    assert print_graph(run_graph_pipeline(graph, options)) == print_graph(run_graph_pipeline(copied, options))
