"""Per-PE programs of one region, for a grid of PEs, and the grid that fits the PEs' memory.

MATMUL regions, C = A @ B on PR x PC PEs: PE (i, j) keeps the tile B[K_i, N_j] stationary in its memory
(loaded once when B is a weight), receives A[:, K_i] (the activations, broadcast along row i by the
routes), multiplies (FMAC, firing only on the non-zeros it holds) and adds the partial sum arriving from
PE (i-1, j) before sending it on to PE (i+1, j): the partial sums are reduced down each column. The
bottom row holds C[:, N_j], rounds it to C's dtype and applies the epilogue (bias, activation,
residual) to its tile. Batched matmuls keep the batch inside each PE's tiles.

MAP regions (elementwise and reduction groups, concatenations, copies) cut the positions their
reductions keep into contiguous blocks, one per PE; each PE computes its block of every output from the
elements of the sources it receives (`targets.wse.local_plan`), with no traffic inside the region.

Programs are built with their sources and outputs left open (`PeCode.sources`, `PeCode.owned`): whether
a value arrives over the fabric or from the host depends on where the producer is placed, which
`targets.wse.layout` decides afterwards. `size_region` grows the grid until every PE's peak memory fits
the usable SRAM, or raises `WseMemoryError` naming the PE and the bytes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from compiler.diagnostics import Diagnostic, NicheError
from ir.dtypes import DType
from ir.graph import Graph
from targets.wse import indexing as ix
from targets.wse.isa import Alloc, Buffer, Fmac, Free, Instr, Load, PeProgram, Recv, Round, Send, Store, Vadd
from targets.wse.local_plan import LocalEmitter, build_plan
from targets.wse.machine import WseMachine
from targets.wse.regions import MATMUL, Partition, Region, is_weight
from targets.wse.sparsity import Sparsity
from targets.wse.work import matmul_shape


class WseMemoryError(NicheError):
    """A region's data do not fit its PEs' memory on the mesh it was given."""


@dataclass
class Channel:
    """A stream of elements from one PE to one or more PEs (a route with one color once placed)."""

    id: int
    src: tuple[int, tuple[int, int]]  # (region, PE inside the region)
    dests: list[tuple[int, tuple[int, int]]]
    count: int  # elements
    dtype: DType
    purpose: str


@dataclass
class PeCode:
    pe: tuple[int, int]
    role: str
    index: dict[int, np.ndarray]  # value -> flat indices held (sources and owned outputs)
    sources: list[tuple[int, Buffer]]  # values to obtain before the body
    body: list[Instr]
    owned: dict[int, Buffer]  # region outputs this PE holds at the end
    macs: int = 0


@dataclass
class RegionCode:
    region: Region
    grid: tuple[int, int]  # rows x columns of PEs
    pes: dict[tuple[int, int], PeCode]
    detail: str
    channels: list[Channel] = field(default_factory=list)
    peak_bytes: int = 0


Split = tuple[int, int, int]  # rows (K of a matmul), batch groups, columns per group (N); maps: rows, 1, columns


@dataclass(frozen=True)
class SizingOptions:
    tile: int = 32  # a PE's share of a matmul dimension the first grid aims at (elements)
    max_region: int = 4  # the first grid's largest side; memory may grow it up to the mesh


def accumulator_dtype(dtype: DType) -> DType:
    """Partial sums of float matmuls accumulate in f32 (f64 stays f64); integers wrap in their own type."""
    if dtype is DType.F64:
        return DType.F64
    if dtype.is_float:
        return DType.F32
    return dtype


def with_frees(instrs: list[Instr], resident: set[int]) -> list[Instr]:
    """`instrs` with a FREE after the last use of each buffer (resident weights are never freed)."""
    last: dict[int, int] = {}
    buffers: dict[int, Buffer] = {}
    for position, instr in enumerate(instrs):
        for buffer in instr.defines() + instr.reads():
            last[id(buffer)] = position
            buffers[id(buffer)] = buffer
    ends: dict[int, list[Buffer]] = {}
    for key, position in last.items():
        if key not in resident:
            ends.setdefault(position, []).append(buffers[key])
    result: list[Instr] = []
    for position, instr in enumerate(instrs):
        if isinstance(instr, Free):
            continue
        result.append(instr)
        if position in ends:
            result.append(Free(tuple(sorted(ends[position], key=lambda b: b.name))))
    return result


def provisional_program(graph: Graph, region: int, code: PeCode) -> PeProgram:
    """The PE's program with its sources loaded and outputs stored (for memory sizing)."""
    instrs: list[Instr] = []
    resident: set[int] = set()
    for node, buffer in code.sources:
        kind = "weight" if is_weight(graph, node) else "input"
        if kind == "weight":
            resident.add(id(buffer))
        instrs.append(Load(buffer, f"%{node}", code.index[node], kind))
    instrs.extend(code.body)
    for node, buffer in code.owned.items():
        instrs.append(Store(buffer, f"%{node}", code.index[node], "output"))
    return PeProgram(region, code.pe, code.role, with_frees(instrs, resident))


