"""The graph questions the fusion engine asks for every candidate group, answered in time proportional
to the candidate instead of the program (see "Cost" in `passes.fusion_common`).

* `reentry`: does a path leave the members and come back through other kernels? Bounded by a
  `passes.fusion_order.KernelOrder`, it searches only the window before the last kernel feeding the
  members, and finds exactly the node the unbounded search finds.
* `classify_local`: `ir.groups.classify_group` judged from the members and their edges alone, legal
  once `reentry` has ruled out paths that leave and come back.
* `topological_order`, `value_names_in`: the graph's order and the printer's names from one sort.
* `remove_unused`: dead values removed with one search from all outputs.
"""

from __future__ import annotations

import heapq
from typing import AbstractSet, Callable


from ir.graph import Graph
from ir.graph_printer import format_name
from ir.groups import GroupError, GroupInfo, classify_convex, predecessors_of, successors_of
from passes.fusion_order import KernelOrder


def reentry(graph: Graph, members: set[int], blocks: Callable[[int], set[int]] | None = None,
            order: KernelOrder | None = None) -> int | None:
    """A node on a path that leaves `members` and comes back to them (None: there is none).

    With `blocks` (node -> the nodes of its kernel), paths run between kernels: reaching one node of a
    kernel reaches all of it, since a kernel runs as a whole. So `members` is convex *and* adding it as
    one kernel keeps the graph of kernels acyclic (each group being convex on its own is not enough:
    groups {a1, a2} and {b1, b2} with edges a1 -> b1 and b2 -> a2 are both convex, yet cyclic).

    With `order` (a `KernelOrder` of those kernels) the search skips every node placed after the last
    kernel that feeds `members`: no path from such a node comes back. It visits the same nodes in the
    same order otherwise, so it finds the same node, in time bounded by the window instead of the
    whole downstream graph.
    """
    limit = order.limit(members) if order is not None else None
    if limit is not None and limit < 0:
        return None  # nothing outside feeds the members
    position = order.position if limit is not None else {}  # node -> kernel position; absent: look at it
    limit = limit if limit is not None else 0
    succ = successors_of(graph)
    frontier = [u for n in members for u in succ[n] if u not in members and position.get(u, -1) <= limit]
    seen: set[int] = set()
    visits = 0
    while frontier:
        node = frontier.pop()
        if node in seen:
            continue
        block = blocks(node) if blocks is not None else {node}
        seen |= block
        visits += len(block)
        for member in block:
            for user in succ[member]:
                if user in members:
                    if order is not None:
                        order.visits += visits
                    return node
                if user not in seen and position.get(user, -1) <= limit:
                    frontier.append(user)
    if order is not None:
        order.visits += visits
    return None


def value_names_in(graph: Graph, order: list[int]) -> dict[int, str]:
    """`ir.graph_printer.value_names(graph)` from `graph.topological_order()` already at hand (`order`):
    parameters by name, other values `%0, %1, ...` in that order."""
    params = set(graph.params)
    names: dict[int, str] = {}
    number = 0
    for node in order:
        if node in params:
            names[node] = "%" + format_name(str(graph.node(node).attr("name")))
        else:
            names[node] = f"%{number}"
            number += 1
    return names


def remove_unused(graph: Graph) -> int:
    """Remove operations whose values reach no output (parameters stay), with one search from all
    outputs together; returns how many. (`Graph.remove_dead` searches once per output.)"""
    live = set(graph.outputs) | set(graph.params)
    frontier = list(live)
    pred = predecessors_of(graph)
    while frontier:
        for source in pred[frontier.pop()]:
            if source not in live:
                live.add(source)
                frontier.append(source)
    if len(live) == len(pred):  # the usual case: nothing to remove, and no list of all nodes to build
        return 0
    dead = [n for n in pred if n not in live]
    graph.nx.remove_nodes_from(dead)
    return len(dead)


def classify_local(graph: Graph, members: set[int], outputs: AbstractSet[int] | None = None) -> GroupInfo:
    """`classify_group` for the engine, in time proportional to the group instead of the whole graph.

    It judges the members with the values they read and the nodes that read them (the group's
    neighbourhood), which is enough once the engine knows that no path leaves the members and comes
    back (`reentry`, or an acyclic graph of kernels): only a node that both reads and feeds the members
    is checked here. The members are listed in the lexicographic topological order of that
    neighbourhood (`local_order`), so what it returns does not depend on the rest of the graph.
    `outputs` is `graph.outputs` as a set, when the caller keeps one.
    """
    return classify_convex(graph, members, local_order(graph, members), outputs)


def local_order(graph: Graph, members: set[int]) -> list[int]:
    """The members in the lexicographic topological order of their neighbourhood: among the members and
    outside values they read whose operands (inside the neighbourhood) are all placed, the smallest
    node id comes next. Raises GroupError when an outside node both reads and feeds the members."""
    pred, succ = predecessors_of(graph), successors_of(graph)
    # The common case, decided first: every edge into a member comes from a smaller id (the frontend
    # numbers each value after its operands), and no outside operand reads a member. Then the smallest
    # node not yet placed always has all its operands placed, so the order is simply by id.
    ascending = True
    for member in members:
        for source in pred[member]:
            if source > member or (source not in members and not members.isdisjoint(pred[source])):
                ascending = False
                break
        if not ascending:
            break
    if ascending:
        return sorted(members)
    waiting: dict[int, int] = {}
    fed_by: dict[int, list[int]] = {}  # outside node -> the members it feeds, once per edge
    ready: list[int] = []
    for member in members:
        count = 0
        for source, keys in pred[member].items():
            count += len(keys)
            if source not in members:
                fed_by.setdefault(source, []).extend([member] * len(keys))
        waiting[member] = count
        if count == 0:
            ready.append(member)
    both = [source for source in fed_by if not members.isdisjoint(pred[source])]
    if both:
        node = min(both)
        raise GroupError(f"fusing would create a cycle: %{node} ({graph.node(node).op}) depends on the group "
                         "and the group depends on it")
    ready += fed_by
    heapq.heapify(ready)
    order = []
    while ready:
        node = heapq.heappop(ready)
        if node in members:
            order.append(node)
            targets = [target for target, keys in succ[node].items() if target in members for _ in keys]
        else:
            targets = fed_by[node]
        for target in targets:
            waiting[target] -= 1
            if waiting[target] == 0:
                heapq.heappush(ready, target)
    return order
