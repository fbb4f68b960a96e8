"""The CPU target's cost model: an analytical roofline of the host, priced on the loop IR it compiles.

The machine (`host_spec()`): `targets/specs/cpu.toml` with every `detect` field read from this machine
(cores, clock, SIMD and FMA widths, cache sizes, RAM; `targets.cpu.host` and /proc), and the derived
rates recomputed from them: peak = cores x FMA units x lanes x 2 x clock, cache bandwidth = bytes per
cycle x cores x clock. Memory bandwidth cannot be read; the spec's measured figure stays.

Per kernel (counts from `targets.counts`), times in seconds:

    compute  = (flops + transcendentals x model.transcendental_flops) / rate
               rate = peak(dtype) x compute_fraction x cores used / cores, divided by the lanes
                      (and x scalar_fraction) when the loop IR has no vectorized loop
    mem:l1   = all loads and stores / L1 bandwidth, except to local buffers that fit in the vector
               registers (accumulator tiles live in registers)
    mem:l3   = intermediates the previous kernels wrote that fit in half of L3, and the weights and inputs
               when all of them fit there (they stay warm between steps) / L3 bandwidth
    mem:dram = distinct bytes of everything else (weights, inputs, outputs, large intermediates)
               / (DRAM bandwidth x memory_fraction)
    latency  = max(compute, mem:*) + call overhead (+ parallel fork/join when more than one core runs)

Cores used: min(cores, iterations of the parallel loops) on the loop IR (1 when it has none); at the
graph level (no loop IR) the output size. f16/bf16 compute in f32 lanes, integers at the f32 rate.
DRAM bytes are the footprint (perfect reuse within a kernel): a lower bound that holds for tiled loops.
Every fraction and overhead is an assumption in the spec, chosen before measuring, never fitted.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from ir.dtypes import DType
from ir.graph import Graph
from targets.cost import Amounts, Cost, CostReport, roofline
from targets.counts import KernelCounts, ProgramCounts, count_graph, count_loop_program, is_loop_program
from targets.partition import plan_partition, price_partitioned
from targets.report import build_report
from targets.spec import HardwareSpec, load_spec
from targets.units import format_si

if TYPE_CHECKING:
    from ir.loops import LoopProgram

# -- the host ---------------------------------------------------------------------------------------

_FMA_WIDTH_BY_CPU = {"znver1": 128, "znver2": 256, "znver3": 256, "znver4": 256}  # AVX-512 split in halves


def _clock_hz() -> tuple[float, str] | None:
    path = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        return float(path.read_text()) * 1e3, f"read from {path}"
    except (OSError, ValueError):
        pass
    try:
        speeds = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("cpu MHz")]
    except (OSError, ValueError, IndexError):
        return None
    if not speeds:
        return None
    return max(speeds) * 1e6, "read from /proc/cpuinfo (cpu MHz: the clock the kernel reports; boost may be higher)"


def _memory_bytes() -> tuple[float, str] | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return float(line.split()[1]) * 1024, "read from /proc/meminfo (MemTotal)"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "read from sysconf (physical pages)"
    except (ValueError, OSError, AttributeError):
        return None


def detect_host() -> dict[str, tuple[float, str]]:
    """Probe name -> (value in base units, where it was read) for what this machine tells."""
    from targets.cpu.host import host_info
    info = host_info()
    found: dict[str, tuple[float, str]] = {
        "cores": (float(info.cores), "read from sched_getaffinity (CPUs this process may use)"),
        "isa": (float(info.vector_bits), f"read from LLVM's host features ({info.cpu})"),
        "registers": (float(info.vector_registers), f"{info.vector_bits}-bit ISA of {info.cpu}"),
    }
    width = _FMA_WIDTH_BY_CPU.get(info.cpu, info.vector_bits)
    found["fma_width"] = (float(width), f"{info.cpu}: {width}-bit FMA datapath (known per microarchitecture)"
                          if info.cpu in _FMA_WIDTH_BY_CPU else f"{info.cpu}: assumed as wide as its SIMD registers")
    if not info.caches_assumed:
        for level, size in ((1, info.l1d_bytes), (2, info.l2_bytes), (3, info.l3_bytes)):
            found[f"cache:{level}"] = (float(size), "read from /sys/devices/system/cpu/cpu0/cache")
    for name, probe in (("clock", _clock_hz), ("memory", _memory_bytes)):
        result = probe()
        if result is not None:
            found[name] = result
    return found


def derive(spec: HardwareSpec) -> dict[str, dict]:
    """The spec's derived values recomputed from its (possibly detected) primary ones."""
    cores, clock = spec.value("cpu.cores"), spec.clock
    lanes = spec.value("cpu.fma_width_bits") / 32
    peak = cores * spec.value("cpu.fma_units") * lanes * 2 * clock
    how = (f"{cores:g} cores x {spec.value('cpu.fma_units'):g} FMA units x {lanes:g} f32 lanes x 2 x "
           f"{clock / 1e9:.3g} GHz")
    changes = {"compute.vector.f32": {"value": peak, "source": how, "confidence": "D"},
               "compute.vector.f64": {"value": peak / 2, "source": "half the f32 rate", "confidence": "D"}}
    for level in ("l1", "l2", "l3"):
        per_cycle = spec.value(f"cpu.{level}_bytes_per_cycle")
        changes[f"memory.{level}.bandwidth"] = {
            "value": per_cycle * cores * clock,
            "assumption": f"{per_cycle:g} B/cycle per core (assumed) x {cores:g} cores x {clock / 1e9:.3g} GHz"}
    per_core = spec.value("cpu.power_per_core")
    changes["power.tdp"] = {"value": per_core * cores,
                            "assumption": f"{per_core:g} W per core (assumed) x {cores:g} cores"}
    changes["price.per_chip_hour"] = {
        "value": spec.value("cpu.price_per_core_hour") * cores,
        "assumption": f"${spec.value('cpu.price_per_core_hour'):g} per core-hour (assumed) x {cores:g} cores"}
    return changes


