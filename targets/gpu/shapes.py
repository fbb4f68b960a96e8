"""The launch shape of each kernel the cost model prices: blocks, threads, shared memory, registers, tiles.

Two sources, one result type (`KernelShape`):

* a compiled artifact (`from_artifact`): the SIMT analysis of each kernel (grid, block, shared arrays)
  and the tiles the schedule chose, with ptxas's registers and shared memory when ptxas is installed;
* a graph priced without compiling (`from_graph`): the same launch rules (`targets.gpu.mapping`) applied
  to each fusion group's kernel, read from the graph in one linear pass (a 70B-parameter, 80-layer
  decode step has a few thousand kernels and is shaped in well under a second).

`KernelShape.split(ways)` is the shape of one chip's share when tensor parallelism divides a kernel:
a matmul gets the tiles of its narrower N, other kernels 1/ways of the blocks.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ir import ops
from ir.graph import Graph
from targets.counts import KernelCounts, MatmulShape, ProgramCounts
from targets.gpu.machine import GpuMachine
from targets.gpu.mapping import Launch, MatmulTiles, choose_tiles, elementwise_launch, reduction_launch

if TYPE_CHECKING:
    from targets.graph_counts import GraphCounter

ESTIMATED_REGISTERS = 32  # per thread, for elementwise and reduction kernels without ptxas figures


@dataclass(frozen=True)
class KernelShape:
    kind: str
    blocks: int
    threads: int
    shared_bytes: float
    registers: int
    registers_from: str  # "ptxas" or "estimate"
    precision: str  # of the arithmetic: the operands' dtype for a matmul
    tiles: MatmulTiles | None = None
    a_batched: bool = False
    b_batched: bool = False
    sparse_b: bool = False  # B is 2:4 structured sparse (sparse tensor cores: twice the dense rate)
    mode: str = ""  # reductions: "thread" or "block"
    spill_bytes: int = 0
    tensor_cores: bool = True

    def split(self, ways: int, kernel: KernelCounts, machine: GpuMachine) -> KernelShape:
        """The shape of one chip's share of `kernel` (already split `ways` ways: `KernelCounts.split`)."""
        if ways == 1:
            return self
        if self.tiles is not None and kernel.matmul is not None:
            return matmul_shape(kernel, machine, self.precision, self.a_batched, self.b_batched, self.sparse_b,
                                self.tensor_cores)
        return _with_blocks(self, max(1, math.ceil(self.blocks / ways)))


@functools.lru_cache(maxsize=4096)
def _with_blocks(shape: KernelShape, blocks: int) -> KernelShape:
    """`shape` launched on `blocks` blocks, made once per distinct shape (a repeated kernel's split)."""
    return replace(shape, blocks=blocks)


def matmul_shape(kernel: KernelCounts, machine: GpuMachine, precision: str, a_batched: bool, b_batched: bool,
                 sparse_b: bool, tensor_cores: bool) -> KernelShape:
    return tiled_shape(machine, kernel.matmul, precision, a_batched, b_batched, sparse_b, tensor_cores,
                       kernel.bytes(("output", "intermediate")))


@functools.lru_cache(maxsize=4096)
def tiled_shape(machine: GpuMachine, shape: MatmulShape, precision: str, a_batched: bool, b_batched: bool,
                sparse_b: bool, tensor_cores: bool, out_bytes: float) -> KernelShape:
    """The launch of a matmul of `shape` on the tiles `choose_tiles` picks. Cached like `choose_tiles`:
    a pure function of its arguments (a decode step repeats each matmul once per layer)."""
    itemsize = {"f64": 8, "f32": 4, "i64": 8, "i32": 4, "i8": 1}.get(precision, 2)
    tiles = choose_tiles(machine, shape.batch, shape.m, shape.n, shape.k, precision, itemsize, a_batched, b_batched,
                         out_bytes, tensor_cores)
    blocks = shape.batch * math.ceil(shape.m / tiles.bm) * math.ceil(shape.n / tiles.bn)
    return KernelShape("matmul", blocks, tiles.threads, tiles.shared_bytes, tiles.registers, "estimate", precision,
                       tiles, a_batched, b_batched, sparse_b, tensor_cores=tensor_cores)


@dataclass(frozen=True)
class PendingMatmul:
    """A matmul kernel's launch with its tiles not chosen yet (`from_graph(..., defer_tiles=True)`): `split`
    gives what `KernelShape.split` of the whole kernel's shape gives, choosing tiles only for the kernel
    priced, so a kernel split over chips never has the tiles of the whole chosen (its share's are)."""

    kernel: KernelCounts  # the whole kernel
    precision: str
    a_batched: bool
    b_batched: bool
    sparse_b: bool
    tensor_cores: bool

    def split(self, ways: int, kernel: KernelCounts, machine: GpuMachine) -> KernelShape:
        """The shape of one chip's share (`kernel`, split `ways` ways): the whole kernel's shape when whole."""
        return matmul_shape(self.kernel if ways == 1 else kernel, machine, self.precision, self.a_batched,
                            self.b_batched, self.sparse_b, self.tensor_cores)


