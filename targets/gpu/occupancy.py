"""Occupancy, waves and memory parallelism of one kernel launch: how much of the GPU a grid keeps busy.

Resident blocks per SM (the CUDA occupancy calculator's rule, the same for sm_80..sm_100):

    r = min(max_blocks_per_sm,
            max_threads_per_sm // (warps x 32),
            warps that fit the register file // warps,   registers allocated per warp in units of 256
            smem_per_sm // (shared bytes + 1 KiB))       1 KiB per block reserved by the system (sm_80+)

Waves: the grid runs in ceil(blocks / (SMs x r)) waves; the last one may be partly empty, so the
compute units are busy `wave_efficiency = blocks / (waves x SMs x r)` of the time (wave quantization).

Memory parallelism (Little's law): keeping HBM busy needs bandwidth x latency bytes in flight; a warp
keeps `bytes_in_flight_per_warp` in flight (an assumption of the spec; more for a matmul, whose
threads issue a whole panel's loads back to back), so a launch whose resident warps fall short reaches
`memory_efficiency = min(1, warps in flight / warps needed)` of the bandwidth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from targets.gpu.machine import GpuMachine

REGISTER_ALLOCATION_UNIT = 256  # registers per warp are allocated in multiples of this (cc 8.0-10.0)
SMEM_RESERVED_PER_BLOCK = 1024  # bytes of shared memory the system keeps per resident block (cc 8.0+)
MAX_REGISTERS_PER_THREAD = 255
STATIC_SHARED_LIMIT = 48 * 1024  # bytes of static shared memory a kernel may declare (every CUDA GPU)


class LaunchError(Exception):
    """A launch that cannot run on the machine (too many threads, registers or shared memory)."""


@dataclass(frozen=True)
class Occupancy:
    blocks_per_sm: int  # resident blocks per SM
    limiter: str  # what bounds it: threads, registers, shared memory, blocks
    warps_per_block: int
    occupancy: float  # resident warps / the SM's maximum

    @property
    def warps_per_sm(self) -> int:
        return self.blocks_per_sm * self.warps_per_block


def occupancy(machine: GpuMachine, threads: int, registers: int, shared_bytes: float) -> Occupancy:
    """Resident blocks per SM of a launch with `threads` per block, `registers` per thread and
    `shared_bytes` of shared memory per block."""
    if threads > machine.max_threads_per_block:
        raise LaunchError(f"{threads} threads per block exceed the {machine.max_threads_per_block} of {machine.name}")
    if shared_bytes > machine.smem_per_block:
        raise LaunchError(f"{shared_bytes:.0f} bytes of shared memory per block exceed the "
                          f"{machine.smem_per_block:.0f} of {machine.name}")
    registers = max(1, min(registers, MAX_REGISTERS_PER_THREAD))
    warps = math.ceil(threads / machine.warp)
    per_warp = math.ceil(registers * machine.warp / REGISTER_ALLOCATION_UNIT) * REGISTER_ALLOCATION_UNIT
    limits = {
        "blocks": machine.max_blocks_per_sm,
        "threads": machine.max_threads_per_sm // (warps * machine.warp),
        "registers": (machine.registers_per_sm // per_warp) // warps,
        "shared memory": int(machine.smem_per_sm // (shared_bytes + SMEM_RESERVED_PER_BLOCK)) if shared_bytes
        else machine.max_blocks_per_sm,
    }
    limiter = min(limits, key=lambda key: limits[key])
    blocks = limits[limiter]
    if blocks < 1:
        raise LaunchError(f"a block of {threads} threads x {registers} registers does not fit one SM of "
                          f"{machine.name} (limited by {limiter})")
    max_warps = machine.max_threads_per_sm // machine.warp
    return Occupancy(blocks, limiter, warps, blocks * warps / max_warps)


def waves(machine: GpuMachine, blocks: int, resident: Occupancy) -> int:
    return max(1, math.ceil(blocks / (machine.sms * resident.blocks_per_sm)))


def wave_efficiency(machine: GpuMachine, blocks: int, resident: Occupancy) -> float:
    """The share of block slots busy over the kernel's waves (1.0 when the last wave is full)."""
    slots = waves(machine, blocks, resident) * machine.sms * resident.blocks_per_sm
    return min(1.0, blocks / slots)


def warps_needed(machine: GpuMachine, bytes_per_warp: float | None = None) -> float:
    """Warps the whole chip needs in flight to keep HBM busy (bandwidth x latency / bytes per warp)."""
    return machine.hbm_bandwidth * machine.hbm_latency / (bytes_per_warp or machine.bytes_in_flight_per_warp)


def memory_efficiency(machine: GpuMachine, blocks: int, resident: Occupancy,
                      bytes_per_warp: float | None = None) -> float:
    """The share of HBM bandwidth a launch can draw, from the warps it keeps resident and the bytes each
    keeps in flight (default: the spec's `bytes_in_flight_per_warp`)."""
    concurrent = min(blocks, machine.sms * resident.blocks_per_sm)
    return min(1.0, concurrent * resident.warps_per_block / warps_needed(machine, bytes_per_warp))
