"""A cycle-level functional simulator of LPU programs (numpy).

It executes the instructions of an `LpuProgram` (usually parsed from a `.lpu` listing) in cycle order.
What makes it cycle-level is the streams: a value written onto stream s at position p in cycle t is
on the diagonal {(p + k, t + k * hop)} (eastward; westward mirrors it) and nowhere else, so a unit
that reads stream s at its own position in its issue cycle gets the value whose diagonal passes there,
the nearest upstream writer winning. An instruction issued a cycle early or late reads another
vector, a stale one, or nothing, and then the program computes wrong numbers or stops with
"stream E4-7 empty at cycle C". MEM reads see writes whose latency has elapsed; the MXM and SXM
transposer use the weights installed (IW/TSW) before their issue cycle; C2C links deliver a vector
`serialisation + latency` cycles after SEND, to a RECV that must be issued in exactly that cycle.

Numerics (see docs/targets/lpu.md): VXM instructions apply the reference interpreter's definition of
the op (`ir.interpreter.evaluate_node`) to 320-lane vectors, so elementwise results are bit-identical.
MVM rounds its operands to its precision (fp16, bf16, int8 or fp32) and accumulates in fp32 (int32 for
int8), adding the products one k after the other onto the accumulator (the systolic array's order, and
the reference's sequential dot product: a different order changes f32 sums by an ulp, which flips
near-ties of a following bf16 rounding); the result is rounded to the program's dtype when emitted.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from compiler.diagnostics import NicheError
from ir.dtypes import round_bf16, to_numpy
from ir.graph import Node
from ir.interpreter import evaluate_node
from ir.types import TensorType
from targets.lpu.isa import PRECISIONS, Instruction, Stream, latency, unit_ops, vxm_graph_op
from targets.lpu.program import LpuProgram
from targets.lpu.vectors import width


class SimulationError(NicheError):
    """The program did something the machine cannot: read an empty stream, collide on a stream, ..."""


@dataclass
class _Word:
    """What one stream register (or MEM word) holds: part `part` of a vector `width` words wide."""

    token: int
    part: int
    width: int
    vector: np.ndarray


@dataclass
class _Matrix:
    """The MXM plane or SXM transposer state: a load buffer, the installed block, accumulators."""

    load: np.ndarray | None = None
    active: np.ndarray | None = None
    accumulators: dict[int, np.ndarray] = field(default_factory=dict)


def _round_to(vector: np.ndarray, precision: str) -> np.ndarray:
    if precision == "int8":
        return vector.astype(np.int64)
    if precision == "fp16":
        return vector.astype(np.float16).astype(np.float32)
    if precision == "bf16":
        return round_bf16(vector.astype(np.float32))
    return vector.astype(np.float32)


def _dot_in_order(weights: np.ndarray, activation: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    """Each row of `weights` times `activation`, the products added in f32 one k after the other onto
    `start` (an accumulator's value) or onto zero: the order in which partial sums flow down the MXM's
    systolic array, continuing across k blocks through the accumulator. It is the order of the
    reference's sequential dot products, so where a bf16 rounding follows, near-ties round alike."""
    products = weights.astype(np.float32) * activation[None, :]
    if start is not None:
        products = np.concatenate([np.asarray(start, dtype=np.float32)[:, None], products], axis=1)
    return np.add.accumulate(products, axis=1, dtype=np.float32)[:, -1]


def _wrap_int32(values: np.ndarray) -> np.ndarray:
    return ((values + 2**31) % 2**32) - 2**31


class Simulator:
    def __init__(self, program: LpuProgram) -> None:
        self.program = program
        self.machine = program.machine
        self.layout = program.machine.layout
        self.hop = int(program.machine.stream_hop_cycles)
        self.lanes = program.machine.lanes
        self.memory: dict[tuple[int, str], dict[int, _Word]] = {}
        self.streams: dict[tuple[int, str, int], dict[int, dict[int, _Word]]] = {}
        self.links: dict[tuple[int, str], dict[int, np.ndarray]] = {}
        self.matrices: dict[tuple[int, str], _Matrix] = {}
        self.events: list[tuple[int, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._tokens = itertools.count()
        self.cycle = 0
        self.instruction: Instruction | None = None
        self.ports: dict[tuple[int, str, str], dict[int, int]] = {}  # port -> cycle -> issue cycle holding it
        self._handlers: dict[str, Callable[[Instruction], None]] = {
            "READ": self._read, "WRITE": self._write, "PERMUTE": self._permute, "MERGE": self._merge,
            "LW": self._lw, "IW": self._iw, "MVM": self._mvm, "TLD": self._tld, "TSW": self._tsw,
            "TST": self._tst, "SEND": self._send, "RECV": self._recv,
        }

    # -- errors ------------------------------------------------------------------------------------

    def fail(self, message: str) -> SimulationError:
        where = ""
        if self.instruction is not None:
            i = self.instruction
            where = f"c{i.chip} {i.unit} {i.op}: "
        return SimulationError(f"LPU simulation: cycle {self.cycle}: {where}{message}")

    # -- host I/O ----------------------------------------------------------------------------------

    def load(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Write parameters and compile-time data into MEM, as the host does before the program runs."""
        for name, tensor in self.program.tensors.items():
            if tensor.role in ("input", "weight"):
                if name not in inputs:
                    raise SimulationError(f"missing argument '{name}'")
                value = np.asarray(inputs[name])
            elif tensor.role == "data":
                if tensor.data is None:
                    raise SimulationError(f"tensor {name} has role data but no .data line")
                value = tensor.data
            else:
                continue
            vectors = tensor.layout.pack(to_numpy(value, tensor.layout.dtype))
            w = tensor.layout.width
            for extent in tensor.extents:
                if extent.replica:
                    continue
                for v in range(extent.first, extent.first + extent.count):
                    slice_name, address = extent.locate(v, w)
                    self._store(extent.chip, slice_name, address, vectors[v].copy(), w)

    def outputs(self) -> list[np.ndarray]:
        results = []
        for name in self.program.outputs:
            tensor = self.program.tensors[name]
            layout = tensor.layout
            vectors = np.zeros((layout.vectors, self.lanes), dtype=layout.dtype.numpy)
            for v in range(layout.vectors):
                extent = next((e for e in tensor.extents if e.first <= v < e.first + e.count and not e.replica),
                              None) or next(e for e in tensor.extents if e.first <= v < e.first + e.count)
                slice_name, address = extent.locate(v, layout.width)
                word = self.memory.get((extent.chip, slice_name), {}).get(address)
                if word is None or word.part != 0:
                    raise SimulationError(f"result {name}: vector {v} was never written "
                                          f"(c{extent.chip} {slice_name}[{address}])")
                vectors[v] = word.vector
            results.append(layout.unpack(vectors))
        return results

    # -- ports ---------------------------------------------------------------------------------------

    def _port(self, i: Instruction) -> tuple[str, int] | None:
        """The port an instruction holds and for how many cycles: a MEM slice reads (and, separately,
        writes) one word per cycle, so a vector of w words holds the port w cycles; an MXM plane runs one
        MVM or IW at a time; a C2C link transmits one vector at a time. LWs share the plane's load bytes
        (the scheduler's budget), so they hold nothing here."""
        if i.op in ("READ", "WRITE"):
            return i.op.lower(), width(i.dtype)
        if i.op == "MVM":
            return "array", self.machine.mvm_cycles(str(i.get("prec")))
        if i.op == "IW":
            return "array", int(self.machine.mxm_install_cycles)
        if i.op == "SEND":
            return "tx", self.machine.c2c_cycles(width(i.dtype) * self.lanes)
        if i.op == "RECV":
            return "rx", 1
        if i.op == "LW":
            return None
        return "issue", 1

    def _occupy(self, i: Instruction) -> None:
        """Refuse a second instruction on a port that an earlier one still holds (two reads of one MEM
        slice in one cycle would return one vector for both on the chip)."""
        port = self._port(i)
        if port is None:
            return
        kind, cycles = port
        held = self.ports.setdefault((i.chip, i.unit, kind), {})
        for cycle in range(i.cycle, i.cycle + max(1, cycles)):
            if cycle in held:
                raise self.fail(f"port conflict: the {kind} port of {i.unit} is held in cycle {cycle} by the "
                                f"instruction issued in cycle {held[cycle]}")
            held[cycle] = i.cycle

    # -- memory and streams ----------------------------------------------------------------------

    def _store(self, chip: int, slice_name: str, address: int, vector: np.ndarray, w: int) -> None:
        if address < 0 or address + w > self.machine.mem_words_per_slice:
            raise self.fail(f"address {address} (+{w} words) is outside {slice_name} "
                            f"({self.machine.mem_words_per_slice} words)")
        bank = self.memory.setdefault((chip, slice_name), {})
        token = next(self._tokens)
        for part in range(w):
            bank[address + part] = _Word(token, part, w, vector)

    def _fetch(self, chip: int, slice_name: str, address: int, w: int) -> np.ndarray:
        word = self.memory.get((chip, slice_name), {}).get(address)
        if word is None:
            raise self.fail(f"{slice_name}[{address}] holds no vector (read before any write)")
        if word.part != 0 or word.width != w:
            raise self.fail(f"{slice_name}[{address}] holds part {word.part} of a {word.width}-word vector, "
                            f"not the start of a {w}-word vector")
        return word.vector

    def _key(self, direction: str, position: int, cycle: int) -> int:
        return cycle - position * self.hop if direction == "E" else cycle + position * self.hop

    def _put(self, chip: int, stream: Stream, position: int, cycle: int, vector: np.ndarray) -> None:
        token = next(self._tokens)
        if stream.first + stream.count > self.machine.streams_per_direction:
            raise self.fail(f"stream {stream} does not exist ({self.machine.streams_per_direction} per direction)")
        key = self._key(stream.direction, position, cycle)
        for part, stream_id in enumerate(stream.ids):
            diagonal = self.streams.setdefault((chip, stream.direction, stream_id), {}).setdefault(key, {})
            if position in diagonal:
                raise self.fail(f"stream conflict: two vectors written onto {stream.direction}{stream_id} at "
                                f"position {position} in cycle {cycle}")
            diagonal[position] = _Word(token, part, stream.count, vector)

    def _take(self, chip: int, stream: Stream, position: int) -> np.ndarray:
        """The vector on a stream group at `position` in the current cycle."""
        key = self._key(stream.direction, position, self.cycle)
        found: _Word | None = None
        for part, stream_id in enumerate(stream.ids):
            diagonal = self.streams.get((chip, stream.direction, stream_id), {}).get(key)
            word = None
            if diagonal:
                if stream.direction == "E":
                    upstream = [p for p in diagonal if p <= position]
                    word = diagonal[max(upstream)] if upstream else None
                else:
                    upstream = [p for p in diagonal if p >= position]
                    word = diagonal[min(upstream)] if upstream else None
            if word is None:
                raise self.fail(f"stream {stream} empty at cycle {self.cycle} (position {position})")
            if word.part != part or word.width != stream.count or (found is not None and word.token != found.token):
                raise self.fail(f"stream group {stream} at cycle {self.cycle} holds parts of different vectors")
            found = word
        return found.vector

    def _emit(self, instruction: Instruction, cycle: int, vector: np.ndarray) -> None:
        if instruction.dst is None:
            return
        chip = instruction.chip
        position = self.layout.position(instruction.unit)
        stream = instruction.dst
        if stream.count != width(instruction.dtype):
            raise self.fail(f"destination {stream} is {stream.count} streams wide; a {instruction.dtype} vector "
                            f"takes {width(instruction.dtype)}")
        self._later(cycle, lambda: self._put(chip, stream, position, cycle, vector))

    def _later(self, cycle: int, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (cycle, next(self._sequence), action))

    def _operands(self, instruction: Instruction) -> list[np.ndarray]:
        position = self.layout.position(instruction.unit)
        return [self._take(instruction.chip, s, position) for s in instruction.srcs]

    def _map(self, instruction: Instruction, key: str) -> np.ndarray:
        label = instruction.get(key)
        if not isinstance(label, str) or not label.startswith("m") or not label[1:].isdigit():
            raise self.fail(f"needs {key}=mN")
        index = int(label[1:])
        if index >= len(self.program.maps):
            raise self.fail(f"lane map {label} is not declared")
        values = self.program.maps[index]
        if len(values) != self.lanes:
            raise self.fail(f"lane map {label} has {len(values)} lanes, not {self.lanes}")
        return values

    def _matrix(self, instruction: Instruction) -> _Matrix:
        return self.matrices.setdefault((instruction.chip, instruction.unit), _Matrix())

    # -- instructions --------------------------------------------------------------------------

    def _address(self, i: Instruction) -> int:
        address = i.get("addr")
        if not isinstance(address, int):
            raise self.fail("needs addr=N (a MEM word address)")
        return address

    def _read(self, i: Instruction) -> None:
        address = self._address(i)
        vector = self._fetch(i.chip, i.unit, address, width(i.dtype))
        self._emit(i, i.cycle + latency(self.machine, "READ"), vector)

    def _write(self, i: Instruction) -> None:
        (vector,) = self._operands(i)
        valid = i.get("valid", self.lanes)
        stored = np.array(vector, copy=True)
        stored[valid:] = 0
        if stored.dtype != i.dtype.numpy:
            raise self.fail(f"stream holds {stored.dtype} data, the write stores {i.dtype}")
        chip, unit, address, w = i.chip, i.unit, self._address(i), width(i.dtype)
        self._later(i.cycle + latency(self.machine, "WRITE"), lambda: self._store(chip, unit, address, stored, w))

    def _vxm(self, i: Instruction) -> None:
        graph_op = vxm_graph_op(i.op)
        if graph_op is None:
            raise self.fail(f"the VXM has no instruction {i.op}")
        operands = self._operands(i)
        attrs = (("dtype", i.dtype),) if graph_op == "cast" else ()
        node = Node(graph_op, TensorType((self.lanes,), i.dtype), attrs)
        try:
            result = evaluate_node(node, operands)
        except (ValueError, TypeError) as error:
            raise self.fail(f"cannot apply {i.op} to its operands: {error}") from None
        self._emit(i, i.cycle + latency(self.machine, i.op), result)

    def _merge(self, i: Instruction) -> None:
        a, b = self._operands(i)
        mask = self._map(i, "mask")
        self._emit(i, i.cycle + latency(self.machine, "MERGE"), np.where(mask > 0, a, b).astype(a.dtype))

    def _permute(self, i: Instruction) -> None:
        (vector,) = self._operands(i)
        lane_map = self._map(i, "map")
        result = np.where(lane_map >= 0, vector[np.clip(lane_map, 0, None)], np.zeros((), vector.dtype))
        self._emit(i, i.cycle + latency(self.machine, "PERMUTE"), result.astype(vector.dtype))

    def _lw(self, i: Instruction) -> None:
        (vector,) = self._operands(i)
        state = self._matrix(i)
        precision = str(i.get("prec"))
        if state.load is None:
            state.load = np.zeros((self.lanes, self.lanes), dtype=np.int64 if precision == "int8" else np.float32)
        state.load[i.get("row")] = _round_to(vector, precision)

    def _iw(self, i: Instruction) -> None:
        state = self._matrix(i)
        loaded = state.load
        state.load = None

        def install() -> None:
            state.active = loaded

        self._later(i.cycle + latency(self.machine, "IW"), install)

    def _mvm(self, i: Instruction) -> None:
        (vector,) = self._operands(i)
        state = self._matrix(i)
        precision = str(i.get("prec"))
        if state.active is None:
            raise self.fail("no weights installed (IW) in this MXM plane")
        activation = _round_to(vector, precision)
        weights = state.active
        acc, mode, dtype = i.get("acc"), i.get("mode"), i.dtype
        position = self.layout.position(i.unit)
        cycle = i.cycle + latency(self.machine, "MVM")

        def accumulate() -> None:
            start = None
            if mode == "add":
                if acc not in state.accumulators:
                    raise self.fail(f"accumulator {acc} added to before it was set")
                start = state.accumulators[acc]
            if precision == "int8":
                product = _wrap_int32(weights @ activation)
                state.accumulators[acc] = product if start is None else _wrap_int32(start + product)
            else:
                state.accumulators[acc] = _dot_in_order(weights, activation.astype(np.float32), start)
            if i.dst is not None:
                value = state.accumulators[acc]
                self._put(i.chip, i.dst, position, cycle, to_numpy(value, dtype))

        if i.dst is not None and i.dst.count != width(dtype):
            raise self.fail(f"destination {i.dst} does not fit a {dtype} vector")
        self._later(cycle, accumulate)

    def _tld(self, i: Instruction) -> None:
        (vector,) = self._operands(i)
        state = self._matrix(i)
        if state.load is None:
            state.load = np.zeros((self.lanes, self.lanes), dtype=vector.dtype)
        state.load[i.get("row")] = vector

    def _tsw(self, i: Instruction) -> None:
        state = self._matrix(i)
        loaded = state.load
        state.load = None

        def install() -> None:
            state.active = loaded

        self._later(i.cycle + latency(self.machine, "TSW"), install)

    def _tst(self, i: Instruction) -> None:
        state = self._matrix(i)
        if state.active is None:
            raise self.fail("the transposer holds no installed block (TSW)")
        column = np.array(state.active[:, i.get("col")], copy=True)
        if column.dtype != i.dtype.numpy:
            raise self.fail(f"the transposer holds {column.dtype} data, TST emits {i.dtype}")
        self._emit(i, i.cycle + latency(self.machine, "TST"), column)

    def _send(self, i: Instruction) -> None:
        (vector,) = self._operands(i)
        nbytes = width(i.dtype) * self.lanes
        arrival = i.cycle + self.machine.c2c_cycles(nbytes) + int(self.machine.c2c_latency_cycles)
        channel = self.links.setdefault((i.chip, i.unit), {})
        if arrival in channel:
            raise self.fail(f"link conflict: two vectors arrive on c{i.chip}.{i.unit} in cycle {arrival}")
        channel[arrival] = vector

    def _recv(self, i: Instruction) -> None:
        chan = str(i.get("chan", ""))
        chip_text, _, unit = chan.partition(".")
        if not chip_text.startswith("c") or not unit:
            raise self.fail("needs chan=cN.C2C.k (the sending chip and link)")
        arrivals = self.links.get((int(chip_text[1:]), unit), {})
        if self.cycle not in arrivals:
            raise self.fail(f"link {chan} delivers nothing at cycle {self.cycle}")
        self._emit(i, i.cycle + latency(self.machine, "RECV"), arrivals.pop(self.cycle))

    # -- the main loop ---------------------------------------------------------------------------

    def _apply_events(self, until: int) -> None:
        while self.events and self.events[0][0] <= until:
            cycle, _, action = heapq.heappop(self.events)
            self.cycle = cycle
            self.instruction = None
            action()

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        self.load(inputs)
        for instruction in sorted(self.program.instructions, key=lambda i: i.cycle):
            self._apply_events(instruction.cycle)
            self.cycle = instruction.cycle
            self.instruction = instruction
            if not self.layout.has_unit(instruction.unit) or instruction.chip >= self.program.chips:
                raise self.fail(f"no unit {instruction.unit} on chip {instruction.chip}")
            if instruction.op not in unit_ops(instruction.kind):
                raise self.fail(f"{instruction.unit} cannot execute {instruction.op}")
            if instruction.op in ("LW", "MVM") and instruction.get("prec") not in PRECISIONS:
                raise self.fail(f"unknown precision prec={instruction.get('prec')} "
                                f"(precisions: {', '.join(PRECISIONS)})")
            if instruction.dtype is None and instruction.op not in ("IW", "TSW"):
                raise self.fail(f"{instruction.op} needs an element type ({instruction.op}.f32, ...)")
            self._occupy(instruction)
            try:
                self._handlers.get(instruction.op, self._vxm)(instruction)
            except SimulationError:
                raise
            except (ValueError, TypeError, KeyError, IndexError) as error:
                raise self.fail(f"malformed instruction (operands or fields): {error}") from None
        self._apply_events(2**62)
        self.instruction = None
        return self.outputs()



def simulate(program: LpuProgram, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run `program` on named inputs (parameters by name); returns the outputs in order."""
    return Simulator(program).run(inputs)

