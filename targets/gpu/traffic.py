"""Bytes a tiled matmul moves: through L2 (every tile a block loads) and from HBM (after L2 reuse).

The kernel (`schedules.matmul`) gives each block one BM x BN tile of the output, walks K in BK steps
and loads a BM x BK panel of A and a BK x BN panel of B per step. Blocks are numbered batch-major, then
tile row, then tile column, and a wave runs W = SMs x resident blocks of them at once.

L2 traffic: every block loads its whole panels, so A is read ceil(N/BN) times and B ceil(M/BM) times:

    l2 = A x tiles_n + B x tiles_m                     (A, B: the operands' bytes, all batches)

HBM traffic, per operand: an operand that fits in `l2_reuse_fraction` of L2 is read from HBM once and
served from L2 afterwards. One that does not is reloaded once per pass over it:

    B: a wave covers W / tiles_n tile rows, and every tile row reads all of (its batch's) B, so B is
       reloaded once per wave that touches it:   passes = ceil(rows of tiles / max(1, W / tiles_n))
    A: a tile row's panel is used by the tiles_n consecutive blocks of that row; when a wave holds a whole
       row (W >= tiles_n) the panel is read once, else once per wave:   passes = ceil(tiles_n / W)

A B shared by all batches (a weight) counts all batches' tile rows; a batched B only its own. The
model is "each operand tile reloaded per wave unless it fits L2" made exact for this block order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from targets.gpu.machine import GpuMachine


@dataclass(frozen=True)
class MatmulTraffic:
    l2: float  # bytes loaded by all blocks (served by L2 or HBM)
    a_hbm: float  # bytes of A read from HBM
    b_hbm: float
    a_passes: int
    b_passes: int


def matmul_traffic(machine: GpuMachine, batch: int, m: int, n: int, k: int, bm: int, bn: int, itemsize: int,
                   a_batched: bool, b_batched: bool, slots: int) -> MatmulTraffic:
    """Traffic of a batch x (M x K) @ (K x N) matmul with BM x BN tiles; `slots` = SMs x resident blocks."""
    tiles_m, tiles_n = math.ceil(m / bm), math.ceil(n / bn)
    a_bytes = (batch if a_batched else 1) * m * k * itemsize
    b_bytes = (batch if b_batched else 1) * k * n * itemsize
    l2 = a_bytes * tiles_n * (1 if a_batched else batch) + b_bytes * tiles_m * (1 if b_batched else batch)
    fits = machine.l2_bytes * machine.l2_reuse_fraction
    rows_per_wave = max(1.0, slots / tiles_n)
    a_passes = 1 if a_bytes <= fits else math.ceil(tiles_n / slots)
    rows_sharing_b = tiles_m if b_batched else tiles_m * batch
    b_passes = 1 if b_bytes <= fits else max(1, math.ceil(rows_sharing_b / rows_per_wave))
    return MatmulTraffic(l2, a_bytes * a_passes, b_bytes * b_passes, a_passes, b_passes)
