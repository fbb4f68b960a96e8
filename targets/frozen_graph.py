"""A read-only graph with every lookup precomputed, for the pricing code's many queries.

`ir.graph.Graph` answers `operands(n)` from networkx's edge dicts and `topological_order()` by a sort on
every call; pricing a 70B model asks hundreds of thousands of times (the LPU's plan and partition, the
wafer's regions, the shared counts). Pricing never edits the graph, so one pass over it gives the same
answers from dictionaries. Inside `targets.counts.shared_counts()` one frozen graph per graph is shared by
the counter and every target (`targets.counts.frozen_graph`), under the same rule as the shared counts:
nothing changes the graph inside the block.

Read-only by contract: `order`, `payloads` (node -> `Node`) and `operand_lists` (node -> operand tuple)
are the precomputed tables themselves, for loops that read every node; the methods copy what they return.
"""

from __future__ import annotations

import functools
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
        self.order = graph.topological_order()
        self.payloads = {n: graph.node(n) for n in self.order}
        # Tuples of ints, not lists: the garbage collector stops tracking them at once, so a graph of tens
        # of thousands of values adds next to nothing to the collections that run while it is in use.
        self.operand_lists = {n: tuple(graph.operands(n)) for n in self.order}
        self._output_set = set(self.outputs)

    @functools.cached_property
    def _uses(self) -> dict[int, tuple[tuple[int, int], ...]]:
        """Node -> (user, operand index) for every use, sorted (made when first asked: the counts do not ask)."""
        found: dict[int, list[tuple[int, int]]] = {n: [] for n in self.order}
        for user in sorted(self.order):  # users by id, each one's operands by index: sorted, as `uses` gives
            for index, operand in enumerate(self.operand_lists[user]):
                found[operand].append((user, index))
        return {n: tuple(uses) for n, uses in found.items()}

    def node(self, node_id: int) -> Node:
        return self.payloads[node_id]

    def operands(self, node_id: int) -> list[int]:
        return list(self.operand_lists[node_id])

    def uses(self, node_id: int) -> list[tuple[int, int]]:
        return list(self._uses[node_id])

    def users(self, node_id: int) -> list[int]:
        return sorted({user for user, _ in self._uses[node_id]})

    def is_output(self, node_id: int) -> bool:
        return node_id in self._output_set

    def topological_order(self) -> list[int]:
        return list(self.order)

    def nodes(self) -> Iterator[tuple[int, Node]]:
        for node_id in self.order:
            yield node_id, self.payloads[node_id]

    def __contains__(self, node_id: int) -> bool:
        return node_id in self.payloads

    def __len__(self) -> int:
        return len(self.order)
