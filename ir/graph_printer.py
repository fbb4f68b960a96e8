"""Graph IR -> text: a deterministic form in the spirit of MLIR's generic printer.

    graph @mlp(%x: f32[8,784], %w1: f32[784,10] {weight}) -> (f32[8,1]) attributes(tokens=8) {
      %0 = matmul(%x, %w1) : f32[8,10]
      %1 = reduce_max(%0) {axes = [1], keepdims = true} : f32[8,1]
      %2 = exp(%1) group 2 : f32[8,1] loc("mlp.nk":7:9)
      return %2
    }

Values are numbered in `Graph.topological_order()`: parameters are named by their `name` attribute and
listed in the signature in `index` order (the index is implicit), every other value is `%0, %1, ...`.
A signature longer than 100 characters lists one parameter per line.
Names that are not identifiers are quoted (`%"a b"`, `@"my graph"`). Attribute values print so that
`ir.graph_parser` reads back exactly the same Python value: floats via `repr` (and `inf`, `-inf`,
`nan`), bools as `true`/`false`, strings JSON-quoted, int tuples as `[1, 2]`, dtypes as `f32`.

A line `param %w` in the body appears only when a parameter does not come, in index order, before
every other value in the topological order (a pass added it late); it says where the parameter falls,
so that parsing the text gives back a graph equal to this one. `weight_data` is not printed.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ir.dtypes import DType
from ir.graph import Graph, Loc, Node

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WIDTH = 100  # a longer signature lists one parameter per line


def value_names(graph: Graph) -> dict[int, str]:
    """Node id -> `%name` for parameters and `%N` for the other values, in topological order.

    Raises networkx.NetworkXUnfeasible when the graph has a cycle.
    """
    names: dict[int, str] = {}
    params = set(graph.params)
    number = 0
    for node_id in graph.topological_order():
        if node_id in params:
            names[node_id] = "%" + format_name(str(graph.node(node_id).attr("name")))
        else:
            names[node_id] = f"%{number}"
            number += 1
    return names


def format_name(name: str) -> str:
    """A name as written after `%` or `@`, or as a key: bare when it is an identifier, else quoted."""
    if _IDENTIFIER.match(name):
        return name
    return _quote(name)


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def format_value(value: Any) -> str:
    """An attribute value in the form the parser reads back as the same Python value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float.__repr__(float(value))
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, DType):
        return value.value
    if isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return "[" + ", ".join(str(int(v)) for v in value) + "]"
    raise TypeError(f"the graph printer cannot print the attribute value {value!r} "
                    f"(of type {type(value).__name__})")


def format_loc(loc: Loc) -> str:
    return f"loc({_quote(loc.file)}:{loc.line}:{loc.col})"


def print_graph(graph: Graph, print_locs: bool = False) -> str:
    """The text of `graph`; `print_locs` adds a `loc("file":line:col)` suffix to located values."""
    names = value_names(graph)
    order = graph.topological_order()
    leading = _leading_params(graph, order)
    params = set(graph.params)
    lines = [_header(graph, names, print_locs) + " {"]
    for node_id in order:
        if node_id not in params:
            lines.append("  " + _operation(graph, node_id, names, print_locs))
        elif node_id not in leading:
            lines.append(f"  param {names[node_id]}")
    results = ", ".join(names[o] for o in graph.outputs)
    lines.append(f"  return {results}" if results else "  return")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _leading_params(graph: Graph, order: list[int]) -> set[int]:
    """The parameters that open the topological order in index order (they need no `param` line)."""
    leading = set()
    for position, node_id in enumerate(order):
        if position >= len(graph.params) or graph.params[position] != node_id:
            break
        leading.add(node_id)
    return leading


def _header(graph: Graph, names: dict[int, str], print_locs: bool) -> str:
    """The signature line; parameters go one per line when it would be longer than `_WIDTH`."""
    params = [_param(graph.node(p), names[p], print_locs) for p in graph.params]
    results = ", ".join(str(graph.node(o).type) for o in graph.outputs)
    text = f"graph @{format_name(graph.name)}({', '.join(params)}) -> ({results})"
    if len(text) > _WIDTH:
        listed = "".join(f"\n    {param}," for param in params)
        text = f"graph @{format_name(graph.name)}({listed[:-1]}\n) -> ({results})"
    if graph.dims:
        text += " dims(" + _entries(graph.dims) + ")"
    if graph.attributes:
        text += " attributes(" + _entries(graph.attributes) + ")"
    return text


def _entries(values: dict[str, Any]) -> str:
    return ", ".join(f"{format_name(key)}={format_value(values[key])}" for key in sorted(values))


def _param(node: Node, name: str, print_locs: bool) -> str:
    text = f"{name}: {node.type}"
    if node.attr("weight"):
        text += " {weight}"
    if node.group is not None:
        text += f" group {node.group}"
    return text + _loc_suffix(node, print_locs)


def _operation(graph: Graph, node_id: int, names: dict[int, str], print_locs: bool) -> str:
    node = graph.node(node_id)
    operands = ", ".join(names[o] for o in graph.operands(node_id))
    text = f"{names[node_id]} = {node.op}({operands})"
    if node.attrs:
        attrs = ", ".join(f"{format_name(key)} = {format_value(value)}" for key, value in node.attrs)
        text += " {" + attrs + "}"
    if node.group is not None:
        text += f" group {node.group}"
    return text + f" : {node.type}" + _loc_suffix(node, print_locs)


def _loc_suffix(node: Node, print_locs: bool) -> str:
    if print_locs and node.loc is not None:
        return " " + format_loc(node.loc)
    return ""
