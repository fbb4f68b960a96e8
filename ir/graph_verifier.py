"""Checks that a graph is well formed; the pass manager runs it after every pass.

`verify_graph` lists every problem it finds (an empty list means valid); `assert_valid` raises
`GraphVerifyError` with all of them. Checked: the graph is acyclic; every node has a payload whose op
is in the op table, with as many operands as the op takes, operand edge keys exactly 0..n-1, valid and
complete attributes, and (for non-source ops) the type the op table infers from its operands; the
parameters have unique names, indexes 0..n-1 in `graph.params` order, op `param` and no fusion group,
and every param node is listed; outputs are non-empty nodes of the graph; every non-parameter value reaches an output;
and every fusion group is convex (no path leaves a group and comes back into it, which would make the
graph of groups cyclic).

Messages name nodes as the printer does (`%3 (matmul)`, `%x (param)`), or by node id (`node 17
(matmul)`) when the graph cannot be numbered, so a user can find them in `print_graph` output.
"""

from __future__ import annotations

import networkx as nx

from compiler.diagnostics import NicheError
from ir import ops
from ir.graph import Graph, freeze_attrs
from ir.graph_printer import value_names


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
        problems += _group_problems(graph, label)
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
    live = {o for o in graph.outputs if o in graph.nx}
    for output in list(live):
        live |= nx.ancestors(graph.nx, output)
    for node_id in order:
        if node_id not in live and node_id not in params:
            problems.append(f"{label(node_id)}: dead value, it reaches no output")
    return problems


def _group_problems(graph: Graph, label: _Labels) -> list[str]:
    """One message per non-convex fusion group, naming a path that leaves it and comes back."""
    order = {node_id: i for i, node_id in enumerate(graph.topological_order())}
    problems = []
    for group, members in sorted(graph.groups().items()):
        inside = set(members)
        for member in members:
            path = _reentry(graph, member, inside, order)
            if path is not None:
                route = " -> ".join(label(n) for n in path)
                problems.append(f"fusion group {group} is not convex: the path {route} leaves the group "
                                "and re-enters it")
                break
    return problems


def _reentry(graph: Graph, member: int, inside: set[int], order: dict[int, int]) -> list[int] | None:
    """A path member -> outside ... -> member of the group, with no group node in between, or None."""
    for outside in graph.users(member):
        if outside in inside:
            continue
        back = (nx.descendants(graph.nx, outside) | {outside}) & inside
        if back:
            target = min(back, key=order.__getitem__)  # the earliest: the path to it stays outside
            return [member] + nx.shortest_path(graph.nx, outside, target)
    return None
