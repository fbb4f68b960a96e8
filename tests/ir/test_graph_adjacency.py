"""Graph's direct reads and writes of networkx's dicts agree with networkx's own methods.

`Graph` builds, copies, orders and reads its networkx MultiDiGraph through the dicts networkx keeps
(`_node`, `_succ`, `_pred`) instead of networkx's methods, and the fusion passes and targets read those
dicts too, so their contents *and order* must be what networkx itself would give.
"""

from __future__ import annotations

import random
from pathlib import Path

import networkx as nx
import pytest

from compiler.driver import Source
from ir.dtypes import DType
from ir.graph import Graph
from ir.types import TensorType

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.nk"))
SCALAR = TensorType((4,), DType.F32)


def _random_graph(seed: int, size: int = 40) -> Graph:
    """A graph of binary, unary and variadic operations on random earlier values (repeats included,
    such as x * x and concat(a, b, a))."""
    rng = random.Random(seed)
    graph = Graph()
    joined = []  # concats change the shape: outputs, not operands
    values = [graph.add_param(f"p{i}", SCALAR) for i in range(3)]
    values.append(graph.add_constant(1.0, SCALAR))
    for _ in range(size):
        kind = rng.random()
        if kind < 0.5:
            operands = [rng.choice(values), rng.choice(values)]
            values.append(graph.add(rng.choice(["add", "mul", "sub"]), operands))
        elif kind < 0.7:
            values.append(graph.add("exp", [rng.choice(values)]))
        elif kind < 0.85:
            operands = [rng.choice(values) for _ in range(rng.randint(2, 4))]
            values.append(graph.add("select", [graph.add("gt", operands[:2])] + operands[:2]))
        else:
            operands = [rng.choice(values) for _ in range(rng.randint(1, 4))]
            joined.append(graph.add("concat", operands, {"axis": 0}))
    graph.outputs = values[-3:] + joined
    return graph


def _reference(graph: Graph) -> nx.MultiDiGraph:
    """The same graph built with networkx's add_node/add_edge, in the order Graph.add adds things."""
    reference = nx.MultiDiGraph()
    for node_id in graph.nx._node:
        reference.add_node(node_id, node=graph.node(node_id))
        for index, operand in enumerate(graph.operands(node_id)):
            reference.add_edge(operand, node_id, key=index)
    return reference


def _layout(graph: nx.MultiDiGraph) -> tuple:
    """networkx's dicts with their order made visible."""
    return ([(n, dict(data)) for n, data in graph._node.items()],
            [(n, [(u, list(keys.items())) for u, keys in users.items()]) for n, users in graph._succ.items()],
            [(n, [(s, list(keys.items())) for s, keys in sources.items()]) for n, sources in graph._pred.items()])


@pytest.mark.parametrize("seed", range(8))
def test_add_writes_what_networkx_would(seed: int) -> None:
    graph = _random_graph(seed)
    reference = _reference(graph)
    assert _layout(graph.nx) == _layout(reference)
    for source, users in graph.nx._succ.items():  # one key dict per producer-consumer pair, shared
        for user, keys in users.items():
            assert graph.nx._pred[user][source] is keys


@pytest.mark.parametrize("seed", range(8))
def test_operands_and_topological_order_match_networkx(seed: int) -> None:
    graph = _random_graph(seed)
    for node_id in graph.nx._node:
        by_key = sorted((key, source) for source, _, key in graph.nx.in_edges(node_id, keys=True))
        assert graph.operands(node_id) == [source for _, source in by_key]
    assert graph.topological_order() == list(nx.lexicographical_topological_sort(graph.nx))


def test_operands_of_repeated_and_reordered_sources() -> None:
    graph = Graph()
    a, b = graph.add_param("a", SCALAR), graph.add_param("b", SCALAR)
    square = graph.add("mul", [b, b])
    mixed = graph.add("concat", [b, a, b, a, square], {"axis": 0})
    swapped = graph.add("sub", [b, a])
    assert graph.operands(square) == [b, b]
    assert graph.operands(mixed) == [b, a, b, a, square]
    assert graph.operands(swapped) == [b, a]
    graph.set_operand(swapped, 0, square)
    assert graph.operands(swapped) == [square, a]


@pytest.mark.parametrize("seed", range(4))
def test_sorted_predecessors_are_a_copys_order(seed: int) -> None:
    graph = _random_graph(seed)
    operands = {n: graph.operands(n) for n in graph.nx._node}
    assert graph.copy().in_copy_order()
    graph.sort_predecessors()
    assert graph.in_copy_order()
    assert _layout(graph.nx) == _layout(graph.copy().nx)
    assert {n: graph.operands(n) for n in graph.nx._node} == operands


def test_a_graph_in_operand_order_is_not_in_copy_order() -> None:
    graph = Graph()
    a, b = graph.add_param("a", SCALAR), graph.add_param("b", SCALAR)
    graph.outputs = [graph.add("sub", [b, a])]
    assert not graph.in_copy_order()
    graph.sort_predecessors()
    assert graph.in_copy_order() and graph.operands(graph.outputs[0]) == [b, a]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_frontend_graphs_are_in_copy_order(path: Path) -> None:
    graph = Source.from_file(path).specialize({}, None)
    assert graph.in_copy_order()
    assert _layout(graph.nx) == _layout(graph.copy().nx)


@pytest.mark.parametrize("seed", range(8))
def test_has_dead_values_is_whether_remove_dead_removes_any(seed: int) -> None:
    graph = _random_graph(seed)
    graph.outputs = graph.outputs[: seed % 3 + 1]  # fewer outputs: some values may be dead
    expected = graph.copy().remove_dead() > 0
    assert graph.has_dead_values() == expected
    graph.remove_dead()
    assert not graph.has_dead_values()
