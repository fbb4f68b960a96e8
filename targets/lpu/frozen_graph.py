"""A read-only graph with every lookup precomputed, for the LPU compiler's many queries.

`ir.graph.Graph` answers `operands(n)` by sorting networkx in-edges on every call; the LPU lowering
asks hundreds of thousands of times for a 70B model. The compiler never edits the graph, so one pass
over it gives the same answers from dictionaries.
"""

from __future__ import annotations

import itertools
import operator
from typing import Iterator

from ir.graph import Graph, Node


class FrozenGraph:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.name = graph.name
        self.params = list(graph.params)
        self.outputs = list(graph.outputs)
        self.dims = dict(graph.dims)
        self.attributes = dict(graph.attributes)
        self._order = graph.topological_order()
        self._nodes = {n: graph.node(n) for n in self._order}
        # Tuples of ints, not lists: the garbage collector stops tracking them at once, so a graph of tens
        # of thousands of values adds next to nothing to the collections that run while it is in use.
        self._operands = {n: tuple(graph.operands(n)) for n in self._order}
        edges = sorted([(operand, user, index) for user in self._order
                        for index, operand in enumerate(self._operands[user])])
        self._uses: dict[int, tuple[tuple[int, int], ...]] = dict.fromkeys(self._order, ())
        for operand, group in itertools.groupby(edges, key=operator.itemgetter(0)):
            self._uses[operand] = tuple([(user, index) for _, user, index in group])  # sorted, as `uses` gives
        self._output_set = set(self.outputs)

    def node(self, node_id: int) -> Node:
        return self._nodes[node_id]

    def operands(self, node_id: int) -> list[int]:
        return list(self._operands[node_id])

    def uses(self, node_id: int) -> list[tuple[int, int]]:
        return list(self._uses[node_id])

    def users(self, node_id: int) -> list[int]:
        return sorted({user for user, _ in self._uses[node_id]})

    def is_output(self, node_id: int) -> bool:
        return node_id in self._output_set

    def topological_order(self) -> list[int]:
        return list(self._order)

    def nodes(self) -> Iterator[tuple[int, Node]]:
        for node_id in self._order:
            yield node_id, self._nodes[node_id]

    def __contains__(self, node_id: int) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self._order)
