"""The analytical model: regions sized and placed on full wafers, and what one step costs, in cycles.

Sizing. A region gets PEs for two reasons, and the larger count wins:
  memory: enough PEs to hold its data (`bytes_per_pe` <= usable SRAM): its share of the stationary data
          (weights, the KV cache) and a double buffer of the activation rows streaming through it (a
          pipelined dataflow machine never holds a whole activation tensor; the simulator, on small
          shapes, holds its PEs' whole tiles) (`memory_split`);
  work:   the PEs that shorten the step most for its cycles (`_balanced`). Work is everything
          the PE datapath does (`work`): matmul MACs on the FMAC lanes, and the vector work of the other
          members (elementwise ops, reductions, casts; exp/log/... and divides as their sequences of vector
          ops, `work.vop_cost`) on the same SIMD lanes, plus the wavelets it receives. A softmax over
          4,096 scores has no weights and needs 2 PEs of memory, but tens of millions of vector ops: sized by
          memory alone it would set the pace of the whole pipeline.
The memory PEs are the floor; a share `fill` of the wafers' spare PEs (those the memory sizing leaves
free) is then handed out by work, to minimise the latency of one step (`targets.wse.sizing.allocate`: the
first-row times along the chain plus the busiest region's drain), each region at most about
(work / 2)^(2/3) PEs, where its own hops outgrow its compute. The share starts at `FILL_TARGET` and shrinks
only when the sizes no longer pack onto the wafers, so even when the weights nearly fill them the few spare
PEs still go to the regions whose work needs them, whatever its kind.

A matmul's PEs form R rows (splitting K) x G batch groups x C columns (splitting N) as in
`targets.wse.codegen`; the split is the candidate with the fewest bytes per PE. A map region splits its
rows, then each row over several PEs (combining its reductions along the row), where the simulator keeps a
row on one PE. Regions are placed onto wafers in program order along strips 32 PEs high, like words on
lines (`_pack`), their logical grid folded onto the PEs they get; a program that needs more than one wafer
becomes a pipeline of wafers. (The simulator's layout, on a small mesh, places true rectangles with a
skyline packer.)

Cycles of a region per step, on its split (all overlapping, as a dataflow machine streams):
  fmac     = MACs fired per PE / FMAC lanes (matmul regions)
  vector   = vector work of the bottom row (matmul epilogue) or per PE (map regions) / SIMD lanes
  compute  = fmac + vector (one datapath does both, one after the other)
  stream   = wavelets of the broadcast operand per PE row + of the distributed operand per PE
             + of the other inputs per bottom-row PE (one wavelet per cycle per link)
  reduce   = wavelets of a column's partial sums (f32), when K is split (R > 1)
  busy     = max(compute, stream, reduce);  latency = busy + hops across the region (R + G*C)
The resource a region is bound by: "compute" when the FMAC part of compute binds, "compute:vector" when
the vector part does (elementwise, reduction and transcendental work, not matmul), else "fabric".
Transfers between regions: wavelets / lanes (the producer's PEs that hold the value, at most the
consumer's receiving rows) + the hops between the regions' centres; between wafers: bytes / I/O bandwidth
+ I/O latency. Inputs from the host and outputs to it cross the I/O too.

Pipeline: rows (tokens, attention rows) stream through the regions, so a region hands its first row on
after 1/rows of its busy time; the fill latency is the longest path of those first-row times plus the
busiest region on it draining its remaining rows. That is one step as given. With the pipeline full, a
new independent step (another group of users) could enter every `interval` = the busiest region's time
(or a wafer's I/O, if busier): the capacity the report gives beside the as-given figures.

Streamed weights (when they do not fit the wafers allowed): regions run one after another, each on all
PEs of its wafer, while its weights stream in from MemoryX at the I/O bandwidth; a step takes the sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from targets.wse.analysis import RegionFacts, accumulator_bytes, macs_of, tile
from targets.wse.machine import WseMachine
from targets.wse.sizing import allocate

FILL_TARGET = 0.97  # share of the wafers' spare PEs the sizing hands out (regions sharing columns waste a few)
FILLS = (FILL_TARGET, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)  # shares tried, until the sizes pack
FMAC, VECTOR, FABRIC = "compute", "compute:vector", "fabric"  # what a region's busy time is bound by
RESOURCE_NAMES = {FMAC: "FMAC (matmul) compute", VECTOR: "vector/elementwise compute", FABRIC: "fabric"}
STREAM_ROWS = 2  # rows of streaming activations a PE buffers (double buffering): the rest flows through
STRIP = 32  # rows of the strips regions are placed along on full wafers


@dataclass
class Priced:
    facts: RegionFacts
    split: tuple[int, int, int] = (1, 1, 1)
    bytes_per_pe: float = 0.0
    wafer: int = 0
    origin: tuple[int, int] = (0, 0)  # where its first PE sits (strip placement)
    span: tuple[int, int] = (1, 1)  # rows x columns of strip it covers (its columns may wrap onto the next strip)
    fmac: float = 0.0  # of which matmul MACs on the FMAC lanes
    vector: float = 0.0  # of which elementwise, reduction and transcendental work on the SIMD lanes
    stream: float = 0.0
    reduce: float = 0.0
    io: float = 0.0  # seconds per step on the I/O (host inputs; streamed weights)
    latency: float = 0.0  # cycles, this region alone
    fabric_wavelet_hops: float = 0.0

    @property
    def pes(self) -> int:
        return self.split[0] * self.split[1] * self.split[2]

    @property
    def rect(self) -> tuple[int, int]:
        return self.split[0], self.split[1] * self.split[2]

    @property
    def compute(self) -> float:
        """Cycles per step on the PE datapath: one datapath does both, one after the other."""
        return self.fmac + self.vector

    @property
    def busy(self) -> float:
        return max(self.compute, self.stream, self.reduce)

    @property
    def binding(self) -> str:
        """FMAC, VECTOR or FABRIC: what its busy time is (compute splits by the larger of its two parts)."""
        if self.compute < max(self.stream, self.reduce):
            return FABRIC
        return FMAC if self.fmac >= self.vector else VECTOR


@dataclass
class Plan:
    mode: str  # resident | streamed
    wafers: int
    wafers_needed: int  # for resident weights (0 when even one region does not fit a wafer)
    priced: list[Priced]
    fits: bool = True
    reason: str = ""
    latency: float = 0.0  # seconds, one step through the pipeline (fill)
    interval: float = 0.0  # seconds between steps in steady state
    bound: dict[str, float] = field(default_factory=dict)  # seconds of the fill latency per resource
    bottleneck: str = ""  # what sets the interval
    io_per_wafer: list[float] = field(default_factory=list)  # seconds per step on each wafer's I/O
    state_resident: bool = True  # streamed mode: whether the state (KV cache) stays on the wafers
    memory_pes: int = 0  # PEs the regions need just to hold their data (resident mode)


class Pricer:
    """Sizes, places and prices the regions of a program on one machine.

    The split of a region, its bytes per PE, its memory split and its cycles on a split are remembered per
    `RegionFacts.sizing_key` (with the PEs or the split asked about): they read nothing else of the facts,
    and the machine is the Pricer's own. The 80 layers of a model ask each question once, not 80 times,
    and every share `_balanced` tries asks it again."""

    def __init__(self, machine: WseMachine) -> None:
        self.machine = machine
        self._bytes: dict[tuple, float] = {}  # (sizing key, split) -> bytes_per_pe
        self._best: dict[tuple, tuple[int, int, int]] = {}  # (sizing key, PEs) -> best_split
        self._memory: dict[tuple, tuple[int, int, int] | None] = {}  # sizing key -> memory_split
        self._cycles: dict[tuple, tuple[float, ...]] = {}  # (sizing key, split) -> the cycles `cycles` sets

    # -- bytes and cycles of one region on one split --------------------------------------------------

    def bytes_per_pe(self, f: RegionFacts, split: tuple[int, int, int]) -> float:
        """Data one PE of the region holds: its share of the stationary data (and of a matmul operand that
        arrives whole each step), plus `STREAM_ROWS` rows of what streams through it."""
        key = (f.sizing_key, split)
        held = self._bytes.get(key)
        if held is None:
            held = self._bytes[key] = self._bytes_per_pe(f, split)
        return held

    def _bytes_per_pe(self, f: RegionFacts, split: tuple[int, int, int]) -> float:
        rows, groups, cols = split
        pes = rows * groups * cols
        if f.matmul is None:
            inputs = f.inputs
            row = (inputs.moving + f.out_bytes) / max(1, f.region.rows)
            buffered = min(STREAM_ROWS, tile(f.region.rows, rows))
            return inputs.stationary / pes + buffered * row / cols
        shape = f.matmul
        itemsize = f.dtype.itemsize
        stationary = (f.a.stationary + f.b.stationary + f.other.stationary) / pes
        distributed = f.b.moving / pes
        a_row = tile(shape.k, rows) * itemsize
        c_row = tile(shape.n, cols) * (accumulator_bytes(f.dtype) + 2 * itemsize)
        return stationary + distributed + STREAM_ROWS * (a_row + c_row)

    def cycles(self, p: Priced) -> None:
        """Sets the cycles of `p` on its split (memoised like the sizing, by sizing key and split)."""
        key = (p.facts.sizing_key, p.split)
        known = self._cycles.get(key)
        if known is None:
            self._set_cycles(p)
            self._cycles[key] = (p.fmac, p.vector, p.stream, p.reduce, p.latency, p.fabric_wavelet_hops)
        else:
            p.fmac, p.vector, p.stream, p.reduce, p.latency, p.fabric_wavelet_hops = known

    def _set_cycles(self, p: Priced) -> None:
        f, machine = p.facts, self.machine
        rows, groups, cols = p.split
        lanes = machine.lanes(f.dtype)
        wave = machine.wavelet_bytes
        if f.matmul is None:
            p.fmac, p.vector = 0.0, f.vector_ops / p.pes / lanes
            p.stream = f.inputs.dynamic / p.pes / wave
            # rows split over `cols` PEs combine each reduction along the row and broadcast it back
            phases = f.reductions if cols > 1 else 0
            p.reduce = 2 * phases * tile(f.region.rows, rows)
            p.latency = p.busy + machine.hop_cycles * (rows + groups * cols + 2 * phases * cols)
            p.fabric_wavelet_hops = f.inputs.dynamic / wave + p.reduce * cols * rows
            return
        shape = f.matmul
        p.fmac, p.vector = macs_of(f) / p.pes / lanes, f.vector_ops / (groups * cols) / lanes
        p.stream = (f.a.dynamic / (rows * groups) + f.b.dynamic / p.pes + f.other.dynamic / (groups * cols)) / wave
        partials = tile(shape.batch, groups) * shape.m * tile(shape.n, cols) * accumulator_bytes(f.dtype) / wave
        p.reduce = partials if rows > 1 else 0.0
        p.latency = p.busy + machine.hop_cycles * (rows + groups * cols)
        p.fabric_wavelet_hops = (f.a.dynamic / wave * max(0, cols * groups - 1) / groups
                                 + partials * groups * cols * max(0, rows - 1))

    def splits(self, f: RegionFacts, pes: int) -> list[tuple[int, int, int]]:
        """Candidate splits of about `pes` PEs that fit the mesh."""
        height, width = self.machine.mesh_height, self.machine.mesh_width
        if f.matmul is None:
            # rows first (no traffic between them), then each row over several PEs
            width_elements = max(1, math.prod(f.region.domain) // max(1, f.region.rows))
            pes = max(1, min(pes, height * width, f.region.rows * width_elements))
            rows = max(1, min(height, f.region.rows, pes))
            cols = max(1, min(width, width_elements, math.ceil(pes / rows)))
            found = [(rows, 1, cols)]
            if rows > 1 and cols < min(width, width_elements):
                rows2 = max(1, min(height, f.region.rows, round(math.sqrt(pes))))
                cols2 = max(1, min(width, width_elements, math.ceil(pes / rows2)))
                found.append((rows2, 1, cols2))
            return found
        shape = f.matmul
        found = []
        groups = 1
        while True:
            per_group = max(1, pes // groups)
            ratio = shape.k / max(1, shape.n)
            rows = max(1, min(shape.k, height, round(math.sqrt(per_group * ratio))))
            cols = max(1, min(shape.n, width // groups, math.ceil(per_group / rows)))
            found.append((rows, groups, cols))
            if groups >= shape.batch or groups * 2 > width:
                break
            groups *= 2
        return found

    def best_split(self, f: RegionFacts, pes: int) -> tuple[int, int, int]:
        key = (f.sizing_key, pes)
        split = self._best.get(key)
        if split is None:
            split = min(self.splits(f, pes), key=lambda s: (self.bytes_per_pe(f, s), -s[0] * s[1] * s[2]))
            self._best[key] = split
        return split

    def memory_split(self, f: RegionFacts) -> tuple[int, int, int] | None:
        """The smallest split whose PEs hold the region's data, None if a whole wafer cannot."""
        key = f.sizing_key
        if key not in self._memory:
            self._memory[key] = self._memory_split(f)
        return self._memory[key]

    def _memory_split(self, f: RegionFacts) -> tuple[int, int, int] | None:
        usable = self.machine.usable_bytes_per_pe
        limit = self.machine.mesh_pes
        pes = max(1, math.ceil(f.inputs.stationary / usable))
        while True:
            split = self.best_split(f, pes)
            if self.bytes_per_pe(f, split) <= usable:
                return split
            if pes >= limit:
                return None
            pes = min(limit, math.ceil(pes * max(1.25, self.bytes_per_pe(f, split) / usable)))

    def work(self, f: RegionFacts) -> float:
        """Cycles the region takes on one PE, arithmetic and receiving (what balancing shares out)."""
        return (macs_of(f) + f.vector_ops) / self.machine.lanes(f.dtype) + f.inputs.dynamic / self.machine.wavelet_bytes

    # -- resident: sizing, packing, pipeline --------------------------------------------------------------

    def resident(self, facts: list[RegionFacts], wafers: int | None, output_bytes: float) -> Plan:
        active = [f for f in facts if f.per_step and not f.merged]
        minimal = {}
        for f in active:
            split = self.memory_split(f)
            if split is None:
                return Plan("resident", 0, 0, [], False,
                            f"region r{f.region.id} ({f.region.label}) needs more than one wafer's "
                            f"{self.machine.mesh_pes:,} PEs to hold its data")
            minimal[f.region.id] = split
        needed = self._packed_wafers(minimal.values())
        count = max(needed, wafers or 0)
        sizes = self._balanced(active, minimal, count)
        priced = []
        for f in active:
            p = Priced(f, sizes[f.region.id])
            p.bytes_per_pe = self.bytes_per_pe(f, p.split)
            self.cycles(p)
            priced.append(p)
        self._pack(priced)
        plan = Plan("resident", count, needed, priced)
        plan.memory_pes = sum(self._pes(split) for split in minimal.values())
        self._pipeline(plan, output_bytes)
        return plan

    def _packed_wafers(self, splits: Iterable[tuple[int, int, int]]) -> int:
        """Wafers the regions take on these splits (in program order), by `_strip_walk`."""
        wafer = 0
        for wafer, _, _ in self._strip_walk([self._pes(split) for split in splits]):
            pass
        return wafer + 1

    def _pack(self, priced: list[Priced]) -> int:
        """Strip placement (`_strip_walk`) of the regions in program order, their logical grid (R rows x G*C
        columns) folded onto the PEs they get. Returns the wafers used."""
        height, width = self.machine.mesh_height, self.machine.mesh_width
        strip = min(STRIP, height)
        wafer = 0
        for p, (wafer, column, start_row) in zip(priced, self._strip_walk([p.pes for p in priced])):
            pes = p.pes
            p.wafer = wafer
            band, col = divmod(column, width)
            p.origin = (band * strip + start_row, col)
            p.span = (min(pes, strip), math.ceil(pes / strip))
        return wafer + 1

    def _strip_walk(self, sizes: list[int]) -> Iterator[tuple[int, int, int]]:
        """Each wafer is cut into strips `STRIP` rows high; regions (of `sizes` PEs), in program order, take
        the next free columns of the strips like words on lines, wrapping onto the next strip (a region
        never straddles two wafers); regions smaller than a strip column share a column. Yields each
        region's wafer, column (along the wafer's strips) and first row in that column."""
        height, width = self.machine.mesh_height, self.machine.mesh_width
        strip = min(STRIP, height)
        strips = height // strip
        wafer, position, sub = 0, 0, 0  # position: column index along the wafer's strips; sub: row in a column
        for pes in sizes:
            if pes < strip and sub + pes <= strip and position > 0:
                column = position - 1  # share the last column
                start_row = sub
                sub += pes
            else:
                columns = math.ceil(pes / strip)
                if position + columns > strips * width:
                    wafer, position = wafer + 1, 0
                column, start_row = position, 0
                position += columns
                sub = pes if pes < strip else strip
            yield wafer, column, start_row

    def _balanced(self, facts: list[RegionFacts], minimal: dict[int, tuple[int, int, int]],
                  wafers: int) -> dict[int, tuple[int, int, int]]:
        """Splits sized by work as well as memory (`targets.wse.sizing.allocate`): the memory PEs plus a
        share `fill` of the spare PEs, handed out to minimise the step latency, each region at most about
        (work / 2)^(2/3) PEs, beyond which its own hops outgrow its compute. The largest share whose
        sizes still pack onto the wafers wins; only when none does do the regions keep their memory sizes."""
        ids = [f.region.id for f in facts]
        work = [self.work(f) for f in facts]
        floor = [self._pes(minimal[r]) for r in ids]
        cap = [max(low, int((w / 2) ** (2 / 3))) for low, w in zip(floor, work)]
        height, width = self.machine.mesh_height, self.machine.mesh_width
        capacity = (height // min(STRIP, height)) * min(STRIP, height) * width  # PEs the strips hold
        held = sum(floor)
        spare = max(0.0, wafers * capacity - held)
        if spare <= 0:  # no PE to hand out: every share would give the memory sizes
            return minimal
        rows = [f.rows for f in facts]
        kinds: dict[tuple, int] = {}  # sizing key -> a small number (hashed once per region, not per share)
        kind = [kinds.setdefault(f.sizing_key, len(kinds)) for f in facts]
        chosen: dict[tuple[int, int], tuple[int, int, int]] = {}  # (kind, PEs wanted) -> split
        usable = self.machine.usable_bytes_per_pe
        for fill in FILLS:
            wanted = allocate(work, rows, floor, cap, held + fill * spare)
            sizes = {}
            for f, low, pes, k in zip(facts, floor, wanted, kind):
                r = f.region.id
                if pes <= low:
                    sizes[r] = minimal[r]
                    continue
                split = chosen.get((k, pes))
                if split is None:
                    split = self.best_split(f, pes)
                    if self.bytes_per_pe(f, split) > usable:
                        split = minimal[r]
                    chosen[k, pes] = split
                sizes[r] = split
            if self._packed_wafers(sizes.values()) <= wafers:
                return sizes
        return minimal

    @staticmethod
    def _pes(split: tuple[int, int, int]) -> int:
        return split[0] * split[1] * split[2]

    def _pipeline(self, plan: Plan, output_bytes: float) -> None:
        """Fill latency and steady-state interval. Rows stream through the regions: a region passes its
        first row on after 1/rows of its busy time (plus its hops), so the first row reaches the end after
        the sum of those along the longest path, and the last row one busiest-region time later."""
        machine = self.machine
        clock = machine.clock_hz
        by_region = {p.facts.region.id: p for p in plan.priced}
        centres = {region: self._centre(p) for region, p in by_region.items()}
        first: dict[int, float] = {}  # seconds until a region has passed its first row on
        path: dict[int, dict[str, float]] = {}
        slowest: dict[int, tuple[Priced, float]] = {}  # the busiest region on the path, and its busy cycles
        io = [0.0] * plan.wafers
        for p in plan.priced:
            f = p.facts
            busy = p.busy
            start, start_path, start_slowest = 0.0, {}, (p, busy)
            if f.inputs.host:
                start = f.inputs.host / f.rows / machine.io_bytes_per_s + machine.io_latency_s
                start_path = {"io": start}
                io[p.wafer] += f.inputs.host / machine.io_bytes_per_s
            for producer, nbytes in f.inputs.producers.items():
                q = by_region.get(producer)
                if q is None:
                    continue
                edge, resource = self._edge(q, p, nbytes, centres)
                if q.wafer != p.wafer:
                    io[q.wafer] += nbytes / machine.io_bytes_per_s
                    io[p.wafer] += nbytes / machine.io_bytes_per_s
                if first[producer] + edge > start:
                    start = first[producer] + edge
                    start_path = dict(path[producer])
                    start_path[resource] = start_path.get(resource, 0.0) + edge
                    start_slowest = slowest[producer] if slowest[producer][1] > busy else (p, busy)
            row = busy / f.rows / clock
            first[f.region.id] = start + row + (p.latency - busy) / clock
            start_path[p.binding] = start_path.get(p.binding, 0.0) + row
            start_path["fabric"] = start_path.get("fabric", 0.0) + (p.latency - busy) / clock
            path[f.region.id] = start_path
            slowest[f.region.id] = start_slowest
        last = max(first, key=first.__getitem__) if first else None
        tail = output_bytes / machine.io_bytes_per_s + machine.io_latency_s if output_bytes else 0.0
        if output_bytes and io:
            io[-1] += output_bytes / machine.io_bytes_per_s
        plan.bound = dict(path[last]) if last is not None else {}
        drain = 0.0
        if last is not None:
            bottleneck = slowest[last][0]
            drain = bottleneck.busy / clock * (1 - 1 / bottleneck.facts.rows)
            plan.bound[bottleneck.binding] = plan.bound.get(bottleneck.binding, 0.0) + drain
        plan.latency = (first[last] if last is not None else 0.0) + drain + tail
        if tail:
            plan.bound["io"] = plan.bound.get("io", 0.0) + tail
        busiest = max(plan.priced, key=lambda p: p.busy, default=None)
        region_interval = busiest.busy / clock if busiest else 0.0
        plan.io_per_wafer = io
        io_interval = max(io, default=0.0)
        if io_interval > region_interval:
            plan.interval = io_interval
            plan.bottleneck = f"the I/O of wafer {io.index(io_interval)} ({io_interval * 1e6:.3g} us per step)"
        else:
            plan.interval = region_interval
            if busiest is not None:
                plan.bottleneck = (f"{RESOURCE_NAMES[busiest.binding]} of r{busiest.facts.region.id} "
                                   f"({busiest.facts.region.label}, {busiest.pes:,} PEs, "
                                   f"{region_interval * 1e6:.3g} us per step)")

    def _edge(self, q: Priced, p: Priced, nbytes: float,
              centres: dict[int, tuple[float, float]]) -> tuple[float, str]:
        """`centres`: each placed region's `_centre`, by region id."""
        machine = self.machine
        if q.wafer != p.wafer:
            return nbytes / machine.io_bytes_per_s + machine.io_latency_s, "interconnect"
        senders = q.split[1] * q.split[2] if q.facts.matmul is not None else q.pes
        receivers = p.split[0] * p.split[1] if p.facts.matmul is not None else p.pes
        lanes = max(1, min(senders, receivers))
        (q_row, q_col), (p_row, p_col) = centres[q.facts.region.id], centres[p.facts.region.id]
        hops = abs(q_row - p_row) + abs(q_col - p_col)
        wave = machine.wavelet_bytes
        cycles = nbytes / p.facts.rows / wave / lanes + hops * machine.hop_cycles  # the first row
        p.fabric_wavelet_hops += nbytes / wave * hops
        return cycles / machine.clock_hz, "fabric"

    def _centre(self, p: Priced) -> tuple[float, float]:
        """The middle of a region's PEs along its strips (the first strip's row when it wraps)."""
        width = self.machine.mesh_width
        rows, columns = p.span
        first = p.origin[1]
        if first + columns <= width:
            return p.origin[0] + rows / 2, first + columns / 2
        wraps = (first + columns) // width
        return p.origin[0] + (wraps + 1) * STRIP / 2, width / 2

    # -- streamed --------------------------------------------------------------------------------------

    def streamed(self, facts: list[RegionFacts], wafers: int, needed: int) -> Plan:
        """Weights streamed from MemoryX: each region in turn on all PEs of its wafer; the program's regions
        are cut into `wafers` consecutive stages of about equal work, one per wafer. State (the KV cache)
        stays on the wafers when it fits half of their SRAM, else it streams too."""
        machine = self.machine
        active = [f for f in facts if f.per_step and not f.merged]
        total_work = sum(self.work(f) for f in active) or 1.0
        state = sum(f.inputs.state for f in active)
        state_stays = state <= 0.5 * wafers * machine.wafer_bytes
        priced, done, wafer = [], 0.0, 0
        for f in active:
            if done > total_work * (wafer + 1) / wafers and wafer < wafers - 1:
                wafer += 1
            done += self.work(f)
            useful = f.region.rows if f.matmul is None else f.matmul.batch * f.matmul.k * f.matmul.n
            p = Priced(f, self.best_split(f, max(1, min(machine.mesh_pes, useful))))
            p.wafer = wafer
            self.cycles(p)
            inputs = f.inputs
            streamed = inputs.stationary - (inputs.state if state_stays else 0.0)
            p.io = (streamed + inputs.host) / machine.io_bytes_per_s
            priced.append(p)
        plan = Plan("streamed", wafers, needed, priced)
        clock = machine.clock_hz
        per_wafer = [0.0] * wafers
        bound: dict[str, float] = {}
        for p in priced:
            region = max(p.latency / clock, p.io)
            per_wafer[p.wafer] += region
            resource = "mem:memoryx" if p.io >= p.latency / clock else p.binding
            bound[resource] = bound.get(resource, 0.0) + region
        crossings = wafers - 1
        hop = crossings * machine.io_latency_s
        if hop:
            bound["interconnect"] = hop
        plan.latency = sum(per_wafer) + hop
        plan.interval = max(per_wafer, default=0.0)
        plan.bound = bound
        plan.io_per_wafer = per_wafer
        plan.bottleneck = f"weights streamed from MemoryX at {machine.io_bytes_per_s / 1e9:.3g} GB/s"
        plan.state_resident = state_stays
        return plan

