"""Graph IR -> Graphviz DOT text, for looking at a graph (`dot -Tsvg`); needs no graphviz package.

One DOT node per operation, labelled `op` and its type, with the printer's value name (`%3`, `%x`) as
its DOT id so the picture and `print_graph` text can be read side by side. Parameters are inverted
houses, weights filled; a constant shows its value. Edges carry the operand index when the consumer
has more than one operand. Each fusion group is a `cluster_groupN` subgraph, and the outputs feed a
`return` node, numbered by output position. Graphs with cycles are drawn too (ids are node ids then),
so a broken graph can be looked at.
"""

from __future__ import annotations

import networkx as nx

from ir.graph import Graph, Node
from ir.graph_printer import format_value, value_names


def graph_to_dot(graph: Graph) -> str:
    """The DOT text of `graph`."""
    numbered = _numberable(graph)
    order = graph.topological_order() if numbered else sorted(graph.nx.nodes)
    if numbered:
        ids = {node_id: _quote(name) for node_id, name in value_names(graph).items()}
    else:
        ids = {node_id: f"n{node_id}" for node_id in order}
    lines = [f"digraph {_quote(graph.name)} {{",
             '  node [shape=box, fontname="monospace"];',
             '  edge [fontname="monospace", fontsize=10];']
    groups = graph.groups() if numbered else {}
    grouped = {node_id for members in groups.values() for node_id in members}
    for group, members in sorted(groups.items()):
        lines.append(f"  subgraph cluster_group{_cluster_suffix(group)} {{")
        lines.append(f'    label="group {group}"; style=dashed;')
        lines.extend("    " + _node_line(graph, ids, n) for n in members)
        lines.append("  }")
    for node_id in order:
        if node_id not in grouped:
            lines.append("  " + _node_line(graph, ids, node_id))
    for source, target, key in sorted(graph.nx.edges(keys=True)):
        label = f' [label="{key}"]' if graph.nx.in_degree(target) > 1 else ""
        lines.append(f"  {ids[source]} -> {ids[target]}{label};")
    if graph.outputs:
        lines.append('  "return" [shape=oval, style=bold];')
        for index, output in enumerate(graph.outputs):
            if output not in ids:
                continue
            label = f' [label="{index}"]' if len(graph.outputs) > 1 else ""
            lines.append(f'  {ids[output]} -> "return"{label};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _numberable(graph: Graph) -> bool:
    """Whether the printer's value names exist: no cycle and no node without a payload."""
    payloads = all("node" in data for _, data in graph.nx.nodes(data=True))
    return payloads and nx.is_directed_acyclic_graph(graph.nx)


def _cluster_suffix(group: int) -> str:
    return str(group) if group >= 0 else f"_minus{-group}"


def _node_line(graph: Graph, ids: dict[int, str], node_id: int) -> str:
    node: Node | None = graph.nx.nodes[node_id].get("node")
    if node is None:
        return f'{ids[node_id]} [label="?", color=red];'
    if node.op == "param":
        title = f"{node.attr('name')}"
        style = ", shape=invhouse" + (", style=filled, fillcolor=lightyellow" if node.attr("weight") else "")
    elif node.op == "constant":
        title = f"constant {format_value(node.attr('value'))}"
        style = ", shape=box, style=rounded"
    else:
        title = node.op
        style = ""
    label = _escape(title) + "\\n" + _escape(str(node.type))
    return f'{ids[node_id]} [label="{label}"{style}];'


def _quote(text: str) -> str:
    return '"' + _escape(text) + '"'


def _escape(text: str) -> str:
    """Text inside a DOT double-quoted string: quotes and backslashes escaped, newlines as \\n."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
