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

import heapq
import math
from dataclasses import dataclass
from functools import cached_property

import networkx as nx

from ir import ops
from ir.graph import Graph, Node
from ir.groups import GroupError
from targets.counts import frozen_graph

MATMUL = "matmul"
MAP = "map"
_FOLDED_SOURCES = ("constant", "iota")
# The op table is complete once `ir.ops` is imported (ops register there only): the groups a pass over
# thousands of nodes asks about, read once as sets.
VIEW_OPS = frozenset(ops.ops_in_group(ops.VIEW))
MATMUL_OPS = frozenset(ops.ops_in_group(ops.MATMUL))
REDUCTION_OPS = frozenset(ops.ops_in_group(ops.REDUCTION))
SHAPE_OPS = frozenset(ops.ops_in_group(ops.SHAPE))


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
    # node -> its operands in order (read once: Graph.operands sorts edges); tuples of ints, which the
    # garbage collector stops tracking, so thousands of them do not push it into full collections
    operands: dict[int, tuple[int, ...]]
    payloads: dict[int, Node]  # node -> its payload (read once: `Graph.node` per lookup is two dict reads)

    def operands_of(self, node: int) -> tuple[int, ...]:
        return self.operands[node]

    def producer(self, node: int) -> Region | None:
        index = self.region_of.get(node)
        return None if index is None else self.regions[index]

    def consumers(self, node: int) -> list[Region]:
        return [r for r in self.regions if node in r.sources]


def _foldable(op: str) -> bool:
    return op in VIEW_OPS or op in _FOLDED_SOURCES


def partition(graph: Graph) -> Partition:
    """The regions of `graph`, in a topological order of the region graph.

    A group of views only (the fusion passes may group `k_cache[l]` reshaped) computes nothing: it is
    folded like ungrouped views, unless one of its members is a program output.

    One pass over the nodes in topological order reads each payload and operand list once (an 80-layer
    model has thousands of nodes), from the graph's precomputed lookups (`targets.counts.frozen_graph`,
    shared with the counts), and sorts them into groups, folded nodes and single operations; each region
    is then built once, with its final number."""
    frozen = frozen_graph(graph)  # read-only, shared with the counts and the other targets
    payloads, operands = frozen.payloads, frozen.operand_lists
    outputs = set(graph.outputs)
    order: dict[int, int] = {}
    folded: set[int] = set()
    groups: dict[int, list[int]] = {}  # as `Graph.groups`: members in topological order
    singles: list[int] = []  # operations outside every group, not folded
    leave = set(outputs)  # values that leave their group: program outputs, and values read outside it
    for position, node in enumerate(frozen.order):
        payload = payloads[node]
        reads = operands[node]
        order[node] = position
        group_id = payload.group
        for operand in reads:  # the users outside its group `Graph.users` would list, seen from the user
            if payloads[operand].group not in (None, group_id):
                leave.add(operand)
        if group_id is not None:
            groups.setdefault(group_id, []).append(node)
        elif _folds(node, payload, outputs):
            folded.add(node)
        elif payload.op != "param":
            singles.append(node)
    units: list[tuple[tuple[int, ...], int | None]] = []  # tuples of ints: the collector soon stops tracking them
    for group_id in sorted(groups):
        members = tuple(groups.pop(group_id))
        if all(_foldable(payloads[n].op) for n in members) and not outputs & set(members):
            folded.update(members)
        else:
            _check_kinds(payloads, members, group_id)
            units.append((members, group_id))
    units += [((node,), None) for node in singles]
    unit_of = {node: index for index, (members, _) in enumerate(units) for node in members}
    sources = [_sources(operands, members, folded) for members, _ in units]
    regions = []
    number: dict[int, int] = {}  # unit -> its region's id
    for unit in _topological(units, sources, unit_of, order):
        members, group_id = units[unit]
        number[unit] = len(regions)
        regions.append(_classify(graph, payloads, leave, members, group_id, order, len(regions), sources[unit]))
    region_of = {node: number[unit] for node, unit in unit_of.items()}
    return Partition(graph, regions, region_of, order, folded, operands, payloads)


def _folds(node: int, payload: Node, outputs: set[int]) -> bool:
    """Whether `node` (its payload at hand) is folded into its consumers: an ungrouped view, constant or
    iota that is not an output."""
    if payload.group is not None or node in outputs or payload.op == "param":
        return False
    return _foldable(payload.op)