class RegionCompiler:
    def __init__(self, graph: Graph, parts: Partition, machine: WseMachine, sparsity: Sparsity,
                 sizing: SizingOptions = SizingOptions()) -> None:
        self.graph = graph
        self.parts = parts
        self.machine = machine
        self.sparsity = sparsity
        self.sizing = sizing
        self.channel_ids = itertools.count()
        self.folded = parts.folded

    # -- sizing ------------------------------------------------------------------------------------

    def size_region(self, region: Region, max_rows: int, max_cols: int) -> RegionCode:
        split = self.first_split(region, max_rows, max_cols)
        while True:
            code = self.compile(region, split)
            peaks = {pe: provisional_program(self.graph, region.id, c).peak_bytes() for pe, c in code.pes.items()}
            worst = max(peaks, key=peaks.__getitem__)
            code.peak_bytes = peaks[worst]
            if code.peak_bytes <= self.machine.usable_bytes_per_pe:
                return code
            bigger = self.grow(region, split, max_rows, max_cols)
            if bigger is None:
                raise WseMemoryError(self._overflow(region, code.grid, worst, code.peak_bytes, max_rows, max_cols))
            split = bigger

    def _overflow(self, region: Region, grid: tuple[int, int], pe: tuple[int, int], peak: int,
                  max_rows: int, max_cols: int) -> list[Diagnostic]:
        usable = self.machine.usable_bytes_per_pe
        message = (f"region r{region.id} ({region.kind}: {region.label}) does not fit the PEs' memory: on its "
                   f"largest grid {grid[0]}x{grid[1]} (mesh {max_rows}x{max_cols}) PE ({pe[0]},{pe[1]}) needs "
                   f"{peak:,} bytes but a PE has {usable:,} usable ({self.machine.sram_per_pe:,} B SRAM minus "
                   f"{self.machine.code_reserve:,} B reserved for code and buffers); use a larger --mesh, or "
                   "smaller shapes")
        return [Diagnostic(message, self.graph.node(region.members[0]).loc)]

    def first_split(self, region: Region, max_rows: int, max_cols: int) -> Split:
        tile, cap = self.sizing.tile, self.sizing.max_region
        if region.kind == MATMUL:
            shape = matmul_shape(self.graph, region.anchor)
            rows = max(1, min(max(1, shape.k), max_rows, cap, math.ceil(shape.k / tile)))
            cols = max(1, min(max(1, shape.n), max_cols, cap, math.ceil(shape.n / tile)))
            return rows, 1, cols
        pes = max(1, min(region.rows, cap * cap, math.ceil(math.prod(region.domain) / (tile * tile))))
        return self._map_split(pes, region.rows, max_rows, max_cols)

    def grow(self, region: Region, split: Split, max_rows: int, max_cols: int) -> Split | None:
        """A larger split whose PEs hold less each, or None when the mesh allows none."""
        rows, groups, cols = split
        if region.kind != MATMUL:
            pes = rows * cols
            limit = min(region.rows, max_rows * max_cols)
            if pes >= limit:
                return None
            return self._map_split(min(2 * pes, limit), region.rows, max_rows, max_cols)
        shape = matmul_shape(self.graph, region.anchor)
        options = []
        if rows < min(max(1, shape.k), max_rows):
            options.append(("rows", min(2 * rows, max(1, shape.k), max_rows), groups, cols))
        if cols < max(1, shape.n) and groups * min(2 * cols, shape.n) <= max_cols:
            options.append(("cols", rows, groups, min(2 * cols, shape.n)))
        if groups < shape.batch and min(2 * groups, shape.batch) * cols <= max_cols:
            options.append(("batch", rows, min(2 * groups, shape.batch), cols))
        if not options:
            return None
        weights = math.ceil(shape.k / rows) * math.ceil(shape.n / cols)
        moving = math.ceil(shape.batch / groups) * shape.m * (math.ceil(shape.k / rows) + math.ceil(shape.n / cols))
        if moving > weights:
            order = ("batch", "rows" if math.ceil(shape.k / rows) >= math.ceil(shape.n / cols) else "cols")
        else:
            order = ("rows", "cols") if math.ceil(shape.k / rows) >= math.ceil(shape.n / cols) else ("cols", "rows")
        for wanted in order:
            for option in options:
                if option[0] == wanted:
                    return option[1:]
        return options[0][1:]

    @staticmethod
    def _map_split(pes: int, rows_available: int, max_rows: int, max_cols: int) -> Split:
        pes = max(1, min(pes, rows_available, max_rows * max_cols))
        if pes <= max_cols:
            return 1, 1, pes
        return min(max_rows, pes // max_cols), 1, max_cols

    # -- programs ----------------------------------------------------------------------------------

    def compile(self, region: Region, split: Split) -> RegionCode:
        if region.kind == MATMUL:
            return self._matmul(region, split)
        return self._map(region, (split[0], split[2]))

    def _computable(self, region: Region) -> set[int]:
        return set(region.members) | self.folded

    def _pe_code(self, region: Region, pe: tuple[int, int], role: str, needs: dict[int, np.ndarray],
                 provided: set[int]) -> tuple[PeCode, LocalEmitter]:
        plan = build_plan(self.graph, self._computable(region), needs, provided, self.parts.order)
        buffers: dict[int, Buffer] = {}
        sources = []
        for node in plan.sources:
            payload = self.graph.node(node)
            buffer = Buffer(f"v{node}", int(plan.index[node].size), payload.type.dtype)
            if is_weight(self.graph, node):
                storage = self.sparsity.tile(node, plan.index[node])
                if storage.sparse:
                    buffer.stored_bytes = storage.stored_bytes
            buffers[node] = buffer
            sources.append((node, buffer))
        emitter = LocalEmitter(self.graph, self.machine, plan, buffers)
        return PeCode(pe, role, plan.index, sources, [], {}), emitter

    def _map(self, region: Region, grid: tuple[int, int]) -> RegionCode:
        rows, cols = grid
        kept = region.kept_shape
        code = RegionCode(region, grid, {}, "")
        blocks = ix.block_ranges(region.rows, rows * cols)
        for k, (start, stop) in enumerate(blocks):
            pe = divmod(k, cols)
            kept_idx = np.arange(start, stop, dtype=ix.INDEX)
            if region.reduce_axes:
                domain_idx = ix.unique(ix.reduction_map(kept_idx, kept, region.domain, region.reduce_axes, True))
            else:
                domain_idx = kept_idx
            needs = {}
            for output in region.outputs:
                shape = self.graph.node(output).type.shape
                needs[output] = domain_idx if shape == region.domain else kept_idx
            pe_code, emitter = self._pe_code(region, pe, "tile", needs, set())
            for node in emitter.plan.computed:
                pe_code.body.extend(emitter.emit(node))
            pe_code.owned = {o: emitter.buffers[o] for o in region.outputs}
            code.pes[pe] = pe_code
        axes = f", reducing axes {list(region.reduce_axes)}" if region.reduce_axes else ""
        code.detail = (f"domain {list(region.domain)}{axes}: {region.rows} positions in {rows * cols} "
                       f"block(s) of {blocks[0][1] - blocks[0][0]} or fewer")
        return code

    def _matmul(self, region: Region, split: Split) -> RegionCode:
        graph = self.graph
        anchor = region.anchor
        a_node, b_node = graph.operands(anchor)
        shape = matmul_shape(graph, anchor)
        m, k, n, nb = shape.m, shape.k, shape.n, shape.batch
        c_type = graph.node(anchor).type
        a_shape, b_shape = graph.node(a_node).type.shape, graph.node(b_node).type.shape
        batches = np.arange(nb, dtype=ix.INDEX)
        a_map = ix.broadcast_map(batches, c_type.shape[:-2], a_shape[:-2])
        b_map = ix.broadcast_map(batches, c_type.shape[:-2], b_shape[:-2])
        acc_dtype = accumulator_dtype(c_type.dtype)
        rows, groups, cols = split
        k_blocks, n_blocks, b_blocks = ix.block_ranges(k, rows), ix.block_ranges(n, cols), ix.block_ranges(nb, groups)
        code = RegionCode(region, (rows, groups * cols), {}, "")
        down = {(i, c): next(self.channel_ids) for i in range(rows - 1) for c in range(groups * cols)}
        anchor_order = self.parts.order[anchor]
        for g, i, j in itertools.product(range(groups), range(rows), range(cols)):
            column = g * cols + j
            bs = np.arange(*b_blocks[g], dtype=ix.INDEX)
            a_bs, b_bs = ix.unique(a_map[bs]), ix.unique(b_map[bs])
            ks = np.arange(*k_blocks[i], dtype=ix.INDEX)
            ns = np.arange(*n_blocks[j], dtype=ix.INDEX)
            a_idx = ((a_bs[:, None, None] * m + np.arange(m)[None, :, None]) * k + ks[None, None, :]).reshape(-1)
            b_idx = ((b_bs[:, None, None] * k + ks[None, :, None]) * n + ns[None, None, :]).reshape(-1)
            tile_idx = ((bs[:, None, None] * m + np.arange(m)[None, :, None]) * n + ns[None, None, :]).reshape(-1)
            needs: dict[int, np.ndarray] = {a_node: a_idx}
            needs[b_node] = np.concatenate((needs[b_node], b_idx)) if b_node in needs else b_idx
            bottom = i == rows - 1
            if bottom:
                for output in region.outputs:
                    needs[output] = np.concatenate((needs[output], tile_idx)) if output in needs else tile_idx
            role = "single" if rows == 1 else ("top" if i == 0 else "bottom" if bottom else "middle")
            pe_code, emitter = self._pe_code(region, (i, column), role, needs, {anchor})
            prologue = [node for node in emitter.plan.computed if self.parts.order[node] < anchor_order]
            epilogue = [node for node in emitter.plan.computed if self.parts.order[node] > anchor_order]
            body = [instr for node in prologue for instr in emitter.emit(node)]
            a_tile = emitter.operand(a_node, a_idx, body, "A tile")
            b_tile = emitter.operand(b_node, b_idx, body, "B tile")
            kk, nn, bb = int(ks.size), int(ns.size), int(bs.size)
            macs = self._macs(emitter, a_node, b_node, a_idx, b_idx, bb * m * kk * nn)
            tile = bb * m * nn
            acc = Buffer("acc", tile, acc_dtype)
            body.append(Fmac(acc, a_tile, b_tile, (bb, m, kk, nn), ix.positions_in(a_bs, a_map[bs]),
                             ix.positions_in(b_bs, b_map[bs]), macs,
                             cycles=math.ceil(macs / self.machine.lanes(c_type.dtype))))
            if i > 0:
                part = Buffer("part", tile, acc_dtype)
                body.append(Alloc(part))
                body.append(Recv(down[(i - 1, column)], part, tile, np.arange(tile), np.arange(tile),
                                 "the PE above: partial sums", cycles=self._wavelet_cycles(tile, acc_dtype)))
                body.append(Vadd(acc, part, cycles=math.ceil(tile / self.machine.lanes(acc_dtype))))
            if not bottom:
                body.append(Send(down[(i, column)], acc, np.arange(tile), "the PE below",
                                 cycles=self._wavelet_cycles(tile, acc_dtype)))
            else:
                value = emitter.buffer(anchor)
                body.append(Round(value, acc, cycles=math.ceil(value.length / self.machine.lanes(acc_dtype))))
                for node in epilogue:
                    body.extend(emitter.emit(node))
                pe_code.owned = {o: emitter.buffers[o] for o in region.outputs}
            pe_code.body = body
            pe_code.macs = macs
            code.pes[(i, column)] = pe_code
            if not bottom:
                code.channels.append(Channel(down[(i, column)], (region.id, (i, column)), [(region.id, (i + 1, column))],
                                             tile, acc_dtype, f"r{region.id} partial sums, column {column}"))
        batch = f"batch {nb} in {groups} group(s) of PE columns, " if nb > 1 else ""
        code.detail = (f"{batch}M {m}: K {k} split over {rows} row(s), N {n} over {cols} column(s) per group; "
                       "weights stationary, A broadcast along rows, partial sums reduced down columns")
        return code

    def _macs(self, emitter: LocalEmitter, a_node: int, b_node: int, a_idx: np.ndarray, b_idx: np.ndarray,
              dense: int) -> int:
        """MACs the PE fires: dense, or in proportion to the non-zeros of a sparse weight tile it holds."""
        sources = set(emitter.plan.sources)
        for node, idx in ((b_node, b_idx), (a_node, a_idx)):
            if not is_weight(self.graph, node) or node not in sources:
                continue
            if not np.array_equal(emitter.plan.index[node], idx):
                continue
            storage = self.sparsity.tile(node, idx)
            if not storage.sparse or storage.elements == 0:
                continue
            density = storage.nonzeros / storage.elements
            return int(round(dense * density))
        return dense

    def _wavelet_cycles(self, elements: int, dtype: DType) -> float:
        return self.machine.wavelets(elements, dtype) / self.machine.ramp_wavelets_per_cycle
