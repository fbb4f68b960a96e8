"""A functional simulator of the wafer: runs every PE's program and moves the wavelets along the routes.

Wafers run one after the other (a pipeline of wafers passes values through the host I/O). On a wafer,
each PE executes its instructions in order; a RECV waits until its color's queue at that PE holds the
elements it expects, so the PEs advance round-robin until all are done, or none can move (a deadlock:
an error naming the PEs and what they wait for). A SEND walks the router tables from the sender's
router: at each router the color's entry must expect the wavelets from the side they arrive on, and its
output ports say where they go next (the ramp delivers them to that PE's queue). So a wrong route or a
color used twice shows up as an error, not as a wrong answer. The link wavelets the simulator moves are
counted, and must equal what `targets.wse.routing.fabric_load` predicts.

Arithmetic is the reference interpreter's: every vector instruction evaluates the op table's rule on
the PE's elements with `ir.interpreter.evaluate_node`, so results differ from the reference only where
summation order differs (matmul partial sums in f32, reductions split into rows).

Memory is checked as the program runs: a PE whose live buffers (resident weights, with sparse weights
counted by their actual non-zeros, plus the buffers it holds at that moment) exceed its usable SRAM
stops the simulation with `WseMemoryError`. Timing is not simulated; the cost model prices it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from compiler.diagnostics import NicheError
from ir.dtypes import DType, to_numpy
from ir.graph import Node
from ir.interpreter import evaluate_node
from ir.types import TensorType
from targets.wse.codegen import WseMemoryError
from targets.wse.isa import (Alloc, Assemble, Buffer, Const, Fmac, Free, Gather, Instr, Iota, Load, PeProgram, Recv,
                             Round, Send, Store, Vadd, Vop, Vred)
from targets.wse.layout import WaferProgram
from targets.wse.routing import OPPOSITE, RAMP, Coord, at_text, neighbor


class SimulationError(NicheError):
    """The wafer program cannot run: a deadlock, a broken route, a missing input."""


@dataclass
class PeState:
    program: PeProgram
    pc: int = 0
    values: dict[int, np.ndarray] = field(default_factory=dict)
    live: int = 0
    peak: int = 0

    @property
    def done(self) -> bool:
        return self.pc >= len(self.program.instrs)


@dataclass
class SimulationStats:
    instructions: int = 0
    link_wavelets: dict[tuple[int, Coord, str], int] = field(default_factory=lambda: defaultdict(int))
    peak_bytes: dict[tuple[int, Coord], int] = field(default_factory=dict)


class Simulator:
    def __init__(self, program: WaferProgram) -> None:
        self.program = program
        self.machine = program.machine
        self.colors = program.colors()
        self.stats = SimulationStats()

    # -- the whole program ---------------------------------------------------------------------------

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        graph = self.program.graph
        self.host: dict[str, np.ndarray] = {}
        self.written: dict[str, np.ndarray] = {}
        for param in graph.params:
            name = graph.node(param).attr("name")
            if name in inputs:
                self.host[name] = np.asarray(inputs[name]).reshape(-1)
            elif name in graph.weight_data:
                self.host[name] = to_numpy(np.asarray(graph.weight_data[name]), graph.node(param).type.dtype).reshape(-1)
        for wafer in self.program.wafers:
            self._run_wafer(wafer.index)
        results = []
        for node in graph.outputs:
            payload = graph.node(node)
            if payload.op == "param":
                results.append(np.asarray(inputs[payload.attr("name")]).copy())
                continue
            name = f"%{node}"
            if name not in self.host or not self.written[name].all():
                raise SimulationError(f"output %{node} was not completely stored by the wafer program")
            results.append(self.host[name].reshape(payload.type.shape).copy())
        return results

    # -- one wafer -----------------------------------------------------------------------------------

    def _run_wafer(self, wafer: int) -> None:
        self.wafer = wafer
        self.tables = self.program.wafers[wafer].tables
        self.queues: dict[tuple[Coord, int], list[np.ndarray]] = defaultdict(list)
        self.queued: dict[tuple[Coord, int], int] = defaultdict(int)
        states = {at: PeState(p) for (w, at), p in sorted(self.program.programs.items()) if w == wafer}
        progress = True
        while progress:
            progress = False
            for at, state in states.items():
                while not state.done:
                    instr = state.program.instrs[state.pc]
                    if isinstance(instr, Recv) and self.queued[(at, self._color(instr.channel))] < instr.count:
                        break
                    self._execute(at, state, instr)
                    state.pc += 1
                    progress = True
        blocked = [(at, s) for at, s in states.items() if not s.done]
        if blocked:
            waits = "; ".join(f"PE{at_text(at)} waits on {self._describe(s.program.instrs[s.pc])}" for at, s in blocked[:4])
            raise SimulationError(f"deadlock on wafer {wafer}: {len(blocked)} PE(s) cannot proceed ({waits})")
        for at, state in states.items():
            self.stats.peak_bytes[(wafer, at)] = state.peak

    def _color(self, channel: int) -> int:
        return self.colors[channel]

    def _describe(self, instr: Instr) -> str:
        return instr.text(self.colors).split("  ")[0]

    # -- instructions --------------------------------------------------------------------------------

    def _execute(self, at: Coord, state: PeState, instr: Instr) -> None:
        self.stats.instructions += 1
        values = state.values
        if isinstance(instr, Load):
            source = self.host.get(instr.name)
            if source is None:
                raise SimulationError(f"PE{at_text(at)}: nothing to load for '{instr.name}' (a missing input?)")
            self._define(at, state, instr.dst, np.asarray(source[instr.indices]))
        elif isinstance(instr, Alloc):
            self._define(at, state, instr.dst, np.zeros(instr.dst.length, dtype=instr.dst.dtype.numpy))
        elif isinstance(instr, Recv):
            data = self._take(at, self._color(instr.channel), instr.count)
            values[id(instr.dst)][instr.slots] = data[instr.keep]
        elif isinstance(instr, Send):
            self._send(at, self._color(instr.channel), values[id(instr.src)][instr.positions], instr.src.dtype)
        elif isinstance(instr, Gather):
            self._define(at, state, instr.dst, values[id(instr.src)][instr.positions])
        elif isinstance(instr, Vop):
            node = Node(instr.op, TensorType((instr.dst.length,), instr.dst.dtype), instr.attrs)
            self._define(at, state, instr.dst, evaluate_node(node, [values[id(s)] for s in instr.srcs]))
        elif isinstance(instr, Vred):
            node = Node(instr.op, TensorType((instr.rows,), instr.dst.dtype), (("axes", (1,)), ("keepdims", False)))
            rows = values[id(instr.src)].reshape(instr.rows, instr.width)
            self._define(at, state, instr.dst, evaluate_node(node, [rows]))
        elif isinstance(instr, Assemble):
            out = np.zeros(instr.dst.length, dtype=instr.dst.dtype.numpy)
            for src, positions, slots in instr.pieces:
                out[slots] = values[id(src)][positions]
            self._define(at, state, instr.dst, out)
        elif isinstance(instr, Const):
            node = Node("constant", TensorType((instr.dst.length,), instr.dst.dtype), (("value", instr.value),))
            self._define(at, state, instr.dst, evaluate_node(node, []))
        elif isinstance(instr, Iota):
            self._define(at, state, instr.dst, to_numpy(instr.values, instr.dst.dtype))
        elif isinstance(instr, Fmac):
            self._define(at, state, instr.acc, self._fmac(instr, values))
        elif isinstance(instr, Vadd):
            values[id(instr.acc)] = (values[id(instr.acc)] + values[id(instr.part)]).astype(instr.acc.dtype.numpy)
        elif isinstance(instr, Round):
            self._define(at, state, instr.dst, to_numpy(values[id(instr.src)], instr.dst.dtype))
        elif isinstance(instr, Store):
            self._store(instr, values[id(instr.src)])
        elif isinstance(instr, Free):
            for buffer in instr.buffers:
                data = values.pop(id(buffer), None)
                if data is not None:
                    state.live -= self._bytes(buffer, data)
        else:
            raise SimulationError(f"PE{at_text(at)}: unknown instruction {instr.opcode}")

    def _define(self, at: Coord, state: PeState, buffer: Buffer, data: np.ndarray) -> None:
        data = np.ascontiguousarray(data).reshape(-1)
        if data.size != buffer.length:
            raise SimulationError(f"PE{at_text(at)}: {buffer.name} holds {buffer.length} elements, got {data.size}")
        if id(buffer) in state.values:
            state.live -= self._bytes(buffer, state.values[id(buffer)])
        state.values[id(buffer)] = data
        state.live += self._bytes(buffer, data)
        state.peak = max(state.peak, state.live)
        usable = self.machine.usable_bytes_per_pe
        if state.live > usable:
            program = state.program
            raise WseMemoryError(
                f"error: PE{at} (region r{program.region}, wafer {self.wafer}) is out of memory: holding "
                f"{buffer.name} brings its data to {state.live:,} bytes, more than the {usable:,} usable "
                f"({self.machine.sram_per_pe:,} B SRAM minus {self.machine.code_reserve:,} B for code and buffers)")

    def _bytes(self, buffer: Buffer, data: np.ndarray) -> int:
        if buffer.stored_bytes is None:
            return buffer.nbytes
        nonzeros = int(np.count_nonzero(data))
        itemsize = buffer.dtype.itemsize
        return min(buffer.length * itemsize, nonzeros * (itemsize + self.machine.sparse_index_bytes))

    def _fmac(self, instr: Fmac, values: dict[int, np.ndarray]) -> np.ndarray:
        batch, m, k, n = instr.shape
        acc = instr.acc.dtype.numpy
        a = values[id(instr.a)].reshape(-1, m, k).astype(acc, copy=False)[instr.a_batch]
        b = values[id(instr.b)].reshape(-1, k, n).astype(acc, copy=False)[instr.b_batch]
        with np.errstate(all="ignore"):
            return np.matmul(a, b).astype(acc, copy=False).reshape(-1)

    def _store(self, instr: Store, data: np.ndarray) -> None:
        node = int(instr.name[1:])
        payload = self.program.graph.node(node)
        if instr.name not in self.host:
            self.host[instr.name] = np.zeros(payload.type.size, dtype=payload.type.dtype.numpy)
            self.written[instr.name] = np.zeros(payload.type.size, dtype=bool)
        self.host[instr.name][instr.indices] = data
        self.written[instr.name][instr.indices] = True

    # -- the fabric ----------------------------------------------------------------------------------

    def _send(self, src: Coord, color: int, data: np.ndarray, dtype: DType) -> None:
        wavelets = self.machine.wavelets(data.size, dtype)
        frontier = [(src, RAMP)]
        while frontier:
            at, came_from = frontier.pop()
            entry = self.tables.get(at, {}).get(color)
            if entry is None:
                raise SimulationError(f"wavelets on color {color} reach router {at}, which has no route for it")
            if entry.input != came_from:
                raise SimulationError(f"router {at} expects color {color} from {entry.input}, got it from {came_from}")
            for out in sorted(entry.outputs):
                if out == RAMP:
                    self.queues[(at, color)].append(data)
                    self.queued[(at, color)] += data.size
                    continue
                self.stats.link_wavelets[(self.wafer, at, out)] += wavelets
                nxt = neighbor(at, out)
                if not (0 <= nxt[0] < self.machine.mesh_height and 0 <= nxt[1] < self.machine.mesh_width):
                    raise SimulationError(f"router {at} sends color {color} off the mesh ({out})")
                frontier.append((nxt, OPPOSITE[out]))

    def _take(self, at: Coord, color: int, count: int) -> np.ndarray:
        queue = self.queues[(at, color)]
        taken: list[np.ndarray] = []
        need = count
        while need:
            head = queue[0]
            if head.size <= need:
                taken.append(queue.pop(0))
                need -= head.size
            else:
                taken.append(head[:need])
                queue[0] = head[need:]
                need = 0
        self.queued[(at, color)] -= count
        return np.concatenate(taken) if taken else np.zeros(0)