def _classify(graph: Graph, payloads: dict[int, Node], leave: set[int], members: tuple[int, ...],
              group_id: int | None, order: dict[int, int], index: int, sources: tuple[int, ...]) -> Region:
    """The region of a fusion group. The fusion passes formed the group under `ir.groups`' contract
    (`classify_group`); this reads its kind, domain and outputs from the members in one pass, without
    re-checking the contract (which walks the whole graph per group: minutes for an 80-layer model).
    `leave`: the nodes whose values leave their group (program outputs, or read by a node outside it)."""
    members = sorted(members, key=order.__getitem__)
    if group_id is None:
        return _single(graph, payloads, members[0], index, sources)
    leaving = tuple(n for n in members if n in leave)
    matmuls = [n for n in members if payloads[n].op in MATMUL_OPS]
    reductions = [n for n in members if payloads[n].op in REDUCTION_OPS]
    label = _label(payloads, members)
    if matmuls:
        anchor = matmuls[0]
        return Region(index, MATMUL, tuple(members), leaving, sources, payloads[anchor].type.shape,
                      anchor=anchor, group=group_id, label=label)
    if reductions:
        anchor = reductions[0]
        domain = payloads[graph.operands(anchor)[0]].type.shape
        return Region(index, MAP, tuple(members), leaving, sources, domain, tuple(payloads[anchor].attr("axes")),
                      anchor=anchor, group=group_id, label=label)
    return Region(index, MAP, tuple(members), leaving, sources, payloads[leaving[0]].type.shape, group=group_id,
                  label=label)


def _check_kinds(payloads: dict[int, Node], members: tuple[int, ...], group_id: int) -> None:
    """A group is one region: at most one matmul, and never a matmul with a reduction."""
    matmuls = sum(1 for n in members if payloads[n].op in MATMUL_OPS)
    reductions = sum(1 for n in members if payloads[n].op in REDUCTION_OPS)
    if matmuls > 1 or (matmuls and reductions):
        raise GroupError(f"fusion group {group_id} mixes {matmuls} matmul(s) and {reductions} "
                         "reduction(s): it cannot be one region")


def _single(graph: Graph, payloads: dict[int, Node], node: int, index: int, sources: tuple[int, ...]) -> Region:
    """The region of one operation outside every group."""
    payload = payloads[node]
    if payload.op in MATMUL_OPS:
        return Region(index, MATMUL, (node,), (node,), sources, payload.type.shape, anchor=node, label=payload.op)
    if payload.op in REDUCTION_OPS:
        operand = payloads[graph.operands(node)[0]].type.shape
        return Region(index, MAP, (node,), (node,), sources, operand, tuple(payload.attr("axes")), anchor=node,
                      label=payload.op)
    return Region(index, MAP, (node,), (node,), sources, payload.type.shape, label=payload.op)


def _label(payloads: dict[int, Node], members: list[int]) -> str:
    names = [payloads[n].op for n in members if not _foldable(payloads[n].op)]
    if not names:
        names = [payloads[n].op for n in members]
    text = "+".join(dict.fromkeys(names))
    return text if len(text) <= 48 else text[:45] + "..."


def _sources(operands: dict[int, tuple[int, ...]], members: tuple[int, ...], folded: set[int]) -> tuple[int, ...]:
    """The materialised values the members read, in first-use order, looking through folded nodes."""
    member_set = set(members)
    found: list[int] = []
    seen: set[int] = set()
    stack = [o for m in members for o in operands[m] if o not in member_set]
    stack.reverse()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in folded:
            stack.extend(reversed(operands[node]))
        elif node not in member_set:
            found.append(node)
    return tuple(found)


def _topological(units: list[tuple[tuple[int, ...], int | None]], sources: list[tuple[int, ...]],
                 unit_of: dict[int, int], order: dict[int, int]) -> list[int]:
    """The units in the order of `networkx.lexicographical_topological_sort` of the region graph keyed by
    each unit's first member: of the units whose producers are all placed, the one that starts earliest
    (the keys are distinct, since units share no member). Kahn's algorithm on a heap, without building a
    networkx graph."""
    first = [min(order[m] for m in members) for members, _ in units]
    users: list[set[int]] = [set() for _ in units]
    waiting = [0] * len(units)  # distinct producer units not placed yet
    for unit, read in enumerate(sources):
        producers = {unit_of[source] for source in read if source in unit_of}
        waiting[unit] = len(producers)
        for producer in producers:
            users[producer].add(unit)
    ready = [(first[unit], unit) for unit in range(len(units)) if not waiting[unit]]
    heapq.heapify(ready)
    placed = []
    while ready:
        _, unit = heapq.heappop(ready)
        placed.append(unit)
        for user in users[unit]:
            waiting[user] -= 1
            if not waiting[user]:
                heapq.heappush(ready, (first[user], user))
    if len(placed) != len(units):
        raise nx.NetworkXUnfeasible("Graph contains a cycle or graph changed during iteration")
    return placed


def is_weight(graph: Graph, node: int) -> bool:
    payload = graph.node(node)
    return payload.op == "param" and bool(payload.attr("weight"))
