"""A topological order of the graph of kernels, kept up to date while the fusion passes merge kernels.

The fusion engine (`passes.fusion_engine`) asks, for every candidate pair, whether merging would let a
path leave the group and come back through other kernels (`passes.fusion_common.reentry`). Searching
the whole downstream graph for that makes a pass quadratic in the size of the program. With a
topological order of the graph of kernels the search is bounded: every kernel on such a path lies
after the group's first kernel and before the last kernel that feeds the group, so positions past that
one need not be visited (`limit`). The bound does not change what the search finds, only how far it
looks: a node placed after the limit cannot reach the group at all.

`KernelOrder` keeps one position per node: the position of its kernel (a fusion group being built, or
the node alone), unique per kernel. Merging two kernels K1 < K2 that have no path between them through
other kernels (the engine checks that first) reorders only the window between them, as Pearce and
Kelly's dynamic topological sort does for an inserted edge: the kernels after K1 that K1 reaches (F)
and those before K2 that reach K2 (B) are rearranged into the positions they held, B first, then the
merged kernel, then F. When F or B is empty the merged kernel simply takes K2's or K1's position. Each
step costs the kernels inside the window, not the graph.

Copies that join a group (`passes.fusion_recompute`) take the group's position: a copy reads only what
the value it copies reads, which lies before that value's kernel and so before the group. Removing
edges never invalidates an order.

`visits` counts the nodes the searches walk; tests check that it grows linearly with the program.
"""

from __future__ import annotations

import heapq
from typing import Callable, Iterable

from ir.graph import Graph
from ir.groups import predecessors_of, successors_of

Block = Callable[[int], set[int]]  # node -> every node of its kernel


class KernelOrder:
    """Positions of kernels in a topological order of the graph of kernels (see the module docstring).

    `order` is a topological order of `graph`; `block(node)` the nodes of `node`'s kernel. When the graph
    of kernels it is given is cyclic (an invalid input), there is no such order: every bound is then
    None and the searches are not bounded, which is always correct, only slower.
    """

    def __init__(self, graph: Graph, order: list[int], block: Block) -> None:
        self.graph = graph
        self.block = block
        self.visits = 0
        self.position: dict[int, int] | None = self._initial(order)

    def _initial(self, order: list[int]) -> dict[int, int] | None:
        """Kahn's algorithm over kernels, taking the kernel whose first node comes first in `order`."""
        rank = {node: i for i, node in enumerate(order)}
        leader: dict[int, int] = {}  # node -> the first node of its kernel in `order`
        grouped = False
        for node in order:
            if node not in leader:
                members = self.block(node)
                grouped = grouped or len(members) > 1
                for member in members:
                    leader[member] = node
        if not grouped:  # every kernel one node: Kahn's algorithm taking the first in `order` gives `order`
            return rank
        succ = successors_of(self.graph)
        waiting = dict.fromkeys(set(leader.values()), 0)  # kernel -> edges (node to node) still to place
        for source, users in succ.items():
            for target in users:
                if leader[source] != leader[target]:
                    waiting[leader[target]] += 1
        ready = [(rank[k], k) for k, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        position: dict[int, int] = {}
        placed = 0
        while ready:
            _, kernel = heapq.heappop(ready)
            members = self.block(kernel)
            for member in members:
                position[member] = placed
            placed += 1
            for member in members:
                for target in succ[member]:
                    head = leader[target]
                    if head != kernel:
                        waiting[head] -= 1
                        if waiting[head] == 0:
                            heapq.heappush(ready, (rank[head], head))
        return position if placed == len(waiting) else None

    # -- bounds --------------------------------------------------------------------------------

    def limit(self, members: set[int]) -> int | None:
        """The position of the last kernel with an edge into `members` (-1: none), or None (unbounded).

        A path that leaves `members` and comes back ends in such a kernel, and positions only grow along
        a path, so a search for one need not go past this position. Members without a position (copies
        being tried out) are fine: only the nodes feeding them are looked up."""
        if self.position is None:
            return None
        last = -1
        pred = predecessors_of(self.graph)
        for member in members:
            for source in pred[member]:
                if source not in members:
                    where = self.position.get(source)
                    if where is None:
                        return None
                    last = max(last, where)
        return last

    # -- updates -------------------------------------------------------------------------------

    def place(self, nodes: Iterable[int], like: int) -> None:
        """Give new nodes that join `like`'s kernel its position."""
        if self.position is None:
            return
        for node in nodes:
            self.position[node] = self.position[like]

    def merge(self, first: set[int], second: set[int]) -> None:
        """Reposition for merging kernels `first` and `second` (no path joins them through another kernel)."""
        if self.position is None:
            return
        low, high = sorted((first, second), key=lambda kernel: self.position[next(iter(kernel))])
        start, end = self.position[next(iter(low))], self.position[next(iter(high))]
        after = self._reach(low, high, lambda where: where < end, forward=True)
        if not after:
            self._move([low], [end])
            return
        before = self._reach(high, low, lambda where: where > start, forward=False)
        if not before:
            self._move([high], [start])
            return
        after.sort(key=self._where)
        before.sort(key=self._where)
        slots = sorted([start, end] + [self._where(k) for k in after] + [self._where(k) for k in before])
        # B at the lowest slots, F at the highest, the merged kernel in between (one slot stays free).
        self._move(before, slots[:len(before)])
        self._move([low | high], [slots[len(before)]])
        self._move(after, slots[len(slots) - len(after):])

    def _where(self, kernel: set[int]) -> int:
        return self.position[next(iter(kernel))]

    def _move(self, kernels: list[set[int]], slots: list[int]) -> None:
        for kernel, slot in zip(kernels, slots):
            for node in kernel:
                self.position[node] = slot

    def _reach(self, origin: set[int], other: set[int], inside: Callable[[int], bool], forward: bool) -> list[set[int]]:
        """Kernels reached from `origin` (forward) or reaching it (backward) through kernels whose
        positions satisfy `inside`, never through `other`."""
        step = successors_of(self.graph) if forward else predecessors_of(self.graph)
        seen = set(origin) | other
        found: list[set[int]] = []
        frontier = [origin]
        while frontier:
            kernel = frontier.pop()
            for node in kernel:
                self.visits += 1
                for neighbour in step[node]:
                    if neighbour in seen or not inside(self.position[neighbour]):
                        continue
                    reached = self.block(neighbour)
                    seen |= reached
                    found.append(reached)
                    frontier.append(reached)
        return found
