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

from typing import AbstractSet, Iterable

from ir import ops
from ir.graph import Graph, Node
from ir.groups import successors_of


def value_bytes(graph: Graph, node: int) -> int:
    return graph.node(node).type.nbytes


def kernel_of(graph: Graph) -> dict[int, object]:
    """Node -> kernel key: ("group", id) for group members, the node itself otherwise (params: None)."""
    return _kernels({node_id: data["node"] for node_id, data in graph.nx._node.items()})


def _kernels(payload: dict[int, Node]) -> dict[int, object]:
    kernels: dict[int, object] = {}
    for node_id, node in payload.items():
        if node.op == "param":
            kernels[node_id] = None
        elif node.group is not None:
            kernels[node_id] = ("group", node.group)
        else:
            kernels[node_id] = node_id
    return kernels


def memory_traffic(graph: Graph) -> int:
    """Bytes all kernels of `graph` read and write (see the module docstring)."""
    payload = {node_id: data["node"] for node_id, data in graph.nx._node.items()}
    kernels = _kernels(payload)
    read = 0  # each value once per other kernel that reads it
    written = {o for o in graph.outputs if kernels[o] is not None}
    for source, users in successors_of(graph).items():
        node = payload[source]
        if node.group is None and node.op in _GENERATED:
            continue  # generated inline by the kernel that uses it
        home = kernels[source]
        readers = {kernels[target] for target in users}
        readers.discard(home)
        if readers:
            read += len(readers) * node.type.nbytes
            if home is not None:
                written.add(source)
    return read + sum(payload[n].type.nbytes for n in written)


def boundary(graph: Graph, members: set[int], returned: AbstractSet[int] | None = None) -> tuple[set[int], set[int]]:
    """(values read from outside, member values used outside or returned) of a member set; `returned`
    is `graph.outputs` as a set, when the caller keeps one."""
    returned = returned if returned is not None else set(graph.outputs)
    inputs: set[int] = set()
    outputs: set[int] = set()
    for node in members:
        inputs.update(o for o in graph.nx.predecessors(node) if o not in members)
        if node in returned or any(user not in members for user in graph.nx.successors(node)):
            outputs.add(node)
    return inputs, outputs


def working_set(graph: Graph, members: Iterable[int], returned: AbstractSet[int] | None = None) -> tuple[int, int]:
    """(bytes of inputs, bytes of results) of a would-be group (`returned` as in `boundary`)."""
    inputs, outputs = boundary(graph, set(members), returned)
    return (sum(value_bytes(graph, n) for n in inputs if not _free(graph, n)),
            sum(value_bytes(graph, n) for n in outputs))


_GENERATED = ("constant", "iota")


def _free(graph: Graph, node: int) -> bool:
    """Splat constants and iotas are generated, not loaded, so they cost no memory."""
    return graph.node(node).op in _GENERATED


def is_cheap(graph: Graph, node: int) -> bool:
    """Cheap enough to recompute in another kernel: a splat constant, an iota, a view, or an
    elementwise op that is not transcendental (no exp, tanh, ...), on dense tensors."""
    payload = graph.node(node)
    if not payload.type.format.is_dense:
        return False
    cheap = _CHEAP_OPS.get(payload.op)
    if cheap is None:
        cheap = _CHEAP_OPS[payload.op] = payload.op in _GENERATED or ops.in_group(payload.op, ops.VIEW) or (
            ops.in_group(payload.op, ops.ELEMENTWISE) and not ops.in_group(payload.op, ops.TRANSCENDENTAL))
    return cheap


# op name -> whether `is_cheap` accepts it (on dense tensors); asked of every node by every fusion pass,
# and the op table is fixed once ir.ops is imported
_CHEAP_OPS: dict[str, bool] = {}
