"""Checks that a graph is well formed; the pass manager runs it after every pass.

`verify_graph` lists every problem it finds (an empty list means valid); `assert_valid` raises
`GraphVerifyError` with all of them. Checked: the graph is acyclic; every node has a payload whose op
is in the op table, with as many operands as the op takes, operand edge keys exactly 0..n-1, valid and
complete attributes, and (for non-source ops) the type the op table infers from its operands; the
parameters have unique names, indexes 0..n-1 in `graph.params` order, op `param` and no fusion group,
and every param node is listed; outputs are non-empty nodes of the graph; every non-parameter value
reaches an output; every fusion group is convex (no path leaves a group and comes back into it); and the
graph of kernels (`ir.groups.kernel_graph`: each group contracted to one node, ungrouped nodes alone) is
acyclic, which convex groups alone do not ensure: groups {a1, a2} and {b1, b2} with edges a1 -> b1 and
b2 -> a2 are both convex, yet neither kernel can run before the other. The message names the groups on
the cycle.

Cost: one topological sort and otherwise linear when the graph is valid (an acyclic graph of kernels implies every
group is convex); the path that shows a group non-convex is searched for only when that check fails,
and only among the nodes placed between the group's first and last members.

Messages name nodes as the printer does (`%3 (matmul)`, `%x (param)`), or by node id (`node 17
(matmul)`) when the graph cannot be numbered, so a user can find them in `print_graph` output.
"""

from __future__ import annotations

import networkx as nx

from compiler.diagnostics import NicheError
from ir import ops
from ir.graph import Graph, freeze_attrs
from ir.graph_printer import value_names
from ir.groups import describe_cycle, kernel_cycles


class GraphVerifyError(NicheError):
    """A graph is malformed; `problems` lists what is wrong, `after` names the pass that ran last."""

    def __init__(self, problems: list[str], graph_name: str, after: str | None = None) -> None:
        self.problems = list(problems)
        self.after = after
        where = f"after pass '{after}': " if after is not None else ""
        listed = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{where}graph '{graph_name}' is invalid:\n{listed}")


def assert_valid(graph: Graph, after: str | None = None) -> None:
    """Raise GraphVerifyError when `verify_graph` finds problems; `after` names the last pass run."""
    problems = verify_graph(graph)
    if problems:
        raise GraphVerifyError(problems, graph.name, after)


def verify_graph(graph: Graph) -> list[str]:
    """Every problem found in `graph`, as messages naming the nodes involved; empty when valid."""
    missing = [n for n, data in graph.nx.nodes(data=True) if "node" not in data]
    if missing:
        return [f"node {n} has no payload (an edge was added to a node that is not in the graph)"
                for n in sorted(missing)]
    acyclic = nx.is_directed_acyclic_graph(graph.nx)
    label = _Labels(graph, acyclic)
    order = graph.topological_order() if acyclic else sorted(graph.nx.nodes)  # the printed order
    problems = [] if acyclic else [_cycle(graph, label)]
    for node_id in order:
        problems += [f"{label(node_id)}: {problem}" for problem in _node_problems(graph, node_id)]
    problems += _param_problems(graph, label, order)
    problems += _output_problems(graph, label, order)
    if acyclic:
        problems += _group_problems(graph, label, order)
    return problems


class _Labels:
    """`%N (op)` in the printer's numbering, or `node ID (op)` when the graph has a cycle."""

    def __init__(self, graph: Graph, acyclic: bool) -> None:
        self.graph = graph
        self.names = value_names(graph) if acyclic else {}

    def __call__(self, node_id: int) -> str:
        op = self.graph.node(node_id).op
        if node_id in self.names:
            return f"{self.names[node_id]} ({op})"
        return f"node {node_id} ({op})"


def _cycle(graph: Graph, label: _Labels) -> str:
    edges = nx.find_cycle(graph.nx)
    path = [label(source) for source, *_ in edges] + [label(edges[0][0])]
    return "the graph has a cycle: " + " -> ".join(path)


def _node_problems(graph: Graph, node_id: int) -> list[str]:
    node = graph.node(node_id)
    op = ops.OPS.get(node.op)
    if op is None:
        return [f"unknown op '{node.op}'"]
    problems = []
    keys = sorted(key for _, _, key in graph.nx.in_edges(node_id, keys=True))
    if keys != list(range(len(keys))):
        problems.append(f"operand edge keys are {keys}, expected {list(range(len(keys)))}")
    operands = graph.operands(node_id)
    if op.arity is not None and len(operands) != op.arity:
        problems.append(f"{node.op} takes {op.arity} operand(s), found {len(operands)}")
    elif op.arity is None and not operands:
        problems.append(f"{node.op} needs at least one operand, found none")
    keys_of_attrs = [key for key, _ in node.attrs]
    if keys_of_attrs != sorted(set(keys_of_attrs)):
        problems.append(f"attributes are not sorted by unique key: {keys_of_attrs}")
    try:
        complete = ops.check_attrs(node.op, node.attr_dict)
    except ops.OpError as error:
        return problems + [str(error)]
    if freeze_attrs(complete) != freeze_attrs(node.attr_dict):
        absent = sorted(set(complete) - set(node.attr_dict))
        problems.append(f"attribute(s) {', '.join(absent)} missing (defaults are stored explicitly)")
    if problems or op.in_group(ops.SOURCE):
        return problems
    try:
        expected = ops.infer_type(node.op, [graph.node(o).type for o in operands], complete)
    except ops.OpError as error:
        return [str(error)]
    if expected != node.type:
        problems.append(f"expected type {expected} but found {node.type}")
    return problems