def apply_detected(spec: HardwareSpec, found: dict[str, tuple[float, str]]) -> HardwareSpec:
    """`spec` with its `detect` fields replaced by what was found, then its derived values recomputed."""
    changes = {}
    for quantity in spec.quantities:
        if quantity.detect in found:
            value, source = found[quantity.detect]
            changes[quantity.path] = {"value": value, "source": source, "confidence": "H"}
    spec = spec.with_values(changes)
    derived = {path: change for path, change in derive(spec).items()
               if spec.has(path) and spec.q(path).detect == "derived"}
    return spec.with_values(derived)


@functools.cache
def host_spec() -> HardwareSpec:
    """The shipped CPU spec with this machine's values (cached for the process)."""
    return apply_detected(load_spec("cpu"), detect_host())


def cpu_spec(variant: str | None = None) -> HardwareSpec:
    """The host's spec, or a CPU spec named by `variant` (a shipped name or a .toml path) taken as written."""
    if variant is None:
        return host_spec()
    spec = load_spec(variant)
    if spec.kind != "cpu":
        from targets.base import TargetError
        raise TargetError(f"{spec.path} describes a {spec.kind}, not a cpu; price it with that target")
    return spec


# -- the model --------------------------------------------------------------------------------------


class CpuModel:
    """Prices kernels on a CPU spec (see the module docstring for the formulas)."""

    def __init__(self, spec: HardwareSpec, level: str = "loops", warm: bool = False) -> None:
        self.spec = spec
        self.level = level
        self.warm = warm  # weights and inputs stay in L3 between steps
        self.cores = int(spec.value("cpu.cores"))
        self.l1 = spec.memory_level("l1")
        self.l3 = spec.memory_level("l3")
        self.main = spec.main_memory
        self.registers = spec.value("cpu.vector_registers") * spec.value("cpu.isa_vector_bits") / 8
        self._recent: deque[tuple[str, float]] = deque()  # intermediates the last kernels wrote, oldest first
        self._in_cache: dict[str, float] = {}
        self._recent_bytes = 0.0

    def peak(self, dtype: DType) -> float:
        compute_dtype = DType.F64 if dtype is DType.F64 else DType.F32
        found = self.spec.peak(compute_dtype)
        if found is None:
            raise ValueError(f"the spec {self.spec.name} has no {compute_dtype} compute rate")
        return found[1]

    def lanes(self, dtype: DType) -> float:
        bits = 64 if dtype is DType.F64 else 32
        return self.spec.value("cpu.fma_width_bits") / bits

    def cores_used(self, kernel: KernelCounts) -> int:
        return max(1, min(self.cores, int(kernel.parallel)))

    def price(self, kernel: KernelCounts) -> Cost:
        spec = self.spec
        cores = self.cores_used(kernel)
        peak = self.peak(kernel.dtype)
        rate = peak * spec.value("model.compute_fraction") * cores / self.cores
        vectorized = kernel.vector_width > 1 or self.level == "graph"
        if not vectorized:
            rate *= spec.value("model.scalar_fraction") / self.lanes(kernel.dtype)
        work = kernel.flops + kernel.transcendentals * spec.value("model.transcendental_flops")
        time = {"compute": work / rate if rate else 0.0}
        accesses = self.cache_accesses(kernel)
        if self.l1 is not None and self.l1.bandwidth:
            time["mem:l1"] = accesses / self.l1.bandwidth
        cached, dram = self.split_traffic(kernel)
        if cached and self.l3 is not None and self.l3.bandwidth:
            time["mem:l3"] = cached / self.l3.bandwidth
        main = self.main
        time[f"mem:{main.name}"] = dram / (main.bandwidth * spec.value("model.memory_fraction"))
        flops_executed, flops_useful = kernel.flops, kernel.flops_useful
        if kernel.sparse is not None:  # a sparse matmul: the format's FLOPs, imbalance and gathers
            from targets.sparse_cost import cpu_sparse_cost
            time, flops_executed, flops_useful = cpu_sparse_cost(spec, kernel, self.level, cores, time)
        overhead = {"launch": spec.value("model.call_overhead", 0.0)
                    + (spec.value("model.parallel_overhead") if cores > 1 else 0.0)}
        counts = {"flops_useful": flops_useful, "flops_executed": flops_executed,
                  "transcendentals": kernel.transcendentals,
                  "bytes": Amounts.of({"mem:l1": accesses, "mem:l3": cached,
                                       f"mem:{main.name}": dram}),
                  "peak_chip_seconds": work / peak, "ops": Amounts.of({f"vector:{kernel.dtype}": kernel.flops})}
        return roofline(time, overhead, **counts)

    def cache_accesses(self, kernel: KernelCounts) -> float:
        """Bytes loaded and stored through L1: every access but those to local buffers small enough for
        the vector registers (accumulator tiles, which the compiler keeps in registers)."""
        return sum(t.loaded + t.stored for t in kernel.traffic
                   if not (t.role == "local" and t.size <= self.registers))

    def split_traffic(self, kernel: KernelCounts) -> tuple[float, float]:
        """(bytes served from L3, bytes from DRAM): intermediates the last kernels wrote stay in L3 while
        they fit in half of it; weights, inputs and outputs come from (and go to) DRAM."""
        limit = self.l3.capacity / 2 if self.l3 is not None and self.l3.capacity else 0.0
        cached = dram = 0.0
        for t in kernel.traffic:
            if t.role == "local":
                continue
            if (t.role == "intermediate" and t.buffer in self._in_cache and t.unique <= limit
                    or self.warm and t.role in ("weight", "input")):
                cached += t.unique
            else:
                dram += t.unique
        written = {t.buffer: t.unique for t in kernel.traffic if t.buffer in kernel.writes}
        for name in kernel.writes:
            self._recent.append((name, written.get(name, 0.0)))
            self._in_cache[name] = written.get(name, 0.0)
            self._recent_bytes += written.get(name, 0.0)
        while self._recent and self._recent_bytes > limit:
            name, size = self._recent.popleft()
            self._recent_bytes -= size
            if self._in_cache.get(name) == size:
                del self._in_cache[name]
        return cached, dram


