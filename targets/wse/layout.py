"""From regions to a wafer program: placement in a pipeline, transfers, routes, colors, final programs.

Regions are placed in topological order as rectangles on the mesh, each where the skyline of the
columns it covers is lowest, so that consecutive regions of the pipeline sit near each other. A region
joins the current wafer while its rectangle fits and the wafer's routes can still be colored; otherwise
the wafer is full and the next one starts: programs larger than a wafer become a pipeline of wafers, and
values that cross from one wafer to the next go through the off-wafer I/O (STORE on one, LOAD on the
next). On a wafer, each producer PE that holds elements a consumer region needs sends them once, on
one channel whose route multicasts to every consumer PE that needs any of them; each receiver keeps its
own elements. Parameters come from the host: weights are loaded into the PEs that use them before the
program runs (or streamed each step in the streamed mode), other inputs each step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ir.graph import Graph
from targets.wse import indexing as ix
from targets.wse.codegen import Channel, RegionCode, RegionCompiler, with_frees
from targets.wse.isa import Alloc, Instr, Load, PeProgram, Recv, Send, Store
from targets.wse.machine import WseMachine
from targets.wse.regions import Partition, is_weight
from targets.wse.routing import Coord, at_text, FabricLoad, Route, RouterEntry, WaferColors, build_route, fabric_load, \
    router_tables


class Packer:
    """Skyline packing: each rectangle goes where the top of the columns it covers is lowest (then
    leftmost), so consecutive regions of the pipeline land near each other and little area is wasted."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.skyline = np.zeros(width, dtype=np.int64)  # first free row of each column

    def place(self, rows: int, cols: int) -> Coord | None:
        if rows > self.height or cols > self.width:
            return None
        tops = np.lib.stride_tricks.sliding_window_view(self.skyline, cols).max(axis=1)
        column = int(np.argmin(tops))
        row = int(tops[column])
        if row + rows > self.height:
            return None
        self.skyline[column:column + cols] = row + rows
        return row, column


@dataclass
class Delivery:
    """Part of a transfer: what one producer PE sends and what each receiver keeps."""

    channel: int
    src_pe: tuple[int, int]
    send_positions: np.ndarray  # positions in the producer's buffer of the value
    count: int
    receivers: list[tuple[tuple[int, int], np.ndarray, np.ndarray]]  # (consumer PE, keep, slots)


@dataclass
class Transfer:
    value: int
    producer: int  # region
    consumer: int  # region
    deliveries: list[Delivery]


@dataclass
class PlacedRegion:
    code: RegionCode
    stage: int
    origin: Coord

    def at(self, pe: tuple[int, int]) -> Coord:
        return self.origin[0] + pe[0], self.origin[1] + pe[1]


@dataclass
class Wafer:
    index: int
    regions: list[int] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    colors_used: int = 0
    load: FabricLoad | None = None
    tables: dict[Coord, dict[int, RouterEntry]] = field(default_factory=dict)


@dataclass
class WaferProgram:
    graph: Graph
    machine: WseMachine
    parts: Partition
    mode: str  # resident | streamed
    placed: list[PlacedRegion]
    wafers: list[Wafer]
    channels: dict[int, Channel]
    programs: dict[tuple[int, Coord], PeProgram]  # (wafer, router) -> program

    def colors(self) -> dict[int, int]:
        return {r.channel: r.color for w in self.wafers for r in w.routes}