def _param_problems(graph: Graph, label: _Labels, order: list[int]) -> list[str]:
    problems = []
    names: dict[str, int] = {}
    for position, node_id in enumerate(graph.params):
        if node_id not in graph.nx:
            problems.append(f"parameter {position} is node {node_id}, which is not in the graph")
            continue
        node = graph.node(node_id)
        if node.op != "param":
            problems.append(f"{label(node_id)}: listed as parameter {position} but its op is '{node.op}'")
            continue
        if node.attr("index") != position:
            problems.append(f"{label(node_id)}: parameter {position} has index {node.attr('index')}")
        if node.group is not None:
            problems.append(f"{label(node_id)}: parameters are never fused, but this one is in group {node.group}")
        name = node.attr("name")
        if name in names:
            problems.append(f"{label(node_id)}: parameter name '{name}' is also used by {label(names[name])}")
        names.setdefault(name, node_id)
    listed = set(graph.params)
    for node_id in order:
        if graph.node(node_id).op == "param" and node_id not in listed:
            problems.append(f"{label(node_id)}: a param node missing from graph.params")
    return problems


def _output_problems(graph: Graph, label: _Labels, order: list[int]) -> list[str]:
    if not graph.outputs:
        return ["the graph has no outputs"]
    problems = [f"output {i} is node {o}, which is not in the graph"
                for i, o in enumerate(graph.outputs) if o not in graph.nx]
    params = set(graph.params)
    live = _reaching(graph, [o for o in graph.outputs if o in graph.nx])
    for node_id in order:
        if node_id not in live and node_id not in params:
            problems.append(f"{label(node_id)}: dead value, it reaches no output")
    return problems


def _reaching(graph: Graph, targets: list[int]) -> set[int]:
    """The targets and every node with a path to one of them (one search for all of them)."""
    found = set(targets)
    frontier = list(found)
    while frontier:
        for source in graph.nx.predecessors(frontier.pop()):
            if source not in found:
                found.add(source)
                frontier.append(source)
    return found


def _group_problems(graph: Graph, label: _Labels, order: list[int]) -> list[str]:
    """One message per non-convex fusion group, naming a path that leaves it and comes back; then one
    per cycle that the remaining (convex) groups form in the graph of kernels, naming its groups."""
    if not kernel_cycles(graph):
        return []  # then every group is convex too: a path out of a group and back would be a cycle
    index = {node_id: i for i, node_id in enumerate(order)}
    groups: dict[int, list[int]] = {}
    for node_id in order:
        group = graph.node(node_id).group
        if group is not None:
            groups.setdefault(group, []).append(node_id)
    problems = []
    convex = set()
    for group, members in sorted(groups.items()):
        path = _reentry(graph, members, index)
        if path is None:
            convex.add(group)
            continue
        route = " -> ".join(label(n) for n in path)
        problems.append(f"fusion group {group} is not convex: the path {route} leaves the group and re-enters it")
    for cycle in kernel_cycles(graph, convex):
        names = sorted({graph.node(n).group for edge in cycle for n in edge} - {None})
        listed = ", ".join(str(g) for g in names[:-1]) + f" and {names[-1]}"
        problems.append(f"fusion groups {listed} form a cycle in the graph of kernels (each group runs as one "
                        f"kernel, so none of them can run first): {describe_cycle(graph, cycle, label)}")
    return problems


def _reentry(graph: Graph, members: list[int], index: dict[int, int]) -> list[int] | None:
    """A path member -> outside ... -> member of the group, with no group node in between, or None.

    `members` are in topological order (`index`); such a path only passes nodes placed before the last
    member, so the searches stop there."""
    inside = set(members)
    last = index[members[-1]]
    for member in members:
        for outside in graph.users(member):
            if outside in inside:
                continue
            parent = _paths_within(graph, outside, inside, last, index)
            back = [n for n in parent if n in inside]
            if back:
                node = min(back, key=index.__getitem__)  # the earliest: the path to it stays outside
                path = [node]
                while parent[node] is not None:
                    node = parent[node]
                    path.append(node)
                return [member] + path[::-1]
    return None


def _paths_within(graph: Graph, start: int, inside: set[int], last: int,
                  index: dict[int, int]) -> dict[int, int | None]:
    """Breadth-first from `start` over outside nodes placed up to `last`: node -> the node it was
    reached from (None for `start`); members are reached but not walked through."""
    parent: dict[int, int | None] = {start: None}
    frontier = [start]
    for node in frontier:
        if node in inside:
            continue
        for user in graph.users(node):
            if user not in parent and index[user] <= last:
                parent[user] = node
                frontier.append(user)
    return parent
