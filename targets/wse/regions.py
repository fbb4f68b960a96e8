"""The program cut into regions: what one rectangle of PEs computes. Reads shapes only.

A region is a fusion group (`Node.group`, formed under the contract of `ir.groups`), or a single
operation the fusion passes left alone. Views, constants and iotas outside every group are not regions:
they are folded into the index maps of the regions that read them (a view is a pure remapping of its
operand's elements, and a constant or an iota is generated where it is used), unless they are program
outputs, which a region of their own materialises. Parameters are never regions: weights are loaded
into the PEs that use them, the other inputs arrive from the host.

Two kinds: MATMUL regions (one matmul with its prologue of views and casts and its elementwise
epilogue) are laid out in 2D with the weights stationary; MAP regions (elementwise and reduction groups,
concatenations, copies) split their iteration domain over their PEs.

Regions are returned in a topological order of the region graph, which is acyclic because groups are
convex (the fusion contract).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import networkx as nx

from ir import ops
from ir.graph import Graph
from ir.groups import GroupError

MATMUL = "matmul"
MAP = "map"
_FOLDED_SOURCES = ("constant", "iota")


@dataclass(frozen=True)
class Region:
    id: int
    kind: str  # MATMUL or MAP
    members: tuple[int, ...]  # topological order
    outputs: tuple[int, ...]  # members whose values leave the region (used elsewhere or program outputs)
    sources: tuple[int, ...]  # materialised values read: parameters or other regions' outputs (views folded)
    domain: tuple[int, ...]  # MAP: the iteration domain; MATMUL: the matmul's result shape
    reduce_axes: tuple[int, ...] = ()  # MAP: axes of `domain` reduced inside the region
    anchor: int | None = None  # MATMUL: the matmul node
    group: int | None = None  # the fusion group it came from
    label: str = ""

    @cached_property
    def kept_shape(self) -> tuple[int, ...]:
        """The domain with the reduced axes kept as 1 (the shape the region's PEs split between them)."""
        return tuple(1 if i in self.reduce_axes else d for i, d in enumerate(self.domain))

    @cached_property
    def rows(self) -> int:
        """How many independent positions the region's PEs can divide (MAP regions)."""
        return math.prod(self.kept_shape)

    @property
    def reduced_size(self) -> int:
        return math.prod(self.domain[a] for a in self.reduce_axes)


@dataclass
class Partition:
    graph: Graph
    regions: list[Region]
    region_of: dict[int, int]  # member node -> region id
    order: dict[int, int]  # node -> position in the graph's topological order
    folded: set[int]  # nodes computed where they are used (views, constants, iotas)
    operands: dict[int, list[int]]  # node -> its operands in order (read once; Graph.operands sorts edges)

    def operands_of(self, node: int) -> list[int]:
        return self.operands[node]

    def producer(self, node: int) -> Region | None:
        index = self.region_of.get(node)
        return None if index is None else self.regions[index]

    def consumers(self, node: int) -> list[Region]:
        return [r for r in self.regions if node in r.sources]


def is_folded(graph: Graph, node: int, outputs: set[int]) -> bool:
    """Whether `node` is folded into its consumers (an ungrouped view, constant or iota, not an output)."""
    payload = graph.node(node)
    if payload.group is not None or node in outputs or payload.op == "param":
        return False
    return _foldable(payload.op)


def _foldable(op: str) -> bool:
    return ops.in_group(op, ops.VIEW) or op in _FOLDED_SOURCES


def partition(graph: Graph) -> Partition:
    """The regions of `graph`, in a topological order of the region graph.

    A group of views only (the fusion passes may group `k_cache[l]` reshaped) computes nothing: it is
    folded like ungrouped views, unless one of its members is a program output."""
    topological = graph.topological_order()
    order = {n: i for i, n in enumerate(topological)}
    operands = {n: graph.operands(n) for n in topological}
    outputs = set(graph.outputs)
    units: list[tuple[list[int], int | None]] = []
    folded = {n for n in graph.nx.nodes if is_folded(graph, n, outputs)}
    for group_id, members in sorted(graph.groups().items()):
        if all(_foldable(graph.node(n).op) for n in members) and not outputs & set(members):
            folded.update(members)
        else:
            units.append((members, group_id))
    for node in topological:
        payload = graph.node(node)
        if payload.group is None and payload.op != "param" and node not in folded:
            units.append(([node], None))
    region_of: dict[int, int] = {}
    raw: list[Region] = []
    for members, group_id in units:
        region = _classify(graph, members, group_id, order, len(raw))
        for node in region.members:
            region_of[node] = region.id
        raw.append(region)
    raw = [_with_sources(operands, r, folded) for r in raw]
    ordered = _topological(raw, region_of, order)
    renumber = {region.id: index for index, region in enumerate(ordered)}
    regions = [_renumbered(r, renumber[r.id]) for r in ordered]
    return Partition(graph, regions, {n: renumber[i] for n, i in region_of.items()}, order, folded, operands)


def _classify(graph: Graph, members: list[int], group_id: int | None, order: dict[int, int], index: int) -> Region:
    """The region of a fusion group. The fusion passes formed the group under `ir.groups`' contract
    (`classify_group`); this reads its kind, domain and outputs from the members in one pass, without
    re-checking the contract (which walks the whole graph per group: minutes for an 80-layer model)."""
    members = sorted(members, key=order.__getitem__)
    if group_id is None:
        return _single(graph, members[0], index)
    member_set = set(members)
    outputs = set(graph.outputs)
    leaving = tuple(n for n in members if n in outputs or any(u not in member_set for u in graph.users(n)))
    matmuls = [n for n in members if ops.in_group(graph.node(n).op, ops.MATMUL)]
    reductions = [n for n in members if ops.in_group(graph.node(n).op, ops.REDUCTION)]
    label = _label(graph, members)
    if len(matmuls) > 1 or (matmuls and reductions):
        raise GroupError(f"fusion group {group_id} mixes {len(matmuls)} matmul(s) and {len(reductions)} "
                         "reduction(s): it cannot be one region")
    if matmuls:
        anchor = matmuls[0]
        return Region(index, MATMUL, tuple(members), leaving, (), graph.node(anchor).type.shape, anchor=anchor,
                      group=group_id, label=label)
    if reductions:
        anchor = reductions[0]
        domain = graph.node(graph.operands(anchor)[0]).type.shape
        return Region(index, MAP, tuple(members), leaving, (), domain, tuple(graph.node(anchor).attr("axes")),
                      anchor=anchor, group=group_id, label=label)
    return Region(index, MAP, tuple(members), leaving, (), graph.node(leaving[0]).type.shape, group=group_id,
                  label=label)


def _single(graph: Graph, node: int, index: int) -> Region:
    """The region of one operation outside every group."""
    payload = graph.node(node)
    if ops.in_group(payload.op, ops.MATMUL):
        return Region(index, MATMUL, (node,), (node,), (), payload.type.shape, anchor=node, label=payload.op)
    if ops.in_group(payload.op, ops.REDUCTION):
        operand = graph.node(graph.operands(node)[0]).type.shape
        return Region(index, MAP, (node,), (node,), (), operand, tuple(payload.attr("axes")), anchor=node,
                      label=payload.op)
    return Region(index, MAP, (node,), (node,), (), payload.type.shape, label=payload.op)


def _label(graph: Graph, members: list[int]) -> str:
    names = [graph.node(n).op for n in members if not ops.in_group(graph.node(n).op, ops.VIEW)
             and graph.node(n).op not in _FOLDED_SOURCES]
    if not names:
        names = [graph.node(n).op for n in members]
    text = "+".join(dict.fromkeys(names))
    return text if len(text) <= 48 else text[:45] + "..."


def _with_sources(operands: dict[int, list[int]], region: Region, folded: set[int]) -> Region:
    members = set(region.members)
    found: list[int] = []
    seen: set[int] = set()
    stack = [o for m in region.members for o in operands[m] if o not in members]
    stack.reverse()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in folded:
            stack.extend(reversed(operands[node]))
        elif node not in members:
            found.append(node)
    return Region(region.id, region.kind, region.members, region.outputs, tuple(found), region.domain,
                  region.reduce_axes, region.anchor, region.group, region.label)


def _topological(regions: list[Region], region_of: dict[int, int], order: dict[int, int]) -> list[Region]:
    dag = nx.DiGraph()
    for region in regions:
        dag.add_node(region.id)
        for source in region.sources:
            if source in region_of:
                dag.add_edge(region_of[source], region.id)
    first = {r.id: min(order[m] for m in r.members) for r in regions}
    by_id = {r.id: r for r in regions}
    return [by_id[i] for i in nx.lexicographical_topological_sort(dag, key=first.__getitem__)]


def _renumbered(region: Region, index: int) -> Region:
    return Region(index, region.kind, region.members, region.outputs, region.sources, region.domain,
                  region.reduce_axes, region.anchor, region.group, region.label)


def is_weight(graph: Graph, node: int) -> bool:
    payload = graph.node(node)
    return payload.op == "param" and bool(payload.attr("weight"))
