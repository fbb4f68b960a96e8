"""DOT output: smoke tests on its shape (no graphviz needed)."""

from __future__ import annotations

import re

from ir.dot import graph_to_dot
from ir.graph import Graph
from ir.graph_parser import parse_graph

GROUPED = """
graph @g(%x: f32[4], %w: f32[4] {weight}) -> (f32[4], f32[4]) {
  %0 = add(%x, %w) group 1 : f32[4]
  %1 = exp(%0) group 1 : f32[4]
  %2 = constant() {value = 2.0} : f32[]
  %3 = mul(%1, %2) : f32[4]
  return %3, %1
}
"""


def unquoted(text: str) -> str:
    """The DOT text with the contents of double-quoted strings removed."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)


def assert_well_formed(text: str) -> None:
    bare = unquoted(text)
    assert bare.count("{") == bare.count("}")
    assert bare.count("[") == bare.count("]")
    assert '"' not in bare.replace('""', "")  # every string closed
    assert text.startswith("digraph ") and text.rstrip().endswith("}")


def test_groups_params_edges_and_outputs() -> None:
    text = graph_to_dot(parse_graph(GROUPED))
    assert_well_formed(text)
    assert "subgraph cluster_group1 {" in text
    cluster = text.split("subgraph cluster_group1 {")[1].split("}")[0]
    assert '"%0" [label="add\\nf32[4]"]' in cluster and '"%1" [label="exp\\nf32[4]"]' in cluster
    assert '"%3"' not in cluster
    assert '"%w" [label="w\\nf32[4]", shape=invhouse, style=filled' in text
    assert '"%x" [label="x\\nf32[4]", shape=invhouse]' in text
    assert 'label="constant 2.0\\nf32[]"' in text
    assert '"%x" -> "%0" [label="0"];' in text and '"%w" -> "%0" [label="1"];' in text
    assert '"%0" -> "%1";' in text  # one operand: no index label
    assert '"%3" -> "return" [label="0"];' in text and '"%1" -> "return" [label="1"];' in text


def test_every_op(every_op: Graph) -> None:
    text = graph_to_dot(every_op)
    assert_well_formed(text)
    assert text.count(" -> ") == every_op.nx.number_of_edges() + len(every_op.outputs)
    assert "cluster_group_minus3" in text


def test_examples(example: Graph) -> None:
    text = graph_to_dot(example)
    assert_well_formed(text)
    assert text.count(" -> ") == example.nx.number_of_edges() + len(example.outputs)


def test_a_graph_with_a_cycle_is_still_drawn() -> None:
    graph = parse_graph(GROUPED)
    add, mul = (next(n for n, node in graph.nodes() if node.op == op) for op in ("add", "mul"))
    graph.nx.add_edge(mul, add, key=2)
    text = graph_to_dot(graph)
    assert_well_formed(text)
    assert f"n{mul} -> n{add}" in text
