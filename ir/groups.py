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

Parameters are never members. A group must be convex (no path leaves it and comes back), which is
what keeps the graph of groups acyclic.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

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


def group_boundary(graph: Graph, members: set[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(inputs, outputs) of a member set, both in a deterministic order."""
    order = [n for n in graph.topological_order() if n in members]
    inputs: list[int] = []
    outputs: list[int] = []
    for node in order:
        for operand in graph.operands(node):
            if operand not in members and operand not in inputs:
                inputs.append(operand)
        if graph.is_output(node) or any(user not in members for user in graph.users(node)):
            outputs.append(node)
    return tuple(inputs), tuple(outputs)


def check_convex(graph: Graph, members: set[int]) -> None:
    """Raise GroupError if some path leaves `members` and re-enters it."""
    frontier = [user for node in members for user in graph.users(node) if user not in members]
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
            frontier.append(user)


def classify_group(graph: Graph, members: set[int] | list[int] | tuple[int, ...]) -> GroupInfo:
    """What kind of kernel `members` form, or GroupError saying why they cannot form one."""
    members = set(members)
    if not members:
        raise GroupError("a group needs at least one node")
    for node in members:
        if node not in graph:
            raise GroupError(f"%{node} is not in the graph")
        if graph.node(node).op == "param":
            raise GroupError(f"%{node} is a parameter; parameters are never fused")
    check_convex(graph, members)
    order = tuple(n for n in graph.topological_order() if n in members)
    inputs, outputs = group_boundary(graph, members)
    matmuls = [n for n in order if ops.in_group(graph.node(n).op, ops.MATMUL)]
    reductions = [n for n in order if ops.in_group(graph.node(n).op, ops.REDUCTION)]
    others = [n for n in order if n not in matmuls and n not in reductions]
    for node in others:
        if not _allowed_inline(graph.node(node).op):
            raise GroupError(f"%{node} ({graph.node(node).op}) cannot be fused: only elementwise, view, "
                             "reduction and matmul ops can")
    if matmuls:
        return _classify_matmul(graph, members, order, inputs, outputs, matmuls, reductions)
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


def _classify_matmul(graph: Graph, members: set[int], order: tuple[int, ...], inputs: tuple[int, ...],
                     outputs: tuple[int, ...], matmuls: list[int], reductions: list[int]) -> GroupInfo:
    if len(matmuls) > 1:
        raise GroupError("a group holds at most one matmul")
    if reductions:
        raise GroupError("a matmul and a reduction cannot share a kernel")
    anchor = matmuls[0]
    domain = graph.node(anchor).type.shape
    downstream = nx.descendants(graph.nx, anchor) & members
    for node in order:
        if node == anchor:
            continue
        op = graph.node(node).op
        if node in downstream:
            if not ops.in_group(op, ops.ELEMENTWISE) or graph.node(node).type.shape != domain:
                raise GroupError(f"%{node} ({op}, {graph.node(node).type}) after the matmul is not an "
                                 f"elementwise op of the matmul's output shape {list(domain)}")
        elif any(user not in members for user in graph.users(node)) or graph.is_output(node):
            raise GroupError(f"%{node} ({op}) feeds the matmul and is also used outside the group")
        elif not (ops.in_group(op, ops.VIEW) or op in ("cast", "constant", "iota")
                  or ops.in_group(op, ops.ELEMENTWISE) and node not in nx.ancestors(graph.nx, anchor)):
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
    domain = graph.node(graph.operands(reductions[0])[0]).type.shape
    axes = first.attr("axes")
    for node in reductions[1:]:
        reduction = graph.node(node)
        if graph.node(graph.operands(node)[0]).type.shape != domain or reduction.attr("axes") != axes:
            raise GroupError(f"%{node} reduces axes {list(reduction.attr('axes'))} of "
                             f"{graph.node(graph.operands(node)[0]).type}, but the group reduces axes "
                             f"{list(axes)} of shape {list(domain)}")
    kept = tuple(1 if i in axes else d for i, d in enumerate(domain))
    dropped = tuple(d for i, d in enumerate(domain) if i not in axes)
    reduced_shapes = {kept, dropped}
    reduced_nodes: set[int] = set()
    for node in order:
        shape = graph.node(node).type.shape
        is_reduction = node in reductions
        if is_reduction or (shape in reduced_shapes and shape != domain):
            reduced_nodes.add(node)
        elif shape != domain:
            raise GroupError(f"%{node} ({graph.node(node).op}) has shape {list(shape)}, neither the reduced "
                             f"domain {list(domain)} nor the reduction's result {list(kept)}")
    for node in order:
        if node in reduced_nodes:
            continue
        for operand in graph.operands(node):
            if operand in reduced_nodes and graph.node(operand).type.shape != kept:
                raise GroupError(f"%{node} reads the reduced value %{operand} of shape "
                                 f"{list(graph.node(operand).type.shape)}; it must keep the reduced axes "
                                 f"(shape {list(kept)}) to line up with the domain")
    return GroupInfo(GroupKind.REDUCTION, order, inputs, outputs, domain, tuple(axes), anchor=reductions[0])


def assign_groups(graph: Graph, groups: list[set[int]]) -> Graph:
    """A copy of `graph` whose nodes carry the given groups (ids 0, 1, ...); every group is classified
    first, so an illegal one raises GroupError and changes nothing."""
    for members in groups:
        classify_group(graph, members)
    result = graph.copy()
    for node_id, _ in list(result.nodes()):
        result.set_node(node_id, result.node(node_id).replace(group=None))
    for index, members in enumerate(groups):
        for node_id in members:
            result.set_node(node_id, result.node(node_id).replace(group=index))
    return result