def from_graph(graph: Graph, counts: ProgramCounts, machine: GpuMachine, tensor_cores: bool = True,
               counter: GraphCounter | None = None, defer_tiles: bool = False) -> list[KernelShape | PendingMatmul]:
    """One shape per kernel of `counts` (a `count_graph` result of `graph`), in order; `counter` is the
    one that counted them, when the caller has it (`targets.counts.counted_graph`). `defer_tiles`: matmul
    kernels get a `PendingMatmul`, for callers that only `split` the shapes."""
    if counter is None:
        from targets.counts import frozen_graph
        from targets.graph_counts import GraphCounter
        counter = GraphCounter(frozen_graph(graph))
    shapes = []
    for members, kernel in zip(counter.units(), counts.kernels):
        shapes.append(_unit_shape(counter, members, kernel, machine, tensor_cores, defer_tiles))
    return shapes


def _unit_shape(counter: GraphCounter, members: list[int], kernel: KernelCounts, machine: GpuMachine,
                tensor_cores: bool, defer_tiles: bool = False) -> KernelShape | PendingMatmul:
    node, operands = counter.node, counter.operands  # the graph's nodes and operand lists, as counted
    precision = str(kernel.dtype)
    if kernel.kind == "matmul" and kernel.matmul is not None:
        anchor = next(n for n in members if ops.in_group(node[n].op, ops.MATMUL))
        a, b = operands[anchor]
        a_type, b_type = node[a].type, node[b].type
        base = counter.base(b)
        fmt = node[base[0]].type.format if base is not None else b_type.format
        sparse = fmt.kind == "nm" and fmt.n * 2 <= fmt.m
        launch = PendingMatmul(kernel, str(a_type.dtype), math.prod(a_type.shape[:-2]) > 1,
                               math.prod(b_type.shape[:-2]) > 1, sparse, tensor_cores)
        return launch if defer_tiles else launch.split(1, kernel, machine)
    if kernel.kind == "reduction":
        anchor = next(n for n in members if ops.in_group(node[n].op, ops.REDUCTION))
        source = node[operands[anchor][0]].type
        length = max(1, source.size // max(1, node[anchor].type.size))
        return reduction_shape(max(1, source.size // length), length, precision)
    return elementwise_shape(kernel.kind, max(1, int(kernel.parallel)), precision)


@functools.lru_cache(maxsize=4096)
def reduction_shape(rows: int, length: int, precision: str) -> KernelShape:
    """The launch of a reduction of `rows` rows of `length` elements (made once per distinct reduction)."""
    launch = reduction_launch(rows, length)
    return KernelShape("reduction", launch.blocks, launch.threads, _reduction_shared(launch), ESTIMATED_REGISTERS,
                       "estimate", precision, mode=launch.mode)


@functools.lru_cache(maxsize=4096)
def elementwise_shape(kind: str, elements: int, precision: str) -> KernelShape:
    """The launch of an elementwise (or copy) kernel over `elements` outputs (made once per distinct one)."""
    launch = elementwise_launch(elements)
    return KernelShape(kind, launch.blocks, launch.threads, 0, ESTIMATED_REGISTERS, "estimate", precision)


def _reduction_shared(launch: Launch) -> float:
    """Per block: one f32/f64 slot per warp and the reduced total, per stage (row-per-block mode)."""
    if launch.mode != "block":
        return 0.0
    return (launch.threads // 32 + 1) * 8


def from_artifact(artifact) -> dict[str, KernelShape]:  # artifact: GpuArtifact
    """Shapes of the compiled kernels, by kernel name (ptxas figures where ptxas is installed)."""
    from targets.gpu.codegen.module import symbols_for
    report = artifact.ptxas_report() or {}
    symbols = symbols_for(artifact.program)
    graph = artifact.graph
    shapes = {}
    for name, simt in artifact.simt.items():
        kernel = artifact.program.kernels[name]
        tiles = artifact.tiles.get(name)
        info = report.get(symbols.kernels[name])
        registers = info.registers if info is not None else (tiles.registers if tiles else ESTIMATED_REGISTERS)
        shared = info.shared_bytes if info is not None else simt.shared_bytes
        precision, a_batched, b_batched = _kernel_precision(graph, kernel)
        shapes[name] = KernelShape(str(kernel.attr("kind", "elementwise")), simt.grid, simt.block, shared, registers,
                                   "ptxas" if info is not None else "estimate", precision, tiles, a_batched, b_batched,
                                   spill_bytes=(info.spill_stores + info.spill_loads) if info is not None else 0,
                                   tensor_cores=tiles.mma if tiles is not None else True)
    return shapes


def _kernel_precision(graph: Graph, kernel) -> tuple[str, bool, bool]:
    """(precision, A batched, B batched) of a loop-IR kernel, from the graph nodes it computes."""
    nodes = kernel.attr("nodes") or ()
    for n in nodes:
        if ops.in_group(graph.node(n).op, ops.MATMUL):
            a, b = (graph.node(o).type for o in graph.operands(n))
            return str(a.dtype), math.prod(a.shape[:-2]) > 1, math.prod(b.shape[:-2]) > 1
    dtype = next((graph.node(n).type.dtype for n in reversed(nodes)), None)
    return (str(dtype) if dtype is not None else "f32"), False, False
