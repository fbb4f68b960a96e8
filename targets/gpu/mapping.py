"""Launch rules: how many threads and blocks each kind of kernel gets, and the matmul tile search.

The schedules build their loop IR from these rules and the cost model prices the same launches, so a
prediction is always about the kernel that would run. Rules (documented in docs/targets/gpu.md):

* elementwise and copy: one thread per element, 256 threads per block (fewer, rounded up to a warp
  multiple, for tiny kernels); blocks = ceil(elements / threads).
* reduction: rows of at most `ROW_PER_THREAD_MAX` elements are reduced by one thread each (the naive
  loop nest per row, 256 rows per block); longer rows get one block each, with
  threads = the power of two nearest rows / 4 elements, clamped to 32..256, reducing in registers,
  then across the block (warp shuffles and shared memory).
* matmul: the tile with the lowest predicted time among a small set of candidates (below), priced by
  the cost model's own formulas (occupancy, waves, L2 reuse): tensor cores (mma.sync m16n8k16) for
  bf16/f16 operands, CUDA-core FMAs with a TM x TN register tile per thread otherwise.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from targets.gpu.machine import GpuMachine
from targets.gpu.occupancy import (STATIC_SHARED_LIMIT, LaunchError, Occupancy, memory_efficiency, occupancy,
                                   wave_efficiency)
from targets.gpu.traffic import matmul_traffic

ELEMENTWISE_THREADS = 256
ROW_PER_THREAD_MAX = 64
MMA_M, MMA_N, MMA_K = 16, 8, 16
MMA_PAD = 8  # extra bf16/f16 elements per shared-memory row: conflict-free fragment loads
MMA_DTYPES = ("bf16", "f16")
BASE_REGISTERS = 40  # estimated registers besides the accumulators (addresses, loop counters, i64 indices)


def pow2_at_least(value: int) -> int:
    return 1 << max(0, (max(1, value) - 1).bit_length())


@dataclass(frozen=True)
class Launch:
    blocks: int
    threads: int
    mode: str = ""  # reductions: "thread" (a row per thread) or "block" (a row per block)


def elementwise_launch(elements: int) -> Launch:
    threads = ELEMENTWISE_THREADS if elements >= ELEMENTWISE_THREADS else max(32, -(-elements // 32) * 32)
    return Launch(max(1, math.ceil(elements / threads)), threads)


def reduction_launch(rows: int, row_length: int) -> Launch:
    if row_length <= ROW_PER_THREAD_MAX:
        launch = elementwise_launch(rows)
        return Launch(launch.blocks, launch.threads, "thread")
    threads = min(256, max(32, pow2_at_least(math.ceil(row_length / 4))))
    return Launch(max(1, rows), threads, "block")


@dataclass(frozen=True)
class MatmulTiles:
    bm: int
    bn: int
    bk: int
    mma: bool
    tm: int = 1  # CUDA-core path: outputs per thread along M and N
    tn: int = 1
    warps_m: int = 1  # tensor-core path: warps along M and N
    warps_n: int = 1
    itemsize: int = 4  # bytes per operand element in shared memory

    @property
    def threads(self) -> int:
        if self.mma:
            return self.warps_m * self.warps_n * 32
        return (self.bm // self.tm) * (self.bn // self.tn)

    @property
    def accumulators(self) -> int:
        """Accumulator registers per thread."""
        if self.mma:
            return (self.bm // self.warps_m // MMA_M) * (self.bn // self.warps_n // MMA_N) * 4
        return self.tm * self.tn

    @property
    def shared_bytes(self) -> int:
        if self.mma:
            return (self.bm + self.bn) * (self.bk + MMA_PAD) * self.itemsize
        return self.bk * (self.bm + self.bn) * self.itemsize

    @property
    def loads_per_thread(self) -> int:
        """Independent global loads a thread issues per K step (its share of both panels)."""
        return -(-(self.bm * self.bk + self.bk * self.bn) // self.threads)

    def bytes_in_flight_per_warp(self, machine: GpuMachine) -> float:
        return max(machine.bytes_in_flight_per_warp, machine.warp * self.itemsize * self.loads_per_thread)

    @property
    def shared_reads_per_k(self) -> int:
        """Bytes one block reads from shared memory per step of K (fragments or register-tile operands)."""
        if self.mma:
            a_fragments = (self.bm // self.warps_m // MMA_M) * MMA_M * MMA_K
            b_fragments = (self.bn // self.warps_n // MMA_N) * MMA_K * MMA_N
            per_warp = a_fragments + b_fragments  # elements per 16-step of K
            return self.warps_m * self.warps_n * per_warp * self.itemsize // MMA_K
        return self.threads * (self.tm + self.tn) * self.itemsize

    @property
    def registers(self) -> int:
        """Estimated registers per thread (ptxas's figure replaces it once the PTX is assembled)."""
        if self.mma:
            fragments = (self.bm // self.warps_m // MMA_M) * 4 + (self.bn // self.warps_n // MMA_N) * 2
        else:
            fragments = self.tm + self.tn
        return self.accumulators + fragments + BASE_REGISTERS


@functools.cache
def candidate_tiles(dtype: str, itemsize: int, tensor_cores: bool) -> tuple[MatmulTiles, ...]:
    """Every tile the search considers, valid by construction (threads, shared memory, registers)."""
    sizes = (16, 32, 64, 128, 256) if tensor_cores else (16, 32, 64, 128)
    found = []
    if tensor_cores and dtype in MMA_DTYPES:
        for bm in sizes:
            for bn in sizes:
                for wm in (1, 2, 4):
                    for wn in (1, 2, 4):
                        if bm % (MMA_M * wm) or bn % (MMA_N * wn) or wm * wn > 8:
                            continue
                        tile = MatmulTiles(bm, bn, 32, True, warps_m=wm, warps_n=wn, itemsize=itemsize)
                        if tile.accumulators <= 128 and tile.shared_bytes <= STATIC_SHARED_LIMIT:
                            found.append(tile)
        return tuple(found)
    for bm in sizes:
        for bn in sizes:
            for tm in (1, 2, 4, 8):
                for tn in (1, 2, 4, 8):
                    if bm % tm or bn % tn or tm * tn > 64:
                        continue
                    tile = MatmulTiles(bm, bn, 16, False, tm, tn, itemsize=itemsize)
                    if 64 <= tile.threads <= 256 and tile.threads % 32 == 0 \
                            and tile.shared_bytes <= STATIC_SHARED_LIMIT:
                        found.append(tile)
    return tuple(found)


@dataclass(frozen=True)
class TileScore:
    seconds: float
    compute: float
    hbm: float
    l2: float
    smem: float
    padded_flops: float


def shared_bytes_moved(tiles: MatmulTiles, blocks: int, k: int) -> float:
    """Bytes all blocks write to and read from shared memory: the panels once, the operands per use."""
    steps = math.ceil(k / tiles.bk) * tiles.bk
    return blocks * steps * ((tiles.bm + tiles.bn) * tiles.itemsize + tiles.shared_reads_per_k)


@dataclass(frozen=True)
class TileFit:
    """A tile on one machine and what of its price does not depend on the matmul."""

    tiles: MatmulTiles
    resident: Occupancy
    rate: float  # FLOP/s of the unit it runs on, at the achievable fraction
    bytes_per_warp: float  # bytes a warp keeps in flight


def fit_tiles(machine: GpuMachine, tiles: MatmulTiles, precision: str, registers: int | None = None) -> TileFit:
    """`tiles` on `machine` (a LaunchError when a block does not fit an SM)."""
    resident = occupancy(machine, tiles.threads, registers or tiles.registers, tiles.shared_bytes)
    rate = (machine.tensor_rate(precision) or 0.0) * machine.tensor_fraction if tiles.mma else \
        machine.vector_rate(precision) * machine.vector_fraction
    return TileFit(tiles, resident, rate, tiles.bytes_in_flight_per_warp(machine))


def score_fit(machine: GpuMachine, fit: TileFit, batch: int, m: int, n: int, k: int, a_batched: bool,
              b_batched: bool, out_bytes: float) -> TileScore:
    """Predicted time of the matmul with a tile already fitted to the machine (`fit_tiles`): the cost
    model's formulas, without launch overhead."""
    tiles, resident = fit.tiles, fit.resident
    blocks = batch * math.ceil(m / tiles.bm) * math.ceil(n / tiles.bn)
    slots = machine.sms * resident.blocks_per_sm
    padded = 2.0 * blocks * tiles.bm * tiles.bn * math.ceil(k / tiles.bk) * tiles.bk
    compute = padded / (fit.rate * wave_efficiency(machine, blocks, resident))
    traffic = matmul_traffic(machine, batch, m, n, k, tiles.bm, tiles.bn, tiles.itemsize, a_batched, b_batched, slots)
    feed = memory_efficiency(machine, blocks, resident, fit.bytes_per_warp)
    bandwidth = machine.hbm_bandwidth * machine.memory_fraction * feed
    hbm = (traffic.a_hbm + traffic.b_hbm + out_bytes) / bandwidth
    l2 = traffic.l2 / machine.l2_bandwidth if machine.l2_bandwidth else 0.0
    smem = shared_bytes_moved(tiles, blocks, k) / machine.smem_bandwidth if machine.smem_bandwidth else 0.0
    return TileScore(max(compute, hbm, l2, smem), compute, hbm, l2, smem, padded)


@functools.lru_cache(maxsize=256)
def fitting_tiles(machine: GpuMachine, precision: str, itemsize: int, use_mma: bool) -> tuple[TileFit, ...]:
    """The candidates that fit one SM of `machine`, fitted once per machine and precision: a fit does not
    depend on the matmul's sizes, and every matmul of a program searches the same candidates."""
    fits = []
    for tiles in candidate_tiles(precision, itemsize, use_mma):
        try:
            fits.append(fit_tiles(machine, tiles, precision))
        except LaunchError:
            continue
    return tuple(fits)


@functools.lru_cache(maxsize=4096)
def choose_tiles(machine: GpuMachine, batch: int, m: int, n: int, k: int, precision: str, itemsize: int,
                 a_batched: bool, b_batched: bool, out_bytes: float, tensor_cores: bool = True) -> MatmulTiles:
    """The candidate with the lowest predicted time; ties go to the least padded work, then the larger tile."""
    use_mma = tensor_cores and precision in MMA_DTYPES and machine.tensor_rate(precision) is not None
    best: tuple[tuple[float, float, int], MatmulTiles] | None = None
    for fit in fitting_tiles(machine, precision, itemsize, use_mma):
        score = score_fit(machine, fit, batch, m, n, k, a_batched, b_batched, out_bytes)
        tiles = fit.tiles
        key = (float(f"{score.seconds:.3g}"), score.padded_flops, -tiles.bm * tiles.bn)
        if best is None or key < best[0]:
            best = (key, tiles)
    if best is None:
        raise LaunchError(f"no matmul tile fits {machine.name}")
    return best[1]
