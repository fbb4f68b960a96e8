"""Fusion groups: which sets of graph nodes one kernel can compute, and what that kernel looks like.

The fusion passes mark nodes with a group id (`Node.group`); every target lowers a group to ONE
kernel. `classify_group` is the contract between them: fusion may only form groups it accepts, and
lowering must handle every group it accepts. A group is one of three kinds:

* ELEMENTWISE: elementwise and view ops (plus splat constants and iotas). Every group output has the
  shape of the iteration domain; each member is computed inline at the indices its consumers need.
* REDUCTION: one or more reductions over the same axes of inputs of one shape D (the domain), with
  elementwise/view prologue ops of shape D and epilogue ops of shape D or of the reduced shape R.
  Values of shape R feed shape-D members only with the reduced axes kept (keepdims), so a kernel can
  loop over the kept axes outside and run each reduction, then the shape-D epilogue, inside.
  softmax, layernorm and rmsnorm from the prelude are each one such group.
* MATMUL: one matmul, a prologue of view ops and casts on its operands (folded into operand loads),
  and an elementwise epilogue of the matmul's output shape (bias, activation, residual, scaling)
  applied to each output element before it is stored.

Parameters are never members. A group must be convex (no path leaves it and comes back), and the
groups together must keep the *graph of kernels* acyclic: contract every group to one node (ungrouped
nodes stay alone) and no cycle may remain, since a kernel runs as a whole, after every kernel it reads
from. Convexity of each group alone is not enough: groups {a1, a2} and {b1, b2} with edges a1 -> b1
and b2 -> a2 are both convex, yet neither kernel can run first. `classify_group` judges one group;
`kernel_cycles` checks the whole grouping (the verifier runs it, the fusion passes keep it true).

Cost: `classify_group` walks only the members, their edges, and (for convexity) the nodes placed
between the members in a topological order of the graph; give it `index` (node -> position in one
`graph.topological_order()`) when classifying many groups of one graph, so the order is computed once.
`classify_convex` skips the convexity search and the sort, for callers that know both (the fusion
passes). `kernels_acyclic` and `kernel_cycles` are linear in the size of the graph.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import AbstractSet, Callable, Collection, Hashable, Mapping

import networkx as nx

from ir import ops
from ir.graph import Graph


class GroupKind(enum.Enum):
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    MATMUL = "matmul"

    def __str__(self) -> str:
        return self.value


class GroupError(Exception):
    """The nodes cannot form one group; the message says why in terms a user of --explain-fusion reads."""


@dataclass(frozen=True)
class GroupInfo:
    kind: GroupKind
    members: tuple[int, ...]  # topological order
    inputs: tuple[int, ...]  # outside nodes the group reads, in order of first use
    outputs: tuple[int, ...]  # members whose values leave the group (used outside, or program outputs)
    domain: tuple[int, ...]  # ELEMENTWISE/MATMUL: the output shape; REDUCTION: the shape reduced
    reduce_axes: tuple[int, ...] = ()  # REDUCTION: the axes of `domain` being reduced
    anchor: int | None = None  # MATMUL: the matmul node; REDUCTION: the first reduction


def _allowed_inline(op: str) -> bool:
    return ops.in_group(op, ops.ELEMENTWISE) or ops.in_group(op, ops.VIEW) or op in ("constant", "iota")


_MATMUL, _REDUCTION, _INLINE, _OTHER = range(4)
_ROLES: dict[str, int] = {}  # op name -> its role in a group; the op table is fixed once ir.ops is imported


def _learn_role(op: str) -> int:
    """What `op` can be in a group (the matmul, a reduction, an inline op, or nothing), remembered in
    `_ROLES` so `_classify`, which asks it of every member of every candidate group, looks it up once."""
    role = _ROLES[op] = (_MATMUL if ops.in_group(op, ops.MATMUL) else _REDUCTION if ops.in_group(op, ops.REDUCTION)
                         else _INLINE if _allowed_inline(op) else _OTHER)
    return role


# Grouping is asked about small neighbourhoods many times over (the fusion passes classify every
# candidate group), so its inner loops read the dicts networkx stores a graph's adjacency in (`_succ`,
# `_pred`: node -> {neighbour: {edge key: data}}, what its views wrap) instead of the views, which
# cost several times more per access. They are only read, never changed.


def successors_of(graph: Graph) -> Mapping[int, Mapping[int, Mapping]]:
    """Node -> {consumer: {operand index: edge data}} (read only)."""
    return graph.nx._succ


def predecessors_of(graph: Graph) -> Mapping[int, Mapping[int, Mapping]]:
    """Node -> {operand: {operand index: edge data}} (read only)."""
    return graph.nx._pred


def operands_of(graph: Graph, node: int) -> list[int]:
    """`graph.operands(node)` (kept for the other adjacency readers' callers)."""
    return graph.operands(node)


def users_of(graph: Graph, node: int) -> list[int]:
    """`graph.users(node)` (distinct consumers in id order), read from the adjacency dicts."""
    return sorted(graph.nx._succ[node])


def uses_of(graph: Graph, node: int) -> list[tuple[int, int]]:
    """`graph.uses(node)` ((consumer, operand index) for every use), read from the adjacency dicts."""
    return sorted((user, key) for user, keys in graph.nx._succ[node].items() for key in keys)


def uses_in(graph: Graph, node: int, members: AbstractSet[int]) -> list[tuple[int, int]]:
    """The uses of `node` by `members`, as `uses_of` lists them (without sorting every other use of a
    value that many kernels read)."""
    return sorted((user, key) for user, keys in graph.nx._succ[node].items() if user in members for key in keys)


def topological_index(graph: Graph) -> dict[int, int]:
    """Node -> its position in `graph.topological_order()` (the printer's order)."""
    return {node: position for position, node in enumerate(graph.topological_order())}


def group_boundary(graph: Graph, members: set[int],
                   index: Mapping[int, int] | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(inputs, outputs) of a member set, both in a deterministic order (members in topological
    order, `index` as in `classify_group`)."""
    index = index if index is not None else topological_index(graph)
    return _boundary(graph, members, tuple(sorted(members, key=index.__getitem__)), set(graph.outputs))


def _boundary(graph: Graph, members: set[int], order: tuple[int, ...], returned: AbstractSet[int],
              with_inputs: bool = True) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(inputs, outputs) as `group_boundary` gives them; without inputs (empty) for `group_kind`."""
    pred, succ = graph.nx._pred, graph.nx._succ
    inputs: dict[int, None] = {}
    outputs: list[int] = []
    for node in order:
        if with_inputs:
            sources = pred[node] if len(pred[node]) < 2 else operands_of(graph, node)  # one source: no order
            for operand in sources:
                if operand not in members:
                    inputs.setdefault(operand)
        if node in returned or not members.issuperset(succ[node]):
            outputs.append(node)
    return tuple(inputs), tuple(outputs)


def check_convex(graph: Graph, members: set[int], index: Mapping[int, int] | None = None) -> None:
    """Raise GroupError if some path leaves `members` and re-enters it.

    Every node on such a path lies between two members in any topological order, so the search
    never goes past the last member in `index` (node -> topological position; computed when absent).
    """
    index = index if index is not None else topological_index(graph)
    last = max(index[node] for node in members)
    frontier = [user for node in members for user in graph.users(node) if user not in members and index[user] < last]
    seen: set[int] = set()
    while frontier:
        node = frontier.pop()
        if node in seen:
            continue
        seen.add(node)
        for user in graph.users(node):
            if user in members:
                raise GroupError(f"fusing would create a cycle: %{node} ({graph.node(node).op}) depends on the "
                                 f"group and the group depends on it")
            if index[user] < last:
                frontier.append(user)


def classify_group(graph: Graph, members: set[int] | list[int] | tuple[int, ...],
                   index: Mapping[int, int] | None = None) -> GroupInfo:
    """What kind of kernel `members` form, or GroupError saying why they cannot form one.

    `index` (node -> position in `graph.topological_order()`, see `topological_index`) saves sorting
    the whole graph on every call; pass the same one for every group of a graph.
    """
    members = set(members)
    _check_members(graph, members)
    index = index if index is not None else topological_index(graph)
    check_convex(graph, members, index)
    return _classify(graph, members, tuple(sorted(members, key=index.__getitem__)), set(graph.outputs))


def classify_convex(graph: Graph, members: set[int], order: tuple[int, ...] | list[int],
                    outputs: AbstractSet[int] | None = None) -> GroupInfo:
    """`classify_group` for members already known to be convex, listed in `order` (a topological
    order of them): for callers that keep the graph of kernels acyclic themselves, as the fusion
    passes do. Costs the members and their edges only; `outputs` is `graph.outputs` as a set, for
    callers that classify many groups of one graph."""
    members = set(members)
    _check_members(graph, members)
    return _classify(graph, members, tuple(order), outputs if outputs is not None else set(graph.outputs))


def group_kind(graph: Graph, members: set[int], outputs: AbstractSet[int]) -> GroupKind:
    """The kind `classify_convex` gives `members` (GroupError when it refuses them), for callers that
    only ask whether and which, and know the members convex (the fusion passes' checks). Whether the
    members form a group, and its kind, do not depend on the order they are listed in (every rule is
    about one member, or asks that all members agree), so this skips ordering them and collecting the
    group's inputs; only which member a refusal names may differ from `classify_convex`'s."""
    _check_members(graph, members)
    return _classify(graph, members, tuple(members), outputs, with_inputs=False).kind


def _check_members(graph: Graph, members: set[int]) -> None:
    if not members:
        raise GroupError("a group needs at least one node")
    nodes = graph.nx._node
    for node in members:
        if node not in nodes:
            raise GroupError(f"%{node} is not in the graph")
        if nodes[node]["node"].op == "param":
            raise GroupError(f"%{node} is a parameter; parameters are never fused")


def _classify(graph: Graph, members: set[int], order: tuple[int, ...], returned: AbstractSet[int],
              with_inputs: bool = True) -> GroupInfo:
    inputs, outputs = _boundary(graph, members, order, returned, with_inputs)
    nodes = graph.nx._node
    matmuls: list[int] = []
    reductions: list[int] = []
    for node in order:
        op = nodes[node]["node"].op
        role = _ROLES.get(op)
        if role is None:
            role = _learn_role(op)
        if role == _MATMUL:
            matmuls.append(node)
        elif role == _REDUCTION:
            reductions.append(node)
        elif role == _OTHER:
            raise GroupError(f"%{node} ({op}) cannot be fused: only elementwise, view, "
                             "reduction and matmul ops can")
    if matmuls:
        return _classify_matmul(graph, members, order, inputs, outputs, matmuls, reductions, returned)
    if reductions:
        return _classify_reduction(graph, members, order, inputs, outputs, reductions)
    if not outputs:
        raise GroupError("the group's values are used nowhere (dead nodes); remove them before fusing")
    domain = graph.node(outputs[0]).type.shape
    for node in outputs:
        if graph.node(node).type.shape != domain:
            raise GroupError(f"the group's results have different shapes ({graph.node(node).type} and "
                             f"{graph.node(outputs[0]).type}); an elementwise kernel has one iteration space")
    return GroupInfo(GroupKind.ELEMENTWISE, order, inputs, outputs, domain)


def _reach_within(graph: Graph, start: int, members: set[int], forward: bool) -> set[int]:
    """Members reachable from `start` (forward) or reaching it (backward) along member-only paths; for
    a convex set these are all its members among the descendants (ancestors) of `start`."""
    step = graph.nx._succ if forward else graph.nx._pred
    found: set[int] = set()
    frontier = [start]
    while frontier:
        for neighbour in step[frontier.pop()]:
            if neighbour in members and neighbour not in found:
                found.add(neighbour)
                frontier.append(neighbour)
    return found


def _classify_matmul(graph: Graph, members: set[int], order: tuple[int, ...], inputs: tuple[int, ...],
                     outputs: tuple[int, ...], matmuls: list[int], reductions: list[int],
                     returned: AbstractSet[int]) -> GroupInfo:
    if len(matmuls) > 1:
        raise GroupError("a group holds at most one matmul")
    if reductions:
        raise GroupError("a matmul and a reduction cannot share a kernel")
    anchor = matmuls[0]
    domain = graph.node(anchor).type.shape
    downstream = _reach_within(graph, anchor, members, forward=True)  # convex: no path leaves the group
    upstream = _reach_within(graph, anchor, members, forward=False)
    for node in order:
        if node == anchor:
            continue
        op = graph.node(node).op
        if node in downstream:
            if not ops.in_group(op, ops.ELEMENTWISE) or graph.node(node).type.shape != domain:
                raise GroupError(f"%{node} ({op}, {graph.node(node).type}) after the matmul is not an "
                                 f"elementwise op of the matmul's output shape {list(domain)}")
        elif not members.issuperset(graph.nx._succ[node]) or node in returned:
            raise GroupError(f"%{node} ({op}) feeds the matmul and is also used outside the group")
        elif not (ops.in_group(op, ops.VIEW) or op in ("cast", "constant", "iota")
                  or ops.in_group(op, ops.ELEMENTWISE) and node not in upstream):
            raise GroupError(f"%{node} ({op}) before the matmul would be recomputed for every product; only "
                             "views and casts fold into the matmul's operand loads")
    for node in outputs:
        if node != anchor and node not in downstream:
            raise GroupError(f"%{node} is a result of the group but not of the matmul's epilogue")
        if graph.node(node).type.shape != domain:
            raise GroupError(f"result %{node} has shape {list(graph.node(node).type.shape)}, not the matmul's "
                             f"{list(domain)}")
    return GroupInfo(GroupKind.MATMUL, order, inputs, outputs, domain, anchor=anchor)


def _classify_reduction(graph: Graph, members: set[int], order: tuple[int, ...], inputs: tuple[int, ...],
                        outputs: tuple[int, ...], reductions: list[int]) -> GroupInfo:
    first = graph.node(reductions[0])
    reduction_set = set(reductions)
    domain = graph.node(operands_of(graph, reductions[0])[0]).type.shape
    axes = first.attr("axes")
    for node in reductions[1:]:
        reduction = graph.node(node)
        if graph.node(operands_of(graph, node)[0]).type.shape != domain or reduction.attr("axes") != axes:
            raise GroupError(f"%{node} reduces axes {list(reduction.attr('axes'))} of "
                             f"{graph.node(operands_of(graph, node)[0]).type}, but the group reduces axes "
                             f"{list(axes)} of shape {list(domain)}")
    kept = tuple(1 if i in axes else d for i, d in enumerate(domain))
    dropped = tuple(d for i, d in enumerate(domain) if i not in axes)
    reduced_shapes = {kept, dropped}
    reduced_nodes: set[int] = set()
    for node in order:
        shape = graph.node(node).type.shape
        if node in reduction_set or (shape in reduced_shapes and shape != domain):
            reduced_nodes.add(node)
        elif shape != domain:
            raise GroupError(f"%{node} ({graph.node(node).op}) has shape {list(shape)}, neither the reduced "
                             f"domain {list(domain)} nor the reduction's result {list(kept)}")
    for node in order:
        if node in reduced_nodes:
            continue
        for operand in operands_of(graph, node):
            if operand in reduced_nodes and graph.node(operand).type.shape != kept:
                raise GroupError(f"%{node} reads the reduced value %{operand} of shape "
                                 f"{list(graph.node(operand).type.shape)}; it must keep the reduced axes "
                                 f"(shape {list(kept)}) to line up with the domain")
    return GroupInfo(GroupKind.REDUCTION, order, inputs, outputs, domain, tuple(axes), anchor=reductions[0])


def assign_groups(graph: Graph, groups: list[set[int]]) -> Graph:
    """A copy of `graph` whose nodes carry the given groups (ids 0, 1, ...); every group is classified
    first, and the graph of kernels must stay acyclic, so an illegal grouping raises GroupError and
    changes nothing."""
    index = topological_index(graph)
    for members in groups:
        classify_group(graph, members, index)
    result = graph.copy()
    for node_id, _ in list(result.nodes()):
        result.set_node(node_id, result.node(node_id).replace(group=None))
    for group_id, members in enumerate(groups):
        for node_id in members:
            result.set_node(node_id, result.node(node_id).replace(group=group_id))
    cycles = kernel_cycles(result)
    if cycles:
        raise GroupError(f"the groups make the graph of kernels cyclic: {describe_cycle(result, cycles[0])}")
    return result


Kernel = Hashable  # ("group", id) for a fusion group, the node id for an ungrouped node


def kernel_of(graph: Graph, node: int, contract: Collection[int] | None = None) -> Kernel:
    """The kernel `node` runs in: its group (when `contract` is None or holds the group's id), or itself."""
    group = graph.node(node).group
    if group is not None and (contract is None or group in contract):
        return ("group", group)
    return node


def kernel_graph(graph: Graph, contract: Collection[int] | None = None) -> nx.DiGraph:
    """The graph of kernels: each fusion group contracted to one node (only the groups in `contract`,
    when given), ungrouped nodes alone. Each edge keeps, as `via`, one graph edge (producer, consumer)
    that crosses between the two kernels. Linear in the size of the graph."""
    kernels = {node: kernel_of(graph, node, contract) for node in graph.nx.nodes}
    quotient = nx.DiGraph()
    quotient.add_nodes_from(dict.fromkeys(kernels.values()))
    for source, target in graph.nx.edges():
        a, b = kernels[source], kernels[target]
        if a != b and not quotient.has_edge(a, b):
            quotient.add_edge(a, b, via=(source, target))
    return quotient


def kernels_acyclic(graph: Graph) -> bool:
    """Whether the graph of kernels (see `kernel_graph`) has no cycle: Kahn's algorithm over the
    kernels, in time linear in the size of the graph."""
    nodes, succ = graph.nx._node, graph.nx._succ
    kernel = {node: ("group", data["node"].group) if data["node"].group is not None else node
              for node, data in nodes.items()}
    targets: dict[Kernel, list[Kernel]] = {}
    waiting = dict.fromkeys(kernel.values(), 0)
    for source, users in succ.items():
        for user in users:
            if kernel[source] != kernel[user]:
                targets.setdefault(kernel[source], []).append(kernel[user])
                waiting[kernel[user]] += 1
    ready = [k for k, count in waiting.items() if count == 0]
    placed = 0
    while ready:
        done = ready.pop()
        placed += 1
        for target in targets.get(done, ()):
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    return placed == len(waiting)


def kernel_cycles(graph: Graph, contract: Collection[int] | None = None) -> list[list[tuple[int, int]]]:
    """One cycle of the graph of kernels (see `kernel_graph`) per strongly connected set of kernels, as
    the graph edges (producer, consumer) crossing from each kernel to the next; empty when acyclic.
    Linear in the size of the graph."""
    if contract is None and kernels_acyclic(graph):
        return []
    quotient = kernel_graph(graph, contract)
    if nx.is_directed_acyclic_graph(quotient):
        return []
    cycles = []
    for component in nx.strongly_connected_components(quotient):
        if len(component) < 2:
            continue
        edges = nx.find_cycle(quotient.subgraph(component))
        cycles.append([quotient.edges[a, b]["via"] for a, b in edges])
    return sorted(cycles, key=lambda cycle: min(cycle))


def describe_cycle(graph: Graph, cycle: list[tuple[int, int]], label: Callable[[int], str] | None = None) -> str:
    """`%3 (add) in group 0 -> %5 (exp) in group 1, ...`: the crossing edges of a kernel cycle."""
    label = label if label is not None else (lambda node: f"%{node} ({graph.node(node).op})")

    def where(node: int) -> str:
        group = graph.node(node).group
        return label(node) + (f" in group {group}" if group is not None else "")

    return ", ".join(f"{where(source)} -> {where(target)}" for source, target in cycle)
