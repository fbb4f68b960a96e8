"""The memory model the fusion passes use: which values go to memory, and a group's working set.

Kernels: every fusion group is one kernel, and every other operation except a parameter is a kernel
of its own (so a graph before fusion runs one kernel per operation). A kernel reads each distinct
value it uses from outside once and writes each of its values that is used outside it (or is a
program output) once. `memory_traffic` sums those bytes over all kernels; fusion removes traffic by
keeping intermediates inside a kernel: each one saves its write and one read per kernel that read it.
`--pass-stats` reports the difference before and after a fusion pass as the traffic it removed.

Splat constants and iotas outside groups are generated where they are used and cost nothing.

A group's working set is the bytes of its inputs plus its results: what the kernel must touch in
memory. Targets with small local memories (a wafer-scale PE, an LPU's SRAM slice) bound it; the limit
is `CompileOptions.fusion_working_set_limit`, the target's `fusion_working_set_limit`, or a fusion
pass's `max-working-set` option.
"""

from __future__ import annotations

from typing import Iterable

from ir import ops
from ir.graph import Graph


def value_bytes(graph: Graph, node: int) -> int:
    return graph.node(node).type.nbytes


def kernel_of(graph: Graph) -> dict[int, object]:
    """Node -> kernel key: ("group", id) for group members, the node itself otherwise (params: None)."""
    kernels: dict[int, object] = {}
    for node_id, data in graph.nx.nodes(data=True):
        node = data["node"]
        if node.op == "param":
            kernels[node_id] = None
        elif node.group is not None:
            kernels[node_id] = ("group", node.group)
        else:
            kernels[node_id] = node_id
    return kernels


def memory_traffic(graph: Graph) -> int:
    """Bytes all kernels of `graph` read and write (see the module docstring)."""
    kernels = kernel_of(graph)
    reads: set[tuple[object, int]] = set()
    written: set[int] = set()
    for source, target in graph.nx.edges():
        if graph.node(source).group is None and _free(graph, source):
            continue  # generated inline by the kernel that uses it
        if kernels[source] != kernels[target]:
            reads.add((kernels[target], source))
            if kernels[source] is not None:
                written.add(source)
    written |= {o for o in graph.outputs if kernels[o] is not None}
    return sum(value_bytes(graph, n) for _, n in reads) + sum(value_bytes(graph, n) for n in written)


def boundary(graph: Graph, members: set[int]) -> tuple[set[int], set[int]]:
    """(values read from outside, member values used outside or returned) of a member set."""
    inputs: set[int] = set()
    outputs: set[int] = set()
    for node in members:
        inputs.update(o for o in graph.operands(node) if o not in members)
        if graph.is_output(node) or any(user not in members for user in graph.nx.successors(node)):
            outputs.add(node)
    return inputs, outputs


def working_set(graph: Graph, members: Iterable[int]) -> tuple[int, int]:
    """(bytes of inputs, bytes of results) of a would-be group."""
    inputs, outputs = boundary(graph, set(members))
    return (sum(value_bytes(graph, n) for n in inputs if not _free(graph, n)),
            sum(value_bytes(graph, n) for n in outputs))


def _free(graph: Graph, node: int) -> bool:
    """Splat constants and iotas are generated, not loaded, so they cost no memory."""
    return graph.node(node).op in ("constant", "iota")


def is_cheap(graph: Graph, node: int) -> bool:
    """Cheap enough to recompute in another kernel: a splat constant, an iota, a view, or an
    elementwise op that is not transcendental (no exp, tanh, ...), on dense tensors."""
    payload = graph.node(node)
    if not payload.type.format.is_dense:
        return False
    if payload.op in ("constant", "iota") or ops.in_group(payload.op, ops.VIEW):
        return True
    return ops.in_group(payload.op, ops.ELEMENTWISE) and not ops.in_group(payload.op, ops.TRANSCENDENTAL)
