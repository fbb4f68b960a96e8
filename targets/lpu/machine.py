"""The machine model of the LPU: a Groq TSP chip as published, plus the assumptions, from its spec file.

The TSP is functionally sliced. Seen from above, each chip is a row of full-height slices along the
east-west axis; every slice of one kind does one job for all 320 lanes:

    MXM.W | SXM.W | MEM.W43 ... MEM.W0 | VXM | MEM.E0 ... MEM.E43 | SXM.E | MXM.E
    pos 0    1       2          45       46    47         90        91      92

Data move between slices on stream registers, 32 flowing east and 32 flowing west; a value written
onto a stream at position p in cycle t is at position p + k (east) or p - k (west) in cycle
t + k * stream_hop_cycles. Units read their operands from the streams at their own position in their
issue cycle, so every instruction's cycle is fixed by the compiler (no caches, no arbiters).

Every number comes from the spec file (`targets/specs/groq-tsp.toml`, or a user's file of kind lpu),
where each has its source or is marked as an assumption; the LPU model's own choices (latencies, stream
hop timing, units per hemisphere, weight-load bandwidth) are in that file's `[lpu]` table, in one place.
`LpuMachine` is that data in the form the compiler and simulator use; the `.lpu` listing repeats it, so
a listing runs without the spec. Tests shrink `mem_words_per_slice` to exercise multi-chip partitioning.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from targets.spec import HardwareSpec

DEFAULT_SPEC = "groq-tsp"


@dataclass(frozen=True)
class LpuMachine:
    clock_hz: float
    lanes: int
    streams_per_direction: int
    mem_slices_per_hemisphere: int
    mem_words_per_slice: int  # one word = one 320-byte vector row (a byte per lane)
    mxm_planes_per_hemisphere: int
    mxm_size: int
    vxm_alus: int
    sxm_units_per_hemisphere: int
    c2c_links: int
    c2c_link_bytes_per_s: float
    stream_hop_cycles: int
    mem_read_latency: int
    mem_write_latency: int
    vxm_latency: int
    vxm_transcendental_latency: int
    sxm_latency: int
    mxm_latency: int
    mxm_install_cycles: int
    mxm_weight_load_bytes_per_cycle: int
    mxm_accumulators: int
    mvm_cycles_int8: int
    mvm_cycles_fp16: int
    mvm_cycles_fp32: int
    c2c_latency_cycles: int
    c2c_links_per_peer: int
    usable_sram_fraction: float  # of each chip's SRAM the partitioner fills (the rest: copies, scratch)
    power_w: float
    price_per_chip_hour: float | None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "price_per_chip_hour" and value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"LPU machine parameter {field.name} must be a positive number, got {value!r}")
        if self.usable_sram_fraction > 1:
            raise ValueError("usable_sram_fraction must be at most 1")
        if self.mxm_size != self.lanes:
            raise ValueError("the model needs mxm_size == lanes (one weight vector per MXM column)")

    # -- derived -------------------------------------------------------------------------------------

    @property
    def mem_slices(self) -> int:
        return 2 * self.mem_slices_per_hemisphere

    @property
    def word_bytes(self) -> int:
        """Bytes of one MEM word: one byte per lane (a 320-byte stream vector)."""
        return self.lanes

    @property
    def sram_bytes(self) -> int:
        return self.mem_slices * self.mem_words_per_slice * self.word_bytes

    @property
    def sram_bytes_per_cycle(self) -> int:
        """SRAM bytes one chip streams per cycle as the model schedules it: one word read (and one
        written) per MEM slice per cycle."""
        return self.mem_slices * self.word_bytes

    @property
    def c2c_bytes_per_cycle(self) -> float:
        return self.c2c_link_bytes_per_s / self.clock_hz

    @property
    def c2c_pair_bytes_per_s(self) -> float:
        """C2C bandwidth between two chips that exchange data: the links of a pair work in parallel."""
        return self.c2c_links_per_peer * self.c2c_link_bytes_per_s

    def c2c_cycles(self, nbytes: int) -> int:
        """Cycles one link is busy serialising `nbytes`."""
        return max(1, math.ceil(nbytes / self.c2c_bytes_per_cycle))

    def mvm_cycles(self, precision: str) -> int:
        return {"int8": self.mvm_cycles_int8, "fp16": self.mvm_cycles_fp16, "bf16": self.mvm_cycles_fp16,
                "fp32": self.mvm_cycles_fp32}[precision]

    @cached_property
    def layout(self) -> ChipLayout:
        return ChipLayout(self)

    def replace(self, **changes: Any) -> LpuMachine:
        return dataclasses.replace(self, **changes)

    def with_sram(self, sram_bytes: int) -> LpuMachine:
        """The same chip with `sram_bytes` of SRAM (whole words per slice, at least one)."""
        words = max(1, int(sram_bytes) // (self.mem_slices * self.word_bytes))
        return self.replace(mem_words_per_slice=words)


def machine_from_spec(spec: HardwareSpec) -> LpuMachine:
    """The machine a spec of kind lpu describes (values in base units, see targets/spec.py)."""

    def get(path: str) -> float:
        value = spec.value(path)
        if value is None:
            raise ValueError(f"spec {spec.name} has no {path}, which the LPU model needs")
        return value

    def whole(path: str) -> int:
        return int(round(get(path)))

    clock = spec.clock
    superlanes = whole("lpu.superlanes")
    int8 = get("compute.mxm.i8")
    return LpuMachine(
        clock_hz=clock,
        lanes=superlanes * whole("lpu.lanes_per_superlane"),
        streams_per_direction=whole("lpu.streams_per_direction"),
        mem_slices_per_hemisphere=whole("lpu.mem_slices") // 2,
        mem_words_per_slice=int(superlanes * get("lpu.sram_per_tile") // get("lpu.vector_bytes")),
        mxm_planes_per_hemisphere=max(1, whole("lpu.mxm_planes") // 2),
        mxm_size=whole("lpu.mxm_dim"),
        vxm_alus=whole("lpu.vxm_alus_per_lane"),
        sxm_units_per_hemisphere=whole("lpu.sxm_units_per_hemisphere"),
        c2c_links=whole("interconnect.links"),
        c2c_link_bytes_per_s=get("interconnect.link_bandwidth"),
        stream_hop_cycles=whole("lpu.stream_hop"),
        mem_read_latency=whole("lpu.mem_read_latency"),
        mem_write_latency=whole("lpu.mem_write_latency"),
        vxm_latency=whole("lpu.vxm_latency"),
        vxm_transcendental_latency=whole("lpu.vxm_transcendental_latency"),
        sxm_latency=whole("lpu.sxm_latency"),
        mxm_latency=whole("lpu.mxm_latency"),
        mxm_install_cycles=whole("lpu.mxm_install"),
        mxm_weight_load_bytes_per_cycle=whole("lpu.mxm_weight_load_bandwidth"),
        mxm_accumulators=whole("lpu.mxm_accumulators"),
        # One activation vector per cycle per plane is the int8 peak (4 planes x 320 x 320 MACs x 2 x
        # 900 MHz = 737 TOP/s, the published 750); fp16 and fp32 take as many cycles as their peaks are
        # below it.
        mvm_cycles_int8=1,
        mvm_cycles_fp16=max(1, round(int8 / get("compute.mxm.f16"))),
        mvm_cycles_fp32=max(1, round(int8 / get("compute.mxm.f32"))),
        c2c_latency_cycles=max(1, round(get("interconnect.latency") * clock)),
        c2c_links_per_peer=whole("lpu.c2c_links_per_peer"),
        usable_sram_fraction=spec.value("model.weight_capacity_fraction") or 1.0,
        power_w=spec.tdp,
        price_per_chip_hour=spec.price_per_hour.value if spec.price_per_hour is not None else None,
    )


def load_machine(spec: str | HardwareSpec = DEFAULT_SPEC) -> LpuMachine:
    """The machine of a spec (a name in targets/specs, a file path, or a loaded spec)."""
    from targets.spec import load_spec
    if isinstance(spec, str):
        spec = load_spec(spec)
    if spec.kind != "lpu":
        raise ValueError(f"spec {spec.name} describes a '{spec.kind}' chip, not an lpu")
    return machine_from_spec(spec)


class ChipLayout:
    """Positions of the slices along the stream axis and the names of the units."""

    def __init__(self, machine: LpuMachine) -> None:
        n = machine.mem_slices_per_hemisphere
        self.machine = machine
        self.mxm_position = {"W": 0, "E": 4 + 2 * n}
        self.sxm_position = {"W": 1, "E": 3 + 2 * n}
        self.vxm_position = 2 + n
        self.width = 5 + 2 * n
        self.mem_slices: list[str] = []  # ordered nearest the VXM first, alternating sides
        self._positions: dict[str, int] = {}
        for i in range(n):
            for side in ("W", "E"):
                name = f"MEM.{side}{i}"
                self.mem_slices.append(name)
                self._positions[name] = 2 + (n - 1 - i) if side == "W" else 3 + n + i
        for i in range(machine.vxm_alus):
            self._positions[f"VXM.{i}"] = self.vxm_position
        for side in ("W", "E"):
            for i in range(machine.sxm_units_per_hemisphere):
                self._positions[f"SXM.{side}{i}"] = self.sxm_position[side]
            for i in range(machine.mxm_planes_per_hemisphere):
                self._positions[f"MXM.{side}{i}"] = self.mxm_position[side]
        for i in range(machine.c2c_links):
            self._positions[f"C2C.{i}"] = self.sxm_position[self.link_side(i)]

    @staticmethod
    def link_side(link: int) -> str:
        return "W" if link % 2 == 0 else "E"

    def position(self, unit: str) -> int:
        try:
            return self._positions[unit]
        except KeyError:
            raise ValueError(f"the chip has no unit '{unit}'") from None

    def has_unit(self, unit: str) -> bool:
        return unit in self._positions

    @property
    def units(self) -> list[str]:
        return list(self._positions)

    def mxm_planes(self) -> list[str]:
        m = self.machine.mxm_planes_per_hemisphere
        return [f"MXM.{side}{i}" for i in range(m) for side in ("W", "E")]

    def sxm_units(self, side: str) -> list[str]:
        return [f"SXM.{side}{i}" for i in range(self.machine.sxm_units_per_hemisphere)]

    def vxm_units(self) -> list[str]:
        return [f"VXM.{i}" for i in range(self.machine.vxm_alus)]

    def side_of(self, position: int) -> str:
        return "W" if position < self.vxm_position else "E"


def unit_kind(unit: str) -> str:
    """'MEM', 'VXM', 'SXM', 'MXM' or 'C2C' for a unit name like 'MEM.E3'."""
    return unit.split(".", 1)[0]
