"""sparse-propagate (graph IR): which rows and columns of values are zero because a bound weight's are.

A matmul `W @ X` with W bound to data has a zero row i wherever row i of W is all zeros, and
`X @ W` a zero column j wherever column j of W is (through a transpose of W, rows and columns swap).
The facts travel forward through operations that keep zeros where they are:

* zero-preserving unary ops (f(0) = 0: neg, abs, relu, sqrt, tanh, sin, gelu, silu) and casts;
* `mul` (a zero row of either operand of the result's shape), `select` (when both branches are zero
  there), `add`/`sub` (when both operands are);
* `transpose` of a matrix (rows and columns swap).

Each fact is recorded, not acted on: `Graph.attributes` gets `sparse_<weight>_zero_rows` /
`_zero_columns` for the weights (tuples of indices) and `sparse_output<k>_zero_rows` /
`_zero_columns` for the program outputs they reach, for later passes and targets (the CPU's sparse
kernels already skip zero rows: they store no entries for them). The graph's operations are
unchanged, so the pass is always legal; the facts assume the other operand is finite, since in IEEE
arithmetic 0 * inf is NaN (the same assumption every sparse kernel makes, docs/sparsity.md).
"""

from __future__ import annotations

import numpy as np

from ir import ops
from ir.graph import Graph
from passes.context import PassContext, plural
from passes.registry import Pass, register_pass

ZERO_PRESERVING = frozenset({"neg", "abs", "relu", "sqrt", "tanh", "sin", "gelu", "silu", "cast"})
Facts = tuple[frozenset[int], frozenset[int]]  # (zero rows, zero columns) of a matrix value
NONE: Facts = (frozenset(), frozenset())


def weight_facts(data: np.ndarray) -> Facts:
    nonzero = np.asarray(data) != 0
    return (frozenset(np.flatnonzero(~nonzero.any(axis=1)).tolist()),
            frozenset(np.flatnonzero(~nonzero.any(axis=0)).tolist()))


def _matmul_facts(graph: Graph, node: int, facts: dict[int, Facts]) -> Facts:
    a, b = graph.operands(node)
    if graph.node(node).type.rank != 2:
        return NONE
    return (facts.get(a, NONE)[0], facts.get(b, NONE)[1])


def _same_shape(graph: Graph, node: int, operand: int) -> bool:
    return graph.node(operand).type.shape == graph.node(node).type.shape


def _elementwise_facts(graph: Graph, node: int, facts: dict[int, Facts]) -> Facts:
    op = graph.node(node).op
    operands = graph.operands(node)
    shaped = [facts.get(o, NONE) if _same_shape(graph, node, o) else NONE for o in operands]
    if op in ZERO_PRESERVING:
        return shaped[0]
    if op == "mul":
        return (shaped[0][0] | shaped[1][0], shaped[0][1] | shaped[1][1])
    if op in ("add", "sub"):
        return (shaped[0][0] & shaped[1][0], shaped[0][1] & shaped[1][1])
    if op == "select":
        return (shaped[1][0] & shaped[2][0], shaped[1][1] & shaped[2][1])
    return NONE


def propagate(graph: Graph) -> dict[int, Facts]:
    """Zero rows and columns of every matrix value that has any (see the module docstring)."""
    facts: dict[int, Facts] = {}
    for node_id, node in graph.nodes():
        if node.type.rank != 2:
            continue
        if node.op == "param":
            data = graph.weight_data.get(node.attr("name"))
            found = weight_facts(data) if data is not None else NONE
        elif ops.in_group(node.op, ops.MATMUL):
            found = _matmul_facts(graph, node_id, facts)
        elif node.op == "transpose" and node.attr("perm") == (1, 0):
            rows, cols = facts.get(graph.operands(node_id)[0], NONE)
            found = (cols, rows)
        elif ops.in_group(node.op, ops.ELEMENTWISE) or node.op == "select":
            found = _elementwise_facts(graph, node_id, facts)
        else:
            found = NONE
        if found[0] or found[1]:
            facts[node_id] = found
    return facts


@register_pass
class SparsePropagate(Pass):
    name = "sparse-propagate"
    summary = "record which rows/columns of values (and outputs) are zero because a bound weight's are"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        facts = propagate(graph)
        result = graph.copy()
        lines = []
        for param in graph.params:
            name = graph.node(param).attr("name")
            rows, cols = facts.get(param, NONE)
            _record(result, f"sparse_{name}", rows, cols)
            if rows or cols:
                lines.append(f"{name}: {plural(len(rows), 'zero row')}, {plural(len(cols), 'zero column')}")
        reached = 0
        for index, output in enumerate(graph.outputs):
            rows, cols = facts.get(output, NONE)
            _record(result, f"sparse_output{index}", rows, cols)
            if rows or cols:
                reached += 1
                lines.append(f"output {index}: {plural(len(rows), 'zero row')}, {plural(len(cols), 'zero column')}")
        values = sum(1 for node in facts if graph.node(node).op != "param")
        ctx.report(f"{plural(values, 'value')} with known zero rows or columns, {plural(reached, 'output')} "
                   "among them" + "".join(f"\n  {line}" for line in lines), values=values, outputs=reached)
        return result


def _record(graph: Graph, prefix: str, rows: frozenset[int], cols: frozenset[int]) -> None:
    if rows:
        graph.attributes[f"{prefix}_zero_rows"] = tuple(sorted(rows))
    if cols:
        graph.attributes[f"{prefix}_zero_columns"] = tuple(sorted(cols))
