"""The machine model of the wafer-scale target: published WSE figures and our assumptions, in one place.

A wafer is a 2D mesh of processing elements (PEs). Each PE has 48 KB of SRAM (code, buffers and data
share it), a SIMD FMAC datapath (8 fp16 lanes on WSE-3, 4 on WSE-2) and a router with five ports
(north, south, east, west and the "ramp" to its own compute engine). The fabric moves 32-bit wavelets,
each tagged with a color; a link carries one wavelet per cycle in each direction, and a router forwards
a color from one input port to the output ports its table lists for that color. Data leave and enter the
wafer over the system's I/O (12 x 100 GbE); weights that do not fit are streamed from external memory
(MemoryX) over the same I/O.

Every number is a field of `WseMachine`, with where it comes from in `FIELD_SOURCES`: [P] primary,
[S] secondary, [S2] weak secondary, [D] derived (see /work/shared/hardware-specs.md section 2), and
[A] an assumption of ours where public material is silent (the clock, the usable mesh, the reserve for
code, f32 and transcendental rates). `load_machine(variant)` starts from these defaults and takes every
value the spec file `targets/specs/<variant>.toml` gives (with that file's provenance) when it exists;
`with_mesh` shrinks the mesh for the simulator, `on_mesh` to the mesh a user asks pricing for.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from ir.dtypes import DType

SPEC_DIR = Path(__file__).resolve().parents[1] / "specs"
VARIANTS = ("wse3", "wse2")
DEFAULT_VARIANT = "wse3"


@dataclass(frozen=True)
class WseMachine:
    name: str
    description: str
    pes_total: int  # PEs on the wafer (as marketed)
    mesh_width: int  # usable fabric columns (x)
    mesh_height: int  # usable fabric rows (y)
    sram_per_pe: int  # bytes
    code_reserve: int  # bytes of each PE's SRAM kept for code, the runtime and fabric buffers
    fmac_lanes_f16: int  # fp16 FMACs per cycle per PE
    fmac_lanes_f32: int  # fp32 FMACs per cycle per PE
    transcendental_ops: int  # vector operations one exp/log/rsqrt/... costs (computed in software)
    clock_hz: float
    link_bits_per_cycle: int  # per link, per direction (one 32-bit wavelet)
    hop_cycles: float  # router latency of one hop
    ramp_wavelets_per_cycle: float  # between a router and its compute engine, each way
    colors: int  # routable colors
    reserved_colors: int  # colors the memcpy (host I/O) infrastructure keeps
    io_bytes_per_s: float  # off-wafer I/O, each direction (activations in/out, weight streaming)
    io_latency_s: float  # one off-wafer transfer (wafer to wafer through the I/O)
    memoryx_bytes: float  # external weight store
    system_power_w: float  # the whole system (CS-2 / CS-3)
    price_per_hour: float | None  # USD per system-hour, when known
    sparse_index_bytes: int  # bytes of the index stored beside each non-zero weight
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    # -- derived ---------------------------------------------------------------------------------

    @property
    def mesh_pes(self) -> int:
        return self.mesh_width * self.mesh_height

    @property
    def usable_bytes_per_pe(self) -> int:
        return self.sram_per_pe - self.code_reserve

    @property
    def usable_colors(self) -> int:
        return self.colors - self.reserved_colors

    @property
    def wafer_bytes(self) -> int:
        """SRAM a program can use for data on one wafer (usable mesh x usable bytes per PE)."""
        return self.mesh_pes * self.usable_bytes_per_pe

    @property
    def wavelet_bytes(self) -> int:
        return self.link_bits_per_cycle // 8

    def lanes(self, dtype: DType) -> int:
        """Elementwise results (or FMACs) per cycle per PE in `dtype`: the f16 width for 16-bit and
        narrower types, the f32 width for 32-bit ones, half of it for 64-bit ones (at least one)."""
        if dtype.bits <= 16:
            return self.fmac_lanes_f16
        if dtype.bits <= 32:
            return self.fmac_lanes_f32
        return max(1, self.fmac_lanes_f32 // 2)

    def wavelets(self, elements: float, dtype: DType) -> float:
        """32-bit wavelets that carry `elements` values of `dtype` (16-bit values travel two to a wavelet)."""
        return math.ceil(elements * dtype.itemsize / self.wavelet_bytes)

    def seconds(self, cycles: float) -> float:
        return cycles / self.clock_hz

    @property
    def io_bytes_per_cycle(self) -> float:
        return self.io_bytes_per_s / self.clock_hz

    def with_mesh(self, width: int, height: int, purpose: str = "simulated") -> WseMachine:
        """The same machine with a smaller usable mesh (the simulator's, or the one pricing is asked for)."""
        sources = dict(self.sources)
        sources["mesh_width"] = sources["mesh_height"] = f"{purpose} mesh {height}x{width} (rows x columns)"
        return dataclasses.replace(self, mesh_width=width, mesh_height=height, sources=sources)

    def on_mesh(self, rows: int, cols: int) -> WseMachine:
        """The same machine on a rows x cols part of its usable mesh (the `mesh` option: a small test wafer,
        or part of a wafer); MachineError when that mesh is larger than the usable one."""
        if rows > self.mesh_height or cols > self.mesh_width:
            raise MachineError(f"mesh {rows}x{cols} (rows x columns) is larger than the usable mesh of {self.name}, "
                               f"{self.mesh_height}x{self.mesh_width}: at most {self.mesh_height} rows and "
                               f"{self.mesh_width} columns")
        return self.with_mesh(cols, rows, "asked-for (the mesh option)")

    def provenance(self) -> list[tuple[str, str, str]]:
        """(field, value as written, source) for every number, for listings and reports."""
        rows = []
        for f in dataclasses.fields(self):
            if f.name in ("name", "description", "sources"):
                continue
            rows.append((f.name, _show(getattr(self, f.name)), self.sources.get(f.name, "")))
        return rows

    def assumptions(self) -> list[str]:
        return [f"{name} = {value}: {source}" for name, value, source in self.provenance()
                if source.startswith("[A]") or "assumption:" in source]


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# -- the published figures and our assumptions ------------------------------------------------------

HW = "hardware-specs.md §2"

_COMMON_SOURCES = {
    "sram_per_pe": f"[P] 48 KB per core: Argonne ALCF user guide (CS-2, CS-3) ({HW}.1)",
    "code_reserve": "[A] 8 KiB of each PE kept for code (about 6 KiB) and runtime/fabric queues (2 KiB); "
                    "not published: CSL programs share the 48 KB with their code",
    "transcendental_ops": "[A] a PE has no special-function unit: exp, log, rsqrt, tanh, ... are short "
                          "polynomial/Newton sequences, taken as 16 vector operations each",
    "link_bits_per_cycle": f"[S2] one 32-bit wavelet per link per cycle per direction ({HW}.2; consistent "
                           "with the aggregate fabric bandwidth)",
    "hop_cycles": f"[S2] about 1 ns (one cycle) per hop ({HW}.2, SDK summary note)",
    "ramp_wavelets_per_cycle": "[A] the ramp between a router and its compute engine moves one wavelet "
                               "per cycle each way, like a fabric link",
    "colors": f"[S2] 24 routable colors (IDs 0-23) ({HW}.2)",
    "reserved_colors": f"[S2] the memcpy infrastructure reserves colors 21-23 ({HW}.2)",
    "io_bytes_per_s": f"[P] 1.2 Tb/s external I/O (12 x 100 GbE) = 150 GB/s ({HW}.1, Argonne SC24 tutorial)",
    "io_latency_s": "[A] 10 us for a message between wafers over Ethernet/SwarmX; not published",
    "system_power_w": f"[S2] about 23 kW per system; CS-3 'same power as CS-2' ({HW}.1)",
    "sparse_index_bytes": "[A] a 16-bit index beside every non-zero weight a PE stores (unstructured "
                          "sparsity: the PE fires only on the non-zeros it holds)",
}

_WSE3 = WseMachine(
    name="wse3", description="Cerebras WSE-3 (CS-3): 900,000 PEs, 48 KB each, 8-wide fp16 FMAC",
    pes_total=900_000, mesh_width=750, mesh_height=1200, sram_per_pe=48 * 1024, code_reserve=8 * 1024,
    fmac_lanes_f16=8, fmac_lanes_f32=2, transcendental_ops=16, clock_hz=1.1e9, link_bits_per_cycle=32,
    hop_cycles=1.0, ramp_wavelets_per_cycle=1.0, colors=24, reserved_colors=3, io_bytes_per_s=150e9,
    io_latency_s=10e-6, memoryx_bytes=1.5e12, system_power_w=23e3, price_per_hour=None,
    sparse_index_bytes=2,
    sources={
        **_COMMON_SOURCES,
        "pes_total": f"[P] 900,000 cores: Argonne ALCF user guide ({HW}.1)",
        "mesh_width": "[A] usable fabric not published for WSE-3: WSE-2's SDK region (750 x 994 [S2]) "
                      "widened to 750 x 1,200 = 900,000 PEs (as targets/specs/wse3.toml)",
        "mesh_height": "[A] see mesh_width",
        "fmac_lanes_f16": f"[S] 8-wide FP16 FMAC per core: NextPlatform, Mar 2024 ({HW}.1)",
        "fmac_lanes_f32": "[A] f32 at a quarter of the f16 lanes (2 FMA per cycle); not published",
        "clock_hz": f"[A] not published; 1.1 GHz is what the derived dense figure (15.8 PF) implies "
                    f"({HW}.1, [S2]/[D])",
        "memoryx_bytes": f"[S] smallest MemoryX option of CS-3, 1.5 TB: Tom's Hardware ({HW}.1)",
        "price_per_hour": "unknown unless the spec file gives one (CS-3 about $2-3 M to buy [U])",
    })

_WSE2 = dataclasses.replace(
    _WSE3, name="wse2", description="Cerebras WSE-2 (CS-2): 850,000 PEs, 48 KB each, 4-wide fp16 FMAC",
    pes_total=850_000, mesh_width=750, mesh_height=994, fmac_lanes_f16=4, fmac_lanes_f32=1, clock_hz=0.85e9,
    memoryx_bytes=1.5e12,
    sources={
        **_COMMON_SOURCES,
        "pes_total": f"[S] 850,000 cores: AnandTech WSE-2 ({HW}.1)",
        "mesh_width": f"[S2] usable fabric about 750 x 994 PEs on WSE-2 (SDK summary note, {HW}.2)",
        "mesh_height": f"[S2] see mesh_width ({HW}.2)",
        "fmac_lanes_f16": f"[S] 4-wide FP16 FMAC per core: NextPlatform ({HW}.1)",
        "fmac_lanes_f32": "[A] f32 at a quarter of the f16 lanes (1 FMA per cycle); not published",
        "clock_hz": f"[P]/[A] Cerebras/csl-examples convert cycles to time with 0.85 GHz ({HW}.1); the "
                    "clock itself is not published",
        "memoryx_bytes": "[A] MemoryX sizes are published for CS-3; its smallest, 1.5 TB, assumed for CS-2",
        "price_per_hour": f"unknown unless the spec file gives one (CS-2 '$2 million+' [S], {HW}.1)",
    })

DEFAULTS = {"wse3": _WSE3, "wse2": _WSE2}

# spec path -> (machine field, conversion from the spec's base unit)
_SPEC_FIELDS: dict[str, tuple[str, str]] = {
    "clock.core": ("clock_hz", "value"),
    "wse.pes": ("pes_total", "int"),
    "wse.mesh_width": ("mesh_width", "int"),
    "wse.mesh_height": ("mesh_height", "int"),
    "wse.sram_per_pe": ("sram_per_pe", "int"),
    "wse.fmac_lanes_f16": ("fmac_lanes_f16", "int"),
    "compute.fmac.f32": ("fmac_lanes_f32", "lanes"),
    "wse.fabric_link_bandwidth": ("link_bits_per_cycle", "bits_per_cycle"),
    "wse.hop_latency": ("hop_cycles", "cycles"),
    "wse.colors": ("colors", "int"),
    "memory.memoryx.capacity": ("memoryx_bytes", "value"),
    # the wse target's own micro-architecture parameters, in the spec's [wse.pe] table
    "wse.pe.code_reserve": ("code_reserve", "int"),
    "wse.pe.reserved_colors": ("reserved_colors", "int"),
    "wse.pe.ramp_wavelets_per_cycle": ("ramp_wavelets_per_cycle", "value"),
    "wse.pe.transcendental_ops": ("transcendental_ops", "int"),
    "wse.pe.sparse_index_bytes": ("sparse_index_bytes", "int"),
    "interconnect.bandwidth": ("io_bytes_per_s", "value"),
    "interconnect.latency": ("io_latency_s", "value"),
    "power.tdp": ("system_power_w", "value"),
    "price.per_chip_hour": ("price_per_hour", "value"),
}


class MachineError(ValueError):
    """An unknown variant or a nonsensical machine parameter."""


def spec_path(variant: str) -> Path:
    return SPEC_DIR / f"{variant}.toml"


def load_machine(variant: str | None = None, spec: object | None = None) -> WseMachine:
    """The machine of a variant (`wse3` by default): the defaults above, overridden by every value the
    spec (`spec`, a loaded `targets.spec.HardwareSpec`, or the shipped `<variant>.toml`) gives."""
    variant = variant or DEFAULT_VARIANT
    if variant not in DEFAULTS and spec is None:
        raise MachineError(f"unknown wse variant '{variant}' (variants: {', '.join(VARIANTS)})")
    machine = DEFAULTS.get(variant, DEFAULTS[DEFAULT_VARIANT])
    if spec is None and spec_path(variant).is_file():
        from targets.spec import load_spec
        spec = load_spec(spec_path(variant))
    if spec is not None:
        machine = _apply_spec(machine, spec)
    _check(machine)
    return machine


def _apply_spec(machine: WseMachine, spec: object) -> WseMachine:
    changes: dict[str, object] = {"name": getattr(spec, "name", machine.name),
                                  "description": getattr(spec, "description", machine.description)}
    sources = dict(machine.sources)
    clock = spec.value("clock.core", machine.clock_hz)
    pes = spec.value("wse.pes", machine.pes_total)
    for path, (name, conversion) in _SPEC_FIELDS.items():
        if not spec.has(path):
            continue
        quantity = spec.q(path)
        value = quantity.value
        if conversion == "int":
            value = int(round(value))
        elif conversion == "bits_per_cycle":
            value = int(round(value * 8 / clock))
        elif conversion == "cycles":
            value = value * clock
        elif conversion == "lanes":  # a whole-wafer FMAC rate back to FMAs per PE per cycle
            value = max(1, int(round(value / (2 * pes * clock))))
        changes[name] = value
        sources[name] = f"{Path(spec.path).name} {path}: {quantity.provenance}"
    return dataclasses.replace(machine, sources=sources, **changes)


def _check(machine: WseMachine) -> None:
    problems = []
    if machine.usable_bytes_per_pe <= 0:
        problems.append(f"code_reserve ({machine.code_reserve} B) leaves no SRAM of {machine.sram_per_pe} B")
    if machine.usable_colors < 2:
        problems.append(f"{machine.colors} colors with {machine.reserved_colors} reserved leave fewer than two")
    if machine.link_bits_per_cycle < 8:
        problems.append(f"a link must carry at least a byte per cycle (got {machine.link_bits_per_cycle} bits)")
    for name in ("mesh_width", "mesh_height", "fmac_lanes_f16", "fmac_lanes_f32", "clock_hz", "io_bytes_per_s"):
        if getattr(machine, name) <= 0:
            problems.append(f"{name} must be positive (got {getattr(machine, name)})")
    if problems:
        raise MachineError(f"wse machine '{machine.name}': " + "; ".join(problems))


def parse_mesh(text: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """(rows, columns) from "RxC" (or a pair); MachineError for anything else."""
    if isinstance(text, (tuple, list)):
        if len(text) == 2 and all(isinstance(v, int) for v in text):
            rows, cols = text
        else:
            raise MachineError(f"mesh must be (rows, columns), got {text!r}")
    else:
        parts = str(text).lower().replace(" ", "").split("x")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise MachineError(f"mesh must be written ROWSxCOLUMNS (for example 16x16), got '{text}'")
        rows, cols = int(parts[0]), int(parts[1])
    if rows < 1 or cols < 1:
        raise MachineError(f"a mesh needs at least one row and one column, got {rows}x{cols}")
    return rows, cols