def counts_of(program: LoopProgram | Graph, graph: Graph | None = None) -> ProgramCounts:
    if is_loop_program(program):
        return count_loop_program(program, graph=graph)
    return count_graph(program)


def estimate(program: LoopProgram | Graph, graph: Graph | None = None, spec: HardwareSpec | None = None,
             target: str = "cpu", chips: int | None = None, strategy: str = "auto") -> CostReport:
    """The CPU cost report of a loop program (as the CPU target compiled it) or of a graph."""
    spec = spec or host_spec()
    counts = counts_of(program, graph)
    if graph is not None:
        counts.attributes.setdefault("dims", dict(graph.dims))
    plan = plan_partition(counts, spec, chips, strategy)
    main = spec.main_memory
    weights = counts.weight_bytes
    llc = spec.memory_level("l3")
    warm = bool(llc and llc.capacity and weights + counts.bytes_of("input") <= llc.capacity / 2)
    model = CpuModel(spec, counts.level, warm)
    kernels = price_partitioned(counts, spec, plan, model.price) if plan.placement.fits else []
    where = "from L3 (weights and inputs fit in half of it and stay between steps)" if warm else \
        f"from {main.name.upper()} every step"
    assumptions = [f"weights ({weights / 1e6:.3g} MB) read {where}",
                   f"{spec.value('cpu.cores'):g} cores, {spec.value('cpu.fma_width_bits'):g}-bit FMA, "
                   f"{format_si(main.bandwidth, 'B/s')} {main.name.upper()}",
                   "achievable fractions: compute "
                   f"{spec.value('model.compute_fraction'):g}, memory {spec.value('model.memory_fraction'):g} "
                   "(assumptions of the spec)"]
    peak = spec.peak(DType.F64 if counts.dtype is DType.F64 else DType.F32)
    rates = {f"mem:{main.name}": f"{spec.value('model.memory_fraction'):g} x {format_si(main.bandwidth, 'B/s')} "
                                 "achievable"}
    if peak is not None:
        rates["compute"] = (f"{spec.value('model.compute_fraction'):g} x {format_si(peak[1], 'FLOP/s')} achievable "
                            "(vectorized, all cores)")
    return build_report(target, spec, counts, plan, kernels, assumptions, f"weights read {where}", rates)


def estimate_artifact(artifact: object, spec: HardwareSpec, target: str = "cpu") -> CostReport:
    """`CpuTarget.estimate`: a compiled artifact is priced on its loop IR, a pricing-only one
    (`targets.base.PricingArtifact`) on its graph and fusion groups (fast for any program size)."""
    graph = getattr(artifact, "graph", None)
    loops = getattr(artifact, "program", None) or getattr(artifact, "loops", None)
    options = getattr(artifact, "options", None)
    chips = getattr(options, "chips", None)
    strategy = getattr(options, "partition", "auto")
    return estimate(loops if is_loop_program(loops) else graph, graph, spec, target, chips, strategy)
