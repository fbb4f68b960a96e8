"""The static list scheduler: jobs in program order, each placed at the earliest cycle where it fits.

A job is a tree of instructions whose relative cycles are fixed once its units are known: a child's
result must reach its parent exactly in the parent's issue cycle, so

    cycle(child) = cycle(parent) - latency(child) - distance(child, parent) * stream_hop_cycles

(and for a C2C transfer, SEND = RECV - serialisation - link latency). The scheduler binds chains to MXM
planes / SXM transposers (the least recently used), computes these offsets, then tries root cycles
T = T_min, T_min + 1, ... until every instruction finds a free unit of its pool and every edge a free
stream group on its diagonal. T_min honours when data are in MEM (a Write's latency after it issued),
the load/install/use order of a chain's unit, and placement order within a hint group.

Reservation tables: one per unit issue slot (VXM ALU, SXM unit, MXM array, MEM read and write port,
C2C transmit and receive), a byte budget per cycle for each MXM plane's weight loads, and per stream
the diagonals it carries with the slice interval each value occupies. Independent jobs overlap
wherever the tables allow.

A job that cannot fit in one piece (two reads from one slice in one cycle, more same-cycle
instructions than a pool has units, or no free cycle within `SPILL_AFTER` tries) parks part of its
tree in MEM: that part becomes a job of its own writing a scratch word, read back where it was used.
Nothing depends on dict or set iteration order of objects, so the same program always gets the same
schedule.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from targets.base import TargetError
from targets.lpu.allocate import ChipMemory
from targets.lpu.isa import Instruction, Stream, latency
from targets.lpu.jobs import Job, VOp
from targets.lpu.machine import LpuMachine
from targets.lpu.vectors import width

MAX_ATTEMPTS = 1_000_000
SPILL_AFTER = 2048  # attempts after which a crowded job parks part of its tree in MEM
HORIZON_GAP = 100_000  # cycles past every reservation: where a job is tried alone on an idle machine


@dataclass
class _UnitState:
    last_install: int = -1
    max_load: int = -1
    max_use: int = -1


class Scheduler:
    def __init__(self, machine: LpuMachine, chips: int, memory: list[ChipMemory] | None = None) -> None:
        self.machine = machine
        self.memory = memory or [ChipMemory(machine, chip) for chip in range(chips)]
        self.spills = 0
        self.horizon = 0  # every reservation ends before this cycle
        self.layout = machine.layout
        self.chips = chips
        self.hop = int(machine.stream_hop_cycles)
        self.streams_per_direction = machine.streams_per_direction
        self.busy: dict[tuple, set[int]] = defaultdict(set)
        self.lw_used: dict[tuple, dict[int, int]] = defaultdict(dict)
        self.stream_table: dict[tuple, dict[int, list[tuple[int, int]]]] = defaultdict(dict)
        self.ready: dict[tuple[int, str, int], int] = {}
        self.bound: dict[tuple, str] = {}
        self.state: dict[tuple[int, str], _UnitState] = defaultdict(_UnitState)
        self.last_use: dict[tuple[int, str], int] = defaultdict(lambda: -1)
        self.hints: dict = {}
        self.instructions: list[Instruction] = []
        self.tags: list[int | None] = []  # the stage of each instruction
        self._tag: int | None = None

    # -- units and positions -----------------------------------------------------------------------

    def _bind(self, nodes: list[VOp]) -> None:
        for node in nodes:
            if node.chain is None or node.chain in self.bound:
                continue
            kind, chip, _ = node.chain
            if kind == "MXM":
                candidates = self.layout.mxm_planes()
            else:
                candidates = self.layout.sxm_units("W") + self.layout.sxm_units("E")
            self.bound[node.chain] = min(candidates, key=lambda u: self._free_at(chip, u))

    def _free_at(self, chip: int, unit: str) -> int:
        state = self.state[(chip, unit)]
        return max(self.last_use[(chip, unit)], state.last_install, state.max_load, state.max_use)

    def _candidates(self, node: VOp) -> list[str]:
        if node.unit is not None:
            return [node.unit]
        if node.chain is not None:
            return [self.bound[node.chain]]
        if node.pool == "VXM":
            return self.layout.vxm_units()
        if node.pool in ("SXM.W", "SXM.E"):
            return self.layout.sxm_units(node.pool[-1])
        raise TargetError(f"lpu target: internal error: {node.op} has no unit")

    def _position(self, node: VOp) -> int:
        return self.layout.position(self._candidates(node)[0])

    def _resources(self, node: VOp, unit: str, cycle: int) -> list[tuple]:
        """Capacity-1 resources (key, cycle) the node takes on `unit` when issued in `cycle`."""
        chip = node.chip
        if node.op == "READ":
            key = (chip, unit, "read")
        elif node.op == "WRITE":
            key = (chip, unit, "write")
        elif node.op in ("MVM", "IW"):
            key = (chip, unit, "array")
        elif node.op == "LW":
            return []
        elif node.op == "SEND":
            key = (chip, unit, "tx")
        elif node.op == "RECV":
            key = (chip, unit, "rx")
        else:
            key = (chip, unit)
        return [(key, cycle + i) for i in range(max(1, node.busy))]

    # -- timing ----------------------------------------------------------------------------------

    def _offsets(self, nodes: list[VOp], positions: dict[int, int]) -> dict[int, int]:
        offsets = {id(nodes[0]): 0}
        for node in nodes:
            for child in node.inputs:
                if node.op == "RECV":
                    offset = offsets[id(node)] - child.busy - int(self.machine.c2c_latency_cycles)
                else:
                    distance = abs(positions[id(node)] - positions[id(child)])
                    offset = offsets[id(node)] - latency(self.machine, child.op) - distance * self.hop
                if offsets.setdefault(id(child), offset) != offset:
                    raise TargetError(f"lpu target: internal error: {child.op} feeds consumers that need it "
                                      "in different cycles")
        return offsets

    @staticmethod
    def _consumers(nodes: list[VOp]) -> dict[int, list[VOp]]:
        consumers: dict[int, list[VOp]] = {}
        for node in nodes:
            for child in node.inputs:
                if node not in consumers.setdefault(id(child), []):
                    consumers[id(child)].append(node)
        return consumers

    def _lower_bound(self, node: VOp) -> int:
        bound = 0
        if node.op == "READ" and node.reads is not None:
            bound = self.ready.get(node.reads, 0)
        if node.chain is not None:
            state = self.state[(node.chip, self.bound[node.chain])]
            if node.op in ("LW", "TLD"):
                bound = max(bound, state.last_install + 1)
            elif node.op in ("MVM", "TST"):
                if state.last_install < 0:
                    raise TargetError(f"lpu target: internal error: {node.op} before any install")
                bound = max(bound, state.last_install + latency(self.machine, "IW" if node.op == "MVM" else "TSW"))
            elif node.op in ("IW", "TSW"):
                bound = max(bound, state.max_load + 1, state.max_use + 1, state.last_install + 1)
        return bound

    # -- placement -------------------------------------------------------------------------------

    def place(self, job: Job) -> int:
        """Place a job; returns the cycle of its root."""
        outer = self._tag
        if job.tag is not None:
            self._tag = job.tag
        try:
            return self._place(job)
        finally:
            self._tag = outer

    def _place(self, job: Job) -> int:
        while True:
            nodes, positions, offsets = self._prepare(job)
            start = max(self._lower_bound(n) - offsets[id(n)] for n in nodes)
            if job.hint is not None:
                start = max(start, self.hints.get(job.hint, start))
            for attempt in range(MAX_ATTEMPTS):
                if attempt == SPILL_AFTER:
                    victim = self._crowded_victim(nodes)
                    if victim is not None:
                        self._spill(nodes, victim, offsets, positions)
                        break
                found = self._try(nodes, start + attempt, offsets, positions)
                if found is not None:
                    self._commit(nodes, start + attempt, offsets, found)
                    if job.hint is not None:
                        self.hints[job.hint] = start + attempt
                    return start + attempt
                if attempt == 0 and self._try(nodes, self.horizon + HORIZON_GAP - min(offsets.values()), offsets,
                                              positions) is None:
                    # It does not fit even where the machine is idle (too many values meet in one cycle
                    # for the streams): no later cycle will do, so split it now. (Checked only after the
                    # first try fails: a job that fits at `start` fits on an idle machine.)
                    victim = self._half(nodes) or self._crowded_victim(nodes)
                    if victim is not None:
                        self._spill(nodes, victim, offsets, positions)
                        break
            else:
                raise TargetError(f"lpu target: internal error: no cycle found for {job.root.op} "
                                  f"({job.root.comment})")

    def _prepare(self, job: Job) -> tuple[list[VOp], dict[int, int], dict[int, int]]:
        """Units bound, positions and offsets of a job's nodes, after removing conflicts inside the job:
        two reads of one MEM word in one cycle become one; reads colliding on a slice's port and
        more same-cycle instructions than a pool has units are parked in MEM by earlier jobs."""
        while True:
            nodes = job.root.walk()
            self._bind(nodes)
            positions = {id(n): self._position(n) for n in nodes}
            offsets = self._offsets(nodes, positions)
            if self._merge_reads(nodes, offsets):
                continue
            victim = self._self_conflict(nodes, offsets)
            if victim is None:
                return nodes, positions, offsets
            if self._too_wide(nodes, offsets):  # split in halves instead of parking one op at a time
                victim = self._half(nodes) or victim
            self._spill(nodes, victim, offsets, positions)

    @staticmethod
    def _merge_reads(nodes: list[VOp], offsets: dict[int, int]) -> bool:
        canonical: dict[tuple, VOp] = {}
        changed = False
        for node in nodes:
            for index, child in enumerate(node.inputs):
                if child.op != "READ":
                    continue
                key = (child.reads, offsets[id(child)], child.dtype)
                first = canonical.setdefault(key, child)
                if first is not child:
                    node.inputs[index] = first
                    changed = True
        return changed

    def _self_conflict(self, nodes: list[VOp], offsets: dict[int, int]) -> VOp | None:
        used: dict[tuple, VOp] = {}
        pools: dict[tuple, list[VOp]] = {}
        for node in nodes:
            if node.pool is not None:
                pools.setdefault((node.chip, node.pool, offsets[id(node)]), []).append(node)
                continue
            if node.op == "LW":
                continue
            unit = node.unit if node.unit is not None else self.bound[node.chain]
            for key in self._resources(node, unit, offsets[id(node)]):
                if key in used and used[key] is not node:
                    return node
                used[key] = node
        for key in sorted(pools, key=lambda k: (k[0], k[1], k[2])):
            members = pools[key]
            if len(members) > len(self._candidates(members[0])):
                return members[-1]
        return None

    def _too_wide(self, nodes: list[VOp], offsets: dict[int, int]) -> bool:
        """Whether some cycle of the job wants more VXM/SXM ops than the pool has units, or more operand
        words arriving than the streams of both directions carry (a reduction folding many vectors at
        once): no cycle fits such a job, and parking one op per conflict would take very many jobs."""
        ops: dict[tuple, int] = defaultdict(int)
        operands: dict[tuple, set[int]] = defaultdict(set)
        for node in nodes:
            if node.pool is None:
                continue
            key = (node.chip, node.pool[:3], offsets[id(node)])
            ops[(node.chip, node.pool, offsets[id(node)])] += 1
            operands[key].update(id(child) for child in node.inputs)
        words = {id(n): width(n.dtype) if n.dtype is not None else 1 for n in nodes}
        if any(sum(words[c] for c in children) > 2 * self.streams_per_direction for children in operands.values()):
            return True
        return any(count > len(self._pool_units(pool)) for (_, pool, _), count in ops.items())

    def _pool_units(self, pool: str) -> list[str]:
        return self.layout.vxm_units() if pool == "VXM" else self.layout.sxm_units(pool[-1])

    @staticmethod
    def _crowded_victim(nodes: list[VOp]) -> VOp | None:
        # Parking the operand of a WRITE gives a job that writes it elsewhere: the same job again.
        kept = {id(child) for child in nodes[0].inputs} if nodes[0].op == "WRITE" else set()
        sizes = {id(n): len(n.walk()) for n in nodes[1:] if n.op != "READ" and id(n) not in kept}
        if not sizes:
            return None
        return max((n for n in nodes[1:] if id(n) in sizes), key=lambda n: sizes[id(n)])

    def _spill(self, nodes: list[VOp], victim: VOp, offsets: dict[int, int], positions: dict[int, int]) -> None:
        """Compute `victim` in a job of its own that writes it to a free MEM word; read it back here.

        The word goes to a slice this job does not touch if one has room, else to a slice whose read port
        the rest of the job leaves free while the read back holds it (its cycle depends on the slice's
        distance from the consumers). When no slice has such a port for `victim` (a job reading every
        slice, each at the very cycle a read back from it would need), what is parked grows: the READ's
        consumer, then the largest part of the job no bigger than half of it, so the job splits."""
        touched = {n.unit for n in nodes if n.op in ("READ", "WRITE") and n.unit is not None}
        for candidate in self._spill_candidates(nodes, victim):
            consumers = [n for n in nodes if any(child is candidate for child in n.inputs)]
            held = self._read_cycles(nodes[0], candidate, offsets)

            def port_free(slice_name: str) -> bool:
                offset = self._read_back_offset(slice_name, consumers, offsets, positions)
                return offset is not None and held[slice_name].isdisjoint(range(offset, offset + count))

            count = width(candidate.dtype)
            memory = self.memory[candidate.chip]
            slice_name = memory.scratch_slice(count, [lambda name: name not in touched and port_free(name),
                                                      port_free])
            if slice_name is not None:
                self._park(nodes, candidate, slice_name, memory.scratch(count, slice_name))
                return
        raise TargetError(f"lpu target: internal error: no MEM slice on chip {victim.chip} has a free read port "
                          f"to park {victim.comment or victim.op}")

    def _spill_candidates(self, nodes: list[VOp], victim: VOp) -> list[VOp]:
        """What may be parked to resolve a conflict at `victim`, smallest first."""
        candidates = [victim]
        parents = [n for n in nodes[1:] if any(child is victim for child in n.inputs)]
        root_operands = {id(child) for child in nodes[0].inputs}
        if victim.op == "READ" and len(parents) == 1 and parents[0].pool is not None \
                and id(parents[0]) not in root_operands:  # parking a root operand gives the same job again
            candidates.append(parents[0])
        half = self._half(nodes)
        if half is not None and half not in candidates:
            candidates.append(half)
        return candidates

    @staticmethod
    def _half(nodes: list[VOp]) -> VOp | None:
        """The largest subtree of the job, at most half its size, with no MXM/SXM chain or C2C op in it."""
        best, best_size = None, 1
        for node in nodes[1:]:
            if node.op == "READ":
                continue
            below = node.walk()
            if len(below) > len(nodes) // 2 or len(below) <= best_size:
                continue
            if any(n.chain is not None or n.op in ("SEND", "RECV") for n in below):
                continue
            best, best_size = node, len(below)
        return best

    def _park(self, nodes: list[VOp], victim: VOp, slice_name: str, address: int) -> None:
        chip, count = victim.chip, width(victim.dtype)
        word = (chip, slice_name, address)
        self.place(Job(VOp("WRITE", chip, victim.dtype, [victim], unit=slice_name,
                           fields={"addr": address, "valid": self.machine.lanes}, writes=word, busy=count,
                           comment="parked " + (victim.comment or victim.op))))
        read = VOp("READ", chip, victim.dtype, unit=slice_name, fields={"addr": address}, reads=word,
                   busy=count, comment="parked " + (victim.comment or victim.op))
        for node in nodes:
            node.inputs = [read if child is victim else child for child in node.inputs]
        self.spills += 1

    @staticmethod
    def _read_cycles(root: VOp, victim: VOp, offsets: dict[int, int]) -> dict[str, set[int]]:
        """Per MEM slice, the cycles (relative to the root) its read port is held by the job without
        `victim` and what only `victim` feeds."""
        held: dict[str, set[int]] = defaultdict(set)
        seen: set[int] = set()
        stack = [root]
        while stack:
            node = stack.pop()
            if node is victim or id(node) in seen:
                continue
            seen.add(id(node))
            if node.op == "READ" and node.unit is not None:
                held[node.unit].update(range(offsets[id(node)], offsets[id(node)] + max(1, node.busy)))
            stack.extend(node.inputs)
        return held

    def _read_back_offset(self, slice_name: str, consumers: list[VOp], offsets: dict[int, int],
                          positions: dict[int, int]) -> int | None:
        """The cycle (relative to the root) a READ in `slice_name` must issue to reach every consumer in
        its cycle, or None when the consumers would need it in different cycles."""
        position = self.layout.position(slice_name)
        wanted = set()
        for consumer in consumers:
            if consumer.op == "RECV":
                return None
            distance = abs(positions[id(consumer)] - position)
            wanted.add(offsets[id(consumer)] - latency(self.machine, "READ") - distance * self.hop)
        return wanted.pop() if len(wanted) == 1 else None

    def _try(self, nodes: list[VOp], root: int, offsets: dict[int, int],
             positions: dict[int, int]) -> tuple[dict[int, str], dict[int, Stream]] | None:
        taken: set[tuple] = set()
        lw_taken: dict[tuple, int] = defaultdict(int)
        units: dict[int, str] = {}
        for node in nodes:
            cycle = root + offsets[id(node)]
            if cycle < 0:
                return None
            for unit in self._candidates(node):
                if node.op == "LW":
                    key = (node.chip, unit, "lw")
                    used = self.lw_used[key].get(cycle, 0) + lw_taken[(key, cycle)]
                    if used + node.lw_bytes <= self.machine.mxm_weight_load_bytes_per_cycle:
                        lw_taken[(key, cycle)] += node.lw_bytes
                        units[id(node)] = unit
                        break
                    continue
                resources = self._resources(node, unit, cycle)
                if all(c not in self.busy[k] and (k, c) not in taken for k, c in resources):
                    taken.update(resources)
                    units[id(node)] = unit
                    break
            else:
                return None
        streams: dict[int, Stream] = {}
        pending: list[tuple[int, tuple[int, int, int], int, int]] = []
        consumers = self._consumers(nodes)
        for child in nodes:
            readers = [r for r in consumers.get(id(child), []) if r.op != "RECV"]
            if not readers:
                continue
            a = positions[id(child)]
            ends = [positions[id(r)] for r in readers]
            if min(ends) < a < max(ends):
                raise TargetError(f"lpu target: internal error: {child.op} feeds consumers on both sides")
            b = max(ends, key=lambda e: abs(e - a))
            out = root + offsets[id(child)] + latency(self.machine, child.op)
            stream = self._free_stream(child.chip, a, b, out, width(child.dtype), pending)
            if stream is None:
                return None
            streams[id(child)] = stream
            key = out - a * self.hop if stream.direction == "E" else out + a * self.hop
            for sid in stream.ids:
                pending.append((sid, (child.chip, stream.direction, key), min(a, b), max(a, b)))
        return units, streams

    def _free_stream(self, chip: int, a: int, b: int, out: int, count: int, pending: list) -> Stream | None:
        directions = ("E",) if b > a else ("W",) if b < a else ("E", "W")
        low, high = min(a, b), max(a, b)
        for direction in directions:
            key = out - a * self.hop if direction == "E" else out + a * self.hop
            for first in range(self.streams_per_direction - count + 1):
                if all(self._stream_free(chip, direction, sid, key, low, high, pending)
                       for sid in range(first, first + count)):
                    return Stream(direction, first, count)
        return None

    def _stream_free(self, chip: int, direction: str, sid: int, key: int, low: int, high: int,
                     pending: list) -> bool:
        for lo, hi in self.stream_table[(chip, direction, sid)].get(key, ()):
            if lo <= high and low <= hi:
                return False
        for other_sid, other_key, lo, hi in pending:
            if other_sid == sid and other_key == (chip, direction, key) and lo <= high and low <= hi:
                return False
        return True

    def _commit(self, nodes: list[VOp], root: int, offsets: dict[int, int],
                found: tuple[dict[int, str], dict[int, Stream]]) -> None:
        units, streams = found
        positions = {id(n): self.layout.position(units[id(n)]) for n in nodes}
        consumers = self._consumers(nodes)
        for node in nodes:
            cycle = root + offsets[id(node)]
            unit = units[id(node)]
            if node.op == "LW":
                key = (node.chip, unit, "lw")
                self.lw_used[key][cycle] = self.lw_used[key].get(cycle, 0) + node.lw_bytes
            else:
                for key, c in self._resources(node, unit, cycle):
                    self.busy[key].add(c)
            stream = streams.get(id(node))
            if stream is not None:
                a = positions[id(node)]
                ends = [positions[id(r)] for r in consumers[id(node)] if r.op != "RECV"]
                b = max(ends, key=lambda e: abs(e - a))
                out = cycle + latency(self.machine, node.op)
                key = out - a * self.hop if stream.direction == "E" else out + a * self.hop
                for sid in stream.ids:
                    self.stream_table[(node.chip, stream.direction, sid)].setdefault(key, []).append(
                        (min(a, b), max(a, b)))
            self.horizon = max(self.horizon, cycle + max(1, node.busy) + latency(self.machine, node.op))
            if node.op == "WRITE" and node.writes is not None:
                self.ready[node.writes] = cycle + latency(self.machine, "WRITE")
            self._update_state(node, unit, cycle)
            srcs = tuple(streams[id(child)] for child in node.inputs if id(child) in streams and node.op != "RECV")
            self.instructions.append(Instruction(cycle, node.chip, unit, node.op, node.dtype, srcs, stream,
                                                 tuple(node.fields.items()), node.comment))
            self.tags.append(self._tag)

    def _update_state(self, node: VOp, unit: str, cycle: int) -> None:
        key = (node.chip, unit)
        self.last_use[key] = max(self.last_use[key], cycle)
        if node.chain is None:
            return
        state = self.state[key]
        if node.op in ("LW", "TLD"):
            state.max_load = max(state.max_load, cycle)
        elif node.op in ("MVM", "TST"):
            state.max_use = max(state.max_use, cycle)
        elif node.op in ("IW", "TSW"):
            state.last_install = cycle
            state.max_load = state.max_use = -1

    def sorted_instructions(self) -> tuple[list[Instruction], list[int | None]]:
        """The instructions in cycle order, with the stage of each."""
        order = sorted(range(len(self.instructions)), key=lambda k: (self.instructions[k].cycle,
                                                                     self.instructions[k].chip,
                                                                     self.instructions[k].unit,
                                                                     self.instructions[k].op))
        return [self.instructions[k] for k in order], [self.tags[k] for k in order]