def transfers(graph: Graph, parts: Partition, codes: dict[int, RegionCode], ids) -> dict[tuple[int, int], Transfer]:
    """(value, consumer region) -> the deliveries that would carry it if both regions share a wafer.

    Each producer PE that owns elements some consumer PE needs sends, once, the sorted union of those
    elements; each consumer PE keeps its own. Owners are looked up in a map of the whole value."""
    result = {}
    for region in parts.regions:
        consumer = codes[region.id]
        for value in region.sources:
            producer_region = parts.producer(value)
            if producer_region is None:
                continue
            producer = codes[producer_region.id]
            needs = {pe: c.index[value] for pe, c in consumer.pes.items() if any(s == value for s, _ in c.sources)}
            if not needs:
                continue
            owners = [pe for pe, code in producer.pes.items() if value in code.owned]
            owner = np.full(graph.node(value).type.size, -1, dtype=ix.INDEX)
            for k, pe in enumerate(owners):
                owner[producer.pes[pe].index[value]] = k
            pieces: dict[int, list[tuple[tuple[int, int], np.ndarray, np.ndarray]]] = {}
            for consumer_pe, need in needs.items():
                who = owner[need]
                if who.size and who.min() < 0:
                    raise AssertionError(f"%{value}: r{region.id} needs elements no PE of r{producer_region.id} holds")
                for k in np.unique(who):
                    slots = np.nonzero(who == k)[0].astype(ix.INDEX)
                    pieces.setdefault(int(k), []).append((consumer_pe, need[slots], slots))
            deliveries = []
            for k, received in sorted(pieces.items()):
                stream = ix.unique(np.concatenate([common for _, common, _ in received]))
                receivers = [(pe, ix.positions_in(stream, common), slots) for pe, common, slots in received]
                owned = producer.pes[owners[k]].index[value]
                deliveries.append(Delivery(next(ids), owners[k], ix.positions_in(owned, stream), int(stream.size),
                                           receivers))
            result[(value, region.id)] = Transfer(value, producer_region.id, region.id, deliveries)
    return result


def lay_out(graph: Graph, parts: Partition, compiler: RegionCompiler, codes: dict[int, RegionCode],
            mode: str = "resident") -> WaferProgram:
    machine = compiler.machine
    moves = transfers(graph, parts, codes, compiler.channel_ids)
    channels: dict[int, Channel] = {}
    for code in codes.values():
        for channel in code.channels:
            channels[channel.id] = channel
    for move in moves.values():
        for d in move.deliveries:
            dtype = graph.node(move.value).type.dtype
            channels[d.channel] = Channel(d.channel, (move.producer, d.src_pe),
                                          [(move.consumer, pe) for pe, _, _ in d.receivers], d.count, dtype,
                                          f"%{move.value} r{move.producer} -> r{move.consumer}")
    placed: dict[int, PlacedRegion] = {}
    wafers = [Wafer(0)]
    colors = WaferColors(machine.usable_colors)
    packer = Packer(machine.mesh_height, machine.mesh_width)
    for region in parts.regions:
        code = codes[region.id]
        origin = packer.place(*code.grid)
        if origin is not None:
            candidate = PlacedRegion(code, wafers[-1].index, origin)
            routes = _routes_into(region.id, candidate, placed, moves, channels, machine)
            if colors.add(routes):
                placed[region.id] = candidate
                wafers[-1].regions.append(region.id)
                continue
        wafers[-1].routes = colors.routes
        wafers.append(Wafer(len(wafers)))
        colors = WaferColors(machine.usable_colors)
        packer = Packer(machine.mesh_height, machine.mesh_width)
        origin = packer.place(*code.grid)
        if origin is None:
            raise AssertionError(f"region r{region.id} of grid {code.grid} is larger than the mesh")
        candidate = PlacedRegion(code, wafers[-1].index, origin)
        placed[region.id] = candidate
        wafers[-1].regions.append(region.id)
        if not colors.add(_routes_into(region.id, candidate, placed, moves, channels, machine)):
            raise AssertionError(f"region r{region.id} alone needs more than {machine.usable_colors} colors")
    wafers[-1].routes = colors.routes
    for wafer in wafers:
        wafer.colors_used = max((r.color for r in wafer.routes), default=-1) + 1
        wafer.load = fabric_load(wafer.routes)
        wafer.tables = router_tables(wafer.routes)
    ordered = [placed[r.id] for r in parts.regions]
    program = WaferProgram(graph, machine, parts, mode, ordered, wafers, channels, {})
    _link(program, moves)
    return program


