"""What every spec builder needs to know about one unit: its outputs, reads, names and shared values."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ir.graph import Graph
from ir.loops import Buffer, Var
from passes.lowering.elemental import Elemental
from passes.lowering.plan import Unit
from passes.lowering.scalar_ops import INLINE_SOURCES
from passes.lowering.spec import NameGen, OutputSlot


@dataclass
class KernelContext:
    graph: Graph
    unit: Unit
    name: str  # the kernel's name
    buffers: dict[int, Buffer]  # every global buffer of the program, by graph node
    names: NameGen  # the kernel's own names (buffer names reserved)
    outputs: tuple[OutputSlot, ...]  # materialised live members, topological order
    reads: tuple[Buffer, ...]  # global buffers the kernel loads, in order of first use
    shared: frozenset[int]  # members used more than once per point

    @property
    def members(self) -> frozenset[int]:
        return frozenset(self.unit.live)

    def elemental(self, reductions: dict[int, Var] | None = None, domain: tuple[int, ...] = (),
                  reduce_axes: tuple[int, ...] = ()) -> Elemental:
        loadable = {node: buffer for node, buffer in self.buffers.items() if node not in self.members}
        return Elemental(self.graph, self.members, loadable, self.names, self.shared, reductions, domain,
                         reduce_axes)


def kernel_context(graph: Graph, unit: Unit, name: str, buffers: dict[int, Buffer]) -> KernelContext:
    members = set(unit.live)
    outputs = tuple(OutputSlot(node, buffers[node]) for node in unit.live if node in buffers)
    reads: list[Buffer] = []
    uses: Counter[int] = Counter()
    for node in unit.live:
        for operand in graph.operands(node):
            uses[operand] += 1
            if operand in members or graph.node(operand).op in INLINE_SOURCES:
                continue
            buffer = buffers[operand]
            if buffer not in reads:
                reads.append(buffer)
    for slot in outputs:
        uses[slot.node] += 1
    shared = frozenset(node for node in members if uses[node] > 1)
    names = NameGen(b.name for b in reads + [slot.buffer for slot in outputs])
    return KernelContext(graph, unit, name, buffers, names, outputs, tuple(reads), shared)
