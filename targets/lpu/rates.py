"""The rates the LPU model schedules on, as the text the report's why-line quotes.

`targets.report.explain` names the binding resource and its rate. Without help it would quote the
spec's headline figures (80 TB/s of SRAM, 240 GB/s of C2C), which the LPU model does not use: it
times each stage from its own per-unit rates (`LpuMachine`, from the spec's `[lpu]` table and unit
counts), and `StageCount.resource_cycles` divides counts by exactly these rates. This module turns the
same `LpuMachine` properties into text, so the line says what the model did:

* `mem:sram`: MEM ports (`sram_bytes_per_cycle` per chip: one 320-byte word per MEM slice per cycle)
  or, where weight loads into the MXM bound the memory time, the load rate per plane
  (`mxm_weight_load_bytes_per_cycle`);
* `compute`: the MXM rate of the program's precision(s) (`mvm_cycles` per 320 x 320 product);
* `interconnect`: the links between a pair of chips (`c2c_pair_bytes_per_s`) plus the link latency;
* `vector` and `switch`: the VXM ALUs and SXM units per chip.
"""

from __future__ import annotations

from typing import Iterable

from targets.lpu.counting import StageCount
from targets.lpu.machine import LpuMachine
from targets.units import format_si, format_time


def sram_rate(machine: LpuMachine) -> float:
    """Bytes per second one chip's MEM ports stream, as scheduled."""
    return machine.sram_bytes_per_cycle * machine.clock_hz


def weight_load_rate(machine: LpuMachine) -> float:
    """Bytes per second one MXM plane loads weights, as scheduled."""
    return machine.mxm_weight_load_bytes_per_cycle * machine.clock_hz


def mxm_rate(machine: LpuMachine, precision: str) -> float:
    """FLOP/s of one chip's MXM planes at `precision`, as scheduled."""
    planes = 2 * machine.mxm_planes_per_hemisphere
    return planes * 2 * machine.lanes * machine.mxm_size * machine.clock_hz / machine.mvm_cycles(precision)


def _memory_text(machine: LpuMachine, counts: Iterable[StageCount]) -> str:
    ports = loads = 0.0
    for count in counts:
        busy = count.resource_cycles(machine)
        if max(busy, key=busy.get) == "mem:sram":
            parts = count.memory_cycles(machine)
            ports += parts["ports"]
            loads += parts["loads"]
    mhz = f"{machine.clock_hz / 1e6:g} MHz"
    if loads > ports:
        return (f"{format_si(weight_load_rate(machine), 'B/s')} per MXM plane loading weights "
                f"({machine.mxm_weight_load_bytes_per_cycle} B/cycle x {mhz}, "
                f"{2 * machine.mxm_planes_per_hemisphere} planes per chip, as scheduled)")
    return (f"{format_si(sram_rate(machine), 'B/s')} per chip ({machine.mem_slices} MEM slices x "
            f"{machine.word_bytes} B/cycle x {mhz}, as scheduled)")


def model_rates(machine: LpuMachine, precisions: Iterable[str], counts: Iterable[StageCount]) -> dict[str, str]:
    """Resource -> the rate the model used for it, for `targets.report.explain`; `counts` are the
    priced stages (they decide which half of `mem:sram` the text names)."""
    mhz = f"{machine.clock_hz / 1e6:g} MHz"
    planes = 2 * machine.mxm_planes_per_hemisphere
    compute = ", ".join(f"{format_si(mxm_rate(machine, p), 'FLOP/s')} {p}" for p in sorted(set(precisions)))
    return {
        "mem:sram": _memory_text(machine, counts),
        "compute": (f"{compute or format_si(mxm_rate(machine, 'int8'), 'OP/s') + ' int8'} per chip ({planes} MXM "
                    f"planes of {machine.mxm_size}x{machine.mxm_size} MACs x {mhz}, as scheduled)"),
        "interconnect": (f"{format_si(machine.c2c_pair_bytes_per_s, 'B/s')} per pair of chips "
                         f"({machine.c2c_links_per_peer} links x {format_si(machine.c2c_link_bytes_per_s, 'B/s')}, "
                         f"+ {format_time(machine.c2c_latency_cycles / machine.clock_hz)} per copy, as scheduled)"),
        "vector": f"{machine.vxm_alus} VXM ALUs per chip, one {machine.lanes}-lane op each per cycle",
        "switch": f"{2 * machine.sxm_units_per_hemisphere} SXM units per chip, one vector each per cycle",
    }
