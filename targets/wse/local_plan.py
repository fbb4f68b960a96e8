"""What one PE holds and computes: index sets per value, and the instructions of its local computation.

`build_plan` walks backwards from the elements a PE must produce (its share of the region's outputs,
or the operand tiles of its matmul product) through the region's members and the folded views,
constants and iotas, and records for every value the sorted set of flat indices the PE needs. It stops
at the sources (parameters and other regions' results, which the PE receives) and at values given
otherwise (the matmul result, which the PE's column reduction provides). Because every index map is the
op table's own semantics (`targets.wse.indexing`), computing each value at exactly these indices gives
the elements the reference interpreter computes there.

`LocalEmitter` turns the plan's computed values into instructions (GATHER for index remapping, VOP,
VRED, ASSEMBLE, CONST, IOTA), in topological order.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from ir import ops
from ir.dtypes import DType
from ir.graph import Graph
from targets.wse import indexing as ix
from targets.wse.isa import Assemble, Buffer, Const, Gather, Instr, Iota, Vop, Vred
from targets.wse.machine import WseMachine
from targets.wse.work import vop_cost


@dataclass
class LocalPlan:
    index: dict[int, np.ndarray] = field(default_factory=dict)  # value -> sorted flat indices held here
    sources: list[int] = field(default_factory=list)  # values received, topological order
    computed: list[int] = field(default_factory=list)  # values computed here, topological order


def requirements(graph: Graph, node: int, idx: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray | None]]:
    """(operand, operand indices, result positions or None for all) that produce `node` at `idx`.

    Operand indices are 1-D aligned with `idx`, except for reductions ([len(idx), reduced size])."""
    payload = graph.node(node)
    op = payload.op
    shape = payload.type.shape
    operands = graph.operands(node)
    shapes = [graph.node(o).type.shape for o in operands]
    if op in ("constant", "iota"):
        return []
    if ops.in_group(op, ops.ELEMENTWISE):
        return [(o, ix.broadcast_map(idx, shape, s), None) for o, s in zip(operands, shapes)]
    if op == "reshape":
        return [(operands[0], idx.astype(ix.INDEX, copy=True), None)]
    if op == "broadcast_to":
        return [(operands[0], ix.broadcast_map(idx, shape, shapes[0]), None)]
    if op == "transpose":
        return [(operands[0], ix.transpose_map(idx, shape, payload.attr("perm")), None)]
    if op == "slice":
        return [(operands[0], ix.slice_map(idx, shape, shapes[0], payload.attr("starts"), payload.attr("steps")),
                 None)]
    if op == "concat":
        pieces = ix.concat_split(idx, shape, shapes, payload.attr("axis"))
        return [(o, mapped, positions) for o, (positions, mapped) in zip(operands, pieces)]
    if ops.in_group(op, ops.REDUCTION):
        return [(operands[0], ix.reduction_map(idx, shape, shapes[0], payload.attr("axes"),
                                               payload.attr("keepdims")), None)]
    raise NotImplementedError(f"the wse target cannot compute '{op}' inside a region")


def build_plan(graph: Graph, computable: set[int], needs: dict[int, np.ndarray], provided: set[int],
               order: dict[int, int]) -> LocalPlan:
    """The indices each value is needed at, walking back from `needs` (see the module docstring)."""
    pending: dict[int, list[np.ndarray]] = {}
    heap: list[tuple[int, int]] = []

    def want(node: int, indices: np.ndarray) -> None:
        if node not in pending:
            pending[node] = []
            heapq.heappush(heap, (-order[node], node))
        pending[node].append(np.asarray(indices, dtype=ix.INDEX).reshape(-1))

    for node, indices in needs.items():
        want(node, indices)
    plan = LocalPlan()
    while heap:
        _, node = heapq.heappop(heap)
        parts = pending.pop(node)
        idx = ix.unique(parts[0] if len(parts) == 1 else np.concatenate(parts))
        plan.index[node] = idx
        if node in provided:
            continue
        if node not in computable:
            plan.sources.append(node)
            continue
        plan.computed.append(node)
        for operand, indices, _ in requirements(graph, node, idx):
            want(operand, indices)
    plan.sources.reverse()
    plan.computed.reverse()
    return plan


# -- emitting the local computation --------------------------------------------------------------


class LocalEmitter:
    """Instructions computing a plan's values into buffers named after the values (`v12`)."""

    def __init__(self, graph: Graph, machine: WseMachine, plan: LocalPlan, buffers: dict[int, Buffer]) -> None:
        self.graph = graph
        self.machine = machine
        self.plan = plan
        self.buffers = buffers
        self._temps = 0

    def buffer(self, node: int) -> Buffer:
        if node not in self.buffers:
            payload = self.graph.node(node)
            self.buffers[node] = Buffer(f"v{node}", int(self.plan.index[node].size), payload.type.dtype)
        return self.buffers[node]

    def _temp(self, like: int, length: int) -> Buffer:
        self._temps += 1
        return Buffer(f"t{like}_{self._temps}", length, self.graph.node(like).type.dtype)

    def _cycles(self, elements: float, dtype: DType, cost: int = 1) -> float:
        return math.ceil(elements / self.machine.lanes(dtype)) * cost

    def operand(self, operand: int, indices: np.ndarray, out: list[Instr], what: str) -> Buffer:
        """A buffer holding `operand` at `indices` (the value's own buffer when the indices are all of
        it in order, else a GATHER into a temporary)."""
        held = self.plan.index[operand]
        source = self.buffers[operand]
        positions = ix.positions_in(held, indices.reshape(-1)).reshape(indices.shape)
        if indices.ndim == 1 and positions.size == held.size and np.array_equal(positions, np.arange(held.size)):
            return source
        temp = self._temp(operand, int(positions.size))
        out.append(Gather(temp, source, positions, what,
                          cycles=self._cycles(positions.size, source.dtype)))
        return temp

    def emit(self, node: int) -> list[Instr]:
        payload = self.graph.node(node)
        op = payload.op
        idx = self.plan.index[node]
        out: list[Instr] = []
        n = int(idx.size)
        dtype = payload.type.dtype
        if op == "constant":
            out.append(Const(self.buffer(node), payload.attr("value"), cycles=self._cycles(n, dtype)))
            return out
        if op == "iota":
            values = ix.iota_values(idx, payload.type.shape, payload.attr("axis"))
            out.append(Iota(self.buffer(node), values, cycles=self._cycles(n, dtype)))
            return out
        needs = requirements(self.graph, node, idx)
        if ops.in_group(op, ops.VIEW):
            (operand, indices, _), = needs
            held = self.plan.index[operand]
            positions = ix.positions_in(held, indices)
            if positions.size == held.size and np.array_equal(positions, np.arange(held.size)):
                self.buffers[node] = self.buffers[operand]  # the same elements in the same order: an alias
                return out
            out.append(Gather(self.buffer(node), self.buffers[operand], positions, f"{op} (view)",
                              cycles=self._cycles(n, dtype)))
            return out
        if op == "concat":
            pieces = []
            for operand, indices, slots in needs:
                if slots.size:
                    positions = ix.positions_in(self.plan.index[operand], indices)
                    pieces.append((self.buffers[operand], positions, slots))
            out.append(Assemble(self.buffer(node), tuple(pieces), cycles=self._cycles(n, dtype)))
            return out
        if ops.in_group(op, ops.REDUCTION):
            (operand, indices, _), = needs
            rows = self.operand(operand, indices, out, "reduction rows")
            width = int(indices.shape[1]) if indices.ndim == 2 else 0
            out.append(Vred(op, self.buffer(node), rows, n, width,
                            cycles=self._cycles(n * max(width, 1), dtype)))
            return out
        sources = tuple(self.operand(operand, indices, out, "broadcast") for operand, indices, _ in needs)
        attrs = tuple((k, v) for k, v in payload.attrs if k == "dtype")
        out.append(Vop(op, self.buffer(node), sources, attrs,
                       cycles=self._cycles(n, dtype, vop_cost(op, self.machine))))
        return out
