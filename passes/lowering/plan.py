"""Which kernels a graph becomes, in which order, and which values live in global buffers.

* A *unit* is what one kernel computes: the members of one fusion group (`Node.group`), or one
  ungrouped node. Parameters are program inputs, never units. Constants and iotas that are not
  program outputs are no unit at all: every kernel that reads them computes them inline.
* Only live nodes (those an output depends on) are lowered; dead members of a group are ignored.
* A live value is *materialised* (gets a global buffer) when it is a program output, or when a node of
  another unit reads it and it is not a constant or iota. Everything else stays inside its kernel.
* Kernels run in a topological order of the unit graph; a grouping whose units depend on each other
  in a cycle cannot be scheduled and is reported as a `LoweringError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from compiler.diagnostics import NicheError
from ir.graph import Graph
from ir.loops import Buffer
from passes.lowering.scalar_ops import INLINE_SOURCES
from passes.lowering.spec import NameGen


class LoweringError(NicheError):
    """The graph cannot be lowered as grouped (an illegal or cyclic fusion grouping)."""


@dataclass(frozen=True)
class Unit:
    """The nodes one kernel computes: `members` (all of a group's nodes, topological order) of which
    `live` are needed; `group` is the fusion group id, or None for a single ungrouped node."""

    members: tuple[int, ...]
    live: tuple[int, ...]
    group: int | None


def live_nodes(graph: Graph) -> set[int]:
    """The nodes some program output depends on (outputs included)."""
    live = set(graph.outputs)
    for output in graph.outputs:
        live |= nx.ancestors(graph.nx, output)
    return live


def plan_units(graph: Graph, split_groups: set[int] = frozenset()) -> list[Unit]:
    """The kernels' units in call order. Groups in `split_groups` are lowered one node per kernel."""
    live = live_nodes(graph)
    order = graph.topological_order()
    position = {node: i for i, node in enumerate(order)}
    groups: dict[int, list[int]] = {}
    singles: list[int] = []
    for node in order:
        payload = graph.node(node)
        if payload.op == "param":
            continue
        if payload.group is not None and payload.group not in split_groups:
            groups.setdefault(payload.group, []).append(node)
        elif node in live and (payload.op not in INLINE_SOURCES or graph.is_output(node)):
            singles.append(node)
    units = [Unit((node,), (node,), None) for node in singles]
    for group, members in groups.items():
        needed = tuple(n for n in members if n in live)
        if any(graph.node(n).op not in INLINE_SOURCES or graph.is_output(n) for n in needed):
            units.append(Unit(tuple(members), needed, group))
    return _ordered(graph, units, position)


def _ordered(graph: Graph, units: list[Unit], position: dict[int, int]) -> list[Unit]:
    owner = {node: index for index, unit in enumerate(units) for node in unit.live}
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(units)))
    for index, unit in enumerate(units):
        for node in unit.live:
            for operand in graph.operands(node):
                if graph.node(operand).op in INLINE_SOURCES:  # read inline, never from its buffer
                    continue
                source = owner.get(operand)
                if source is not None and source != index:
                    dag.add_edge(source, index)
    try:
        ordered = list(nx.lexicographical_topological_sort(dag, key=lambda i: position[units[i].live[0]]))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(dag)
        names = " -> ".join(_unit_name(graph, units[a]) for a, _ in cycle)
        raise LoweringError(f"the fusion groups depend on each other in a cycle ({names}); no kernel order "
                            "exists") from None
    return [units[i] for i in ordered]


def _unit_name(graph: Graph, unit: Unit) -> str:
    if unit.group is not None:
        return f"group {unit.group}"
    return f"%{unit.members[0]} ({graph.node(unit.members[0]).op})"


def materialized(graph: Graph, units: list[Unit]) -> list[int]:
    """Live values that get a global buffer (in call order of the units that store them)."""
    owner = {node: index for index, unit in enumerate(units) for node in unit.live}
    result = []
    for index, unit in enumerate(units):
        for node in unit.live:
            if graph.is_output(node):
                result.append(node)
            elif graph.node(node).op not in INLINE_SOURCES and any(
                    owner.get(user, -1) != index for user in graph.users(node) if user in owner):
                result.append(node)
    return result


def global_buffers(graph: Graph, units: list[Unit]) -> tuple[dict[int, Buffer], list[str], NameGen]:
    """Buffers of the parameters (named after them) and of every materialised value (`out<k>` for the
    k-th program output, `t<node>` for an intermediate); also the program's output buffer names."""
    names = NameGen()
    buffers: dict[int, Buffer] = {}
    for param in graph.params:
        node = graph.node(param)
        names.reserve(node.attr("name"))
        buffers[param] = Buffer(node.attr("name"), node.type.dtype, node.type.shape)
    for node in materialized(graph, units):
        payload = graph.node(node)
        base = f"out{graph.outputs.index(node)}" if graph.is_output(node) else f"t{node}"
        buffers[node] = Buffer(names.fresh(base), payload.type.dtype, payload.type.shape)
    outputs = [buffers[node].name for node in graph.outputs]
    return buffers, outputs, names
