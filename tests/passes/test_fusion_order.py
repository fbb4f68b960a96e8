"""KernelOrder (passes/fusion_order.py): merging kernels keeps a topological order of the graph of
kernels, and the searches it bounds find exactly what unbounded ones find."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ir.dtypes import DType
from ir.graph import Graph
from ir.types import TensorType
from passes.fusion_order import KernelOrder
from passes.fusion_queries import reentry

VALUE = TensorType((2,), DType.F32)


@st.composite
def random_dags(draw: st.DrawFn) -> Graph:
    graph = Graph("dag")
    nodes = [graph.add_param("x", VALUE)]
    for _ in range(draw(st.integers(3, 24))):
        operands = draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=2))
        nodes.append(graph.add("neg" if len(operands) == 1 else "add", operands))
    graph.outputs = [n for n in nodes if not graph.users(n)]
    return graph


class Kernels:
    """Kernels as sets of nodes, merged as the fusion engine merges them."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.of = {node: {node} for node in graph.nx.nodes}
        self.order = KernelOrder(graph, graph.topological_order(), self.block)

    def block(self, node: int) -> set[int]:
        return self.of[node]

    def merge(self, first: int, second: int) -> None:
        self.order.merge(self.of[first], self.of[second])
        union = self.of[first] | self.of[second]
        for node in union:
            self.of[node] = union

    def assert_topological(self) -> None:
        position = self.order.position
        for kernel in {id(k): k for k in self.of.values()}.values():
            assert len({position[n] for n in kernel}) == 1
        kernels = {position[next(iter(k))]: id(k) for k in self.of.values()}
        assert len(kernels) == len({id(k) for k in self.of.values()}), "two kernels share a position"
        for source, target in self.graph.nx.edges():
            if self.of[source] is not self.of[target]:
                assert position[source] < position[target], (source, target)


@settings(max_examples=150, deadline=None)
@given(graph=random_dags(), data=st.data())
def test_merges_keep_a_topological_order_and_bounded_searches_agree(graph: Graph, data: st.DataObject) -> None:
    kernels = Kernels(graph)
    kernels.assert_topological()
    edges = sorted((s, t) for s, t in graph.nx.edges() if graph.node(s).op != "param")
    for _ in range(data.draw(st.integers(1, 12))):
        if not edges:
            break
        source, target = data.draw(st.sampled_from(edges))
        if kernels.of[source] is kernels.of[target]:
            continue
        union = kernels.of[source] | kernels.of[target]
        found = reentry(graph, union, kernels.block)
        assert reentry(graph, union, kernels.block, kernels.order) == found
        if found is None:
            kernels.merge(source, target)
            kernels.assert_topological()


def test_a_merge_that_reorders_both_sides_of_the_window() -> None:
    """a -> c directly; a also feeds f (placed between them) and e (placed between them) feeds c:
    the merged kernel must come after e and before f, which the initial order has the other way."""
    graph = Graph("window")
    x = graph.add_param("x", VALUE)
    a = graph.add("neg", [x])
    f = graph.add("exp", [a])  # reached from a: must follow the merged kernel
    e = graph.add("abs", [x])  # reaches c: must precede the merged kernel
    c = graph.add("add", [a, e])
    graph.outputs = [f, c]
    kernels = Kernels(graph)
    position = kernels.order.position
    assert position[a] < position[f] < position[e] < position[c]
    assert reentry(graph, {a, c}, kernels.block, kernels.order) is None
    kernels.merge(a, c)
    kernels.assert_topological()
    assert position[e] < position[a] == position[c] < position[f]