def _routes_into(region: int, candidate: PlacedRegion, placed: dict[int, PlacedRegion],
                 moves: dict[tuple[int, int], Transfer], channels: dict[int, Channel],
                 machine: WseMachine) -> list[Route]:
    """Routes that exist if `region` joins the current wafer: its own and those of inputs made there."""
    routes = []
    for channel in candidate.code.channels:
        dests = [candidate.at(pe) for _, pe in channel.dests]
        routes.append(build_route(channel.id, candidate.at(channel.src[1]), dests,
                                  machine.wavelets(channel.count, channel.dtype), channel.purpose))
    for (value, consumer), move in moves.items():
        if consumer != region:
            continue
        producer = placed.get(move.producer)
        if producer is None or producer.stage != candidate.stage:
            continue
        for d in move.deliveries:
            channel = channels[d.channel]
            routes.append(build_route(d.channel, producer.at(d.src_pe), [candidate.at(pe) for pe, _, _ in d.receivers],
                                      machine.wavelets(d.count, channel.dtype), channel.purpose))
    return routes


def _link(program: WaferProgram, moves: dict[tuple[int, int], Transfer]) -> None:
    """Final per-PE programs: sources obtained (RECV, or LOAD from the host), outputs delivered."""
    graph, parts = program.graph, program.parts
    placed = {p.code.region.id: p for p in program.placed}
    outputs = set(graph.outputs)
    for region in parts.regions:
        here = placed[region.id]
        for pe, code in here.code.pes.items():
            instrs: list[Instr] = []
            resident: set[int] = set()
            for value, buffer in code.sources:
                instrs.extend(_obtain(program, here, pe, value, buffer, code.index[value], moves, placed, resident))
            instrs.extend(code.body)
            for value, buffer in code.owned.items():
                instrs.extend(_deliver(program, here, pe, value, buffer, code.index[value], moves, placed, outputs))
            key = (here.stage, here.at(pe))
            program.programs[key] = PeProgram(region.id, here.at(pe), code.role, with_frees(instrs, resident))


def _obtain(program: WaferProgram, here: PlacedRegion, pe: tuple[int, int], value: int, buffer, indices: np.ndarray,
            moves, placed, resident: set[int]) -> list[Instr]:
    graph = program.graph
    payload = graph.node(value)
    if payload.op == "param":
        if is_weight(graph, value):
            kind = "stream" if program.mode == "streamed" else "weight"
            if kind == "weight":
                resident.add(id(buffer))
        else:
            kind = "input"
        return [Load(buffer, payload.attr("name"), indices, kind)]
    producer = placed[program.parts.region_of[value]]
    if producer.stage != here.stage:
        return [Load(buffer, f"%{value}", indices, "stage")]
    instrs: list[Instr] = [Alloc(buffer)]
    machine = program.machine
    for d in moves[(value, here.code.region.id)].deliveries:
        for receiver, keep, slots in d.receivers:
            if receiver == pe:
                src = producer.at(d.src_pe)
                instrs.append(Recv(d.channel, buffer, d.count, keep, slots, f"r{producer.code.region.id} PE{at_text(src)}",
                                   cycles=machine.wavelets(d.count, buffer.dtype) / machine.ramp_wavelets_per_cycle))
    return instrs


def _deliver(program: WaferProgram, here: PlacedRegion, pe: tuple[int, int], value: int, buffer, indices: np.ndarray,
             moves, placed, outputs: set[int]) -> list[Instr]:
    instrs: list[Instr] = []
    machine = program.machine
    later = False
    for consumer in program.parts.regions:
        if value not in consumer.sources:
            continue
        there = placed[consumer.id]
        if there.stage != here.stage:
            later = True
            continue
        move = moves.get((value, consumer.id))
        for d in move.deliveries if move else ():
            if d.src_pe == pe:
                dests = ", ".join(f"PE{at_text(there.at(q))}" for q, _, _ in d.receivers[:3])
                more = f" +{len(d.receivers) - 3}" if len(d.receivers) > 3 else ""
                instrs.append(Send(d.channel, buffer, d.send_positions, f"r{consumer.id} {dests}{more}",
                                   cycles=machine.wavelets(d.count, buffer.dtype) / machine.ramp_wavelets_per_cycle))
    if value in outputs:
        instrs.append(Store(buffer, f"%{value}", indices, "output"))  # the next wafer reads it from there too
    elif later:
        instrs.append(Store(buffer, f"%{value}", indices, "stage"))
    return instrs
