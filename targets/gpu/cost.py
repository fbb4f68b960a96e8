"""The GPU cost model: an occupancy-aware roofline per kernel, from the counts and the kernel's launch.

Per kernel (counts from `targets.counts`, launch shape from `targets.gpu.shapes`), seconds:

    compute  = matmul on tensor cores (bf16/f16 operands):
                   padded FLOPs / (tensor peak(precision) x 2 if B is 2:4 sparse x compute_fraction x wave_eff)
               everything else, and matmuls on CUDA cores:
                   (FLOPs + transcendentals x transcendental_flops) / (vector peak x vector_fraction x wave_eff)
               padded FLOPs = 2 x batch x (M, N, K rounded up to the tiles): the work the tiles really do
    mem:hbm  = HBM bytes / (bandwidth x memory_fraction x memory_eff)
               HBM bytes = the distinct bytes of every global buffer it touches (each read once), less the
               intermediates the previous kernels wrote that still sit in L2, plus a matmul operand's
               reloads when it does not fit in L2 (`targets.gpu.traffic`)
    mem:l2   = bytes all blocks load and store (a matmul: every tile of every panel) / L2 bandwidth
    mem:smem = a matmul's shared-memory traffic (panels written once, operands read per use) / its bandwidth
    latency  = max(compute, mem:*) + launch overhead        (targets.cost.roofline)

    wave_eff   = blocks / (waves x SMs x resident blocks per SM)        (targets.gpu.occupancy)
    memory_eff = min(1, resident warps / warps HBM needs in flight)   (Little's law)

Resident blocks come from the registers (ptxas's figure when the PTX was assembled, else an estimate),
the shared memory and the block size. Every fraction is an assumption of the spec, chosen before
measuring; the report lists them. Pricing never runs or allocates the program: a graph is priced from its
fusion groups (`count_graph`), a compiled artifact from its SIMT loop IR (`count_loop_program`).
Multi-GPU: `targets.partition` splits kernels (tensor parallel inside the NVLink domain, pipeline stages
across) and prices all-reduces from the spec's NVLink bandwidth and latency.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from targets.cost import Amounts, Cost, CostReport, KernelReport, roofline, sum_costs, total_of
from targets.counts import (KernelCounts, MatmulShape, ProgramCounts, count_loop_program, counted_graph,
                            is_loop_program)
from targets.gpu import shapes as kernel_shapes
from targets.gpu.machine import MODEL_DEFAULTS, GpuMachine
from targets.gpu.mapping import shared_bytes_moved
from targets.gpu.occupancy import memory_efficiency, occupancy, wave_efficiency, waves
from targets.gpu.shapes import KernelShape
from targets.gpu.traffic import matmul_traffic
from targets.partition import plan_partition, price_partitioned
from targets.report import build_report
from targets.spec import HardwareSpec
from targets.units import format_si


class GpuModel:
    """Prices kernels on one GPU (see the module docstring for the formulas), in program order: what is
    in L2 depends on the kernels before (`hbm_bytes`)."""

    def __init__(self, machine: GpuMachine) -> None:
        self.machine = machine
        self._l2_share = machine.l2_bytes * machine.l2_reuse_fraction  # intermediates stay while they fit it
        self._recent: deque[tuple[str, float]] = deque()  # intermediates the last kernels wrote (name, bytes)
        self._recent_names: dict[str, int] = {}  # name -> its entries in _recent
        self._recent_whole = 0  # the exact sum of the sizes in _recent that are whole numbers >= 0
        self._recent_other = 0  # entries in _recent whose size is not
        self._priced: dict[tuple, Cost] = {}
        self._described: dict[KernelShape, str] = {}

    def price(self, kernel: KernelCounts, shape: KernelShape) -> Cost:
        """The cost of `kernel` launched as `shape`, the kernels priced before it setting what is in L2.
        One Cost is kept per distinct `_roofline` arguments: they are everything it reads, the L2 state
        included (through the HBM bytes `hbm_bytes` leaves). Counts are floats summed up from 0.0, so
        figures that compare equal are the same numbers (no 0.0 against -0.0, no 1 against 1.0)."""
        hbm = self.hbm_bytes(kernel)  # before the memo: it reads and moves the L2 state
        l2 = sum(t.loaded + t.stored for t in kernel.traffic if t.role != "local")  # every access goes via L2
        matmul = kernel.matmul if shape.tiles is not None else None
        out_bytes = kernel.bytes(("output", "intermediate")) if matmul is not None else 0.0
        key = (shape, hbm, l2, out_bytes, kernel.flops, kernel.flops_useful, kernel.transcendentals, matmul)
        cost = self._priced.get(key)
        if cost is None:
            cost = self._priced[key] = self._roofline(*key)
        return cost

    def _roofline(self, shape: KernelShape, hbm: float, l2: float, out_bytes: float, flops: float,
                  flops_useful: float, transcendentals: float, mm: MatmulShape | None) -> Cost:
        """The cost of a kernel from the figures `price` reads off it: a pure function of its arguments
        (and the machine), which is why `price` may keep one result per distinct argument tuple (the 80
        layers of a decode step repeat the same kernels). `mm` is the matmul's shape when it runs tiled."""
        m = self.machine
        resident = occupancy(m, shape.threads, shape.registers, shape.shared_bytes)
        busy = wave_efficiency(m, shape.blocks, resident)
        feed = memory_efficiency(m, shape.blocks, resident)
        smem = 0.0
        unit, precision = "vector", "f64" if shape.precision == "f64" else "f32"
        executed = flops + transcendentals * m.transcendental_flops
        vector_rate = m.vector_rate(precision)
        peak_seconds = executed / vector_rate
        compute = executed / (vector_rate * m.vector_fraction * busy)
        if mm is not None:
            tiles = shape.tiles
            padded = (2.0 * mm.batch * math.ceil(mm.m / tiles.bm) * tiles.bm * math.ceil(mm.n / tiles.bn) * tiles.bn
                      * math.ceil(mm.k / tiles.bk) * tiles.bk)
            rest = max(0.0, flops_useful - 2.0 * mm.batch * mm.m * mm.n * mm.k) \
                + transcendentals * m.transcendental_flops
            if tiles.mma:
                unit, precision = "tensor", shape.precision
                rate = m.tensor_rate(precision) * (2.0 if shape.sparse_b else 1.0)
                compute = padded / (rate * m.tensor_fraction * busy) + rest / (vector_rate * m.vector_fraction * busy)
                peak_seconds = padded / rate + rest / vector_rate
            else:
                compute = (padded + rest) / (vector_rate * m.vector_fraction * busy)
                peak_seconds = (padded + rest) / vector_rate
            executed = padded + rest
            slots = m.sms * resident.blocks_per_sm
            traffic = matmul_traffic(m, mm.batch, mm.m, mm.n, mm.k, tiles.bm, tiles.bn, tiles.itemsize,
                                     shape.a_batched, shape.b_batched, slots)
            a_once = (mm.batch if shape.a_batched else 1) * mm.m * mm.k * tiles.itemsize
            b_once = (mm.batch if shape.b_batched else 1) * mm.k * mm.n * tiles.itemsize
            hbm += (traffic.a_hbm - a_once) + (traffic.b_hbm - b_once)
            l2 = traffic.l2 + out_bytes
            smem = shared_bytes_moved(tiles, shape.blocks, mm.k)
            feed = memory_efficiency(m, shape.blocks, resident, tiles.bytes_in_flight_per_warp(m))
        time = {"compute": compute,
                "mem:hbm": hbm / (m.hbm_bandwidth * m.memory_fraction * feed)}
        if m.l2_bandwidth:
            time["mem:l2"] = l2 / m.l2_bandwidth
        if smem and m.smem_bandwidth:
            time["mem:smem"] = smem / m.smem_bandwidth
        counts = {"flops_useful": flops_useful, "flops_executed": executed, "transcendentals": transcendentals,
                  "bytes": Amounts.of({"mem:hbm": hbm, "mem:l2": l2, "mem:smem": smem}),
                  "peak_chip_seconds": peak_seconds, "ops": Amounts.of({f"{unit}:{precision}": executed})}
        return roofline(time, {"launch": m.launch_overhead}, **counts)

    def hbm_bytes(self, kernel: KernelCounts) -> float:
        """Bytes from and to HBM: every global buffer's footprint, except intermediates the previous kernels
        just wrote that are still in L2. Then `kernel`'s outputs join those, and the oldest leave while
        their sizes sum to more than the L2 share."""
        limit = self._l2_share
        recent = self._recent_names
        hbm = 0.0
        for t in kernel.traffic:
            if t.role == "local" or (t.role == "intermediate" and t.buffer in recent and t.loaded
                                     and not t.stored and t.unique <= limit):
                continue
            hbm += t.unique
        for name in kernel.writes:
            self._remember(name, sum(t.unique for t in kernel.traffic if t.buffer == name))
        while self._recent and self._recent_bytes() > limit:
            self._forget()
        return hbm

    def _remember(self, name: str, size: float) -> None:
        self._recent.append((name, size))
        self._recent_names[name] = self._recent_names.get(name, 0) + 1
        if size >= 0 and float(size).is_integer():
            self._recent_whole += int(size)
        else:
            self._recent_other += 1

    def _forget(self) -> None:
        name, size = self._recent.popleft()
        if self._recent_names[name] == 1:
            del self._recent_names[name]
        else:
            self._recent_names[name] -= 1
        if size >= 0 and float(size).is_integer():
            self._recent_whole -= int(size)
        else:
            self._recent_other -= 1

    def _recent_bytes(self) -> float:
        """`sum(sizes in _recent)` as Python adds them, oldest first. Whole numbers >= 0 whose total is at
        most 2**53 add exactly in any order, so then the running exact total is that sum; otherwise it
        is added up afresh."""
        if not self._recent_other and self._recent_whole <= 2 ** 53:
            return float(self._recent_whole)
        return sum(size for _, size in self._recent)

    def describe(self, shape: KernelShape) -> str:
        """One line on the launch: grid, block, occupancy, waves, tiles (kept per shape: the line reads
        nothing but the shape and the machine)."""
        text = self._described.get(shape)
        if text is None:
            text = self._described[shape] = self._describe(shape)
        return text

    def _describe(self, shape: KernelShape) -> str:
        m = self.machine
        resident = occupancy(m, shape.threads, shape.registers, shape.shared_bytes)
        text = (f"{shape.blocks} blocks x {shape.threads} threads, {shape.registers} regs ({shape.registers_from}), "
                f"{shape.shared_bytes / 1024:.3g} KiB smem: {resident.blocks_per_sm} blocks/SM ({resident.limiter}), "
                f"occupancy {resident.occupancy:.0%}, {waves(m, shape.blocks, resident)} wave(s) "
                f"at {wave_efficiency(m, shape.blocks, resident):.0%}")
        if shape.tiles is not None:
            t = shape.tiles
            how = f"mma.sync {t.warps_m}x{t.warps_n} warps" if t.mma else f"CUDA cores, {t.tm}x{t.tn} per thread"
            text += f"; tile {t.bm}x{t.bn}x{t.bk} on {how}" + (" (2:4 sparse B)" if shape.sparse_b else "")
        if shape.mode:
            text += f"; a row per {shape.mode}"
        if shape.spill_bytes:
            text += f"; ptxas spills {shape.spill_bytes} B per thread"
        return text


def estimate_artifact(artifact: object, spec: HardwareSpec, machine: GpuMachine, target: str) -> CostReport:
    """`GpuTarget.estimate`: a compiled artifact priced on its SIMT loop IR and launches, a pricing-only one
    (`targets.base.PricingArtifact`) on its graph and fusion groups."""
    graph = artifact.graph
    options = getattr(artifact, "options", None)
    program = getattr(artifact, "program", None)
    if is_loop_program(program):
        counts = count_loop_program(program, graph=graph)
        by_name = kernel_shapes.from_artifact(artifact)
        shapes = [by_name[k.name] for k in counts.kernels]
    else:
        counts, counter = counted_graph(graph)
        tensor_cores = bool(options.extra.get("tensor_cores", True)) if options is not None else True
        shapes = kernel_shapes.from_graph(graph, counts, machine, tensor_cores, counter, defer_tiles=True)
    counts.attributes.setdefault("dims", dict(graph.dims))
    return estimate(counts, shapes, spec, machine, target, getattr(options, "chips", None),
                    getattr(options, "partition", "auto"))


def estimate(counts: ProgramCounts, shapes: list[KernelShape | kernel_shapes.PendingMatmul], spec: HardwareSpec,
             machine: GpuMachine, target: str, chips: int | None = None, strategy: str = "auto") -> CostReport:
    plan = plan_partition(counts, spec, chips, strategy)
    model = GpuModel(machine)
    order = iter(range(len(counts.kernels)))
    launched: list[KernelShape] = []  # the shape each kernel was priced with, in order

    def price(kernel: KernelCounts) -> Cost:  # price_partitioned calls it once per kernel, in order
        index = next(order)
        ways = plan.ways[index] if plan.ways else 1
        shape = shapes[index].split(ways, kernel, machine)
        launched.append(shape)
        return model.price(kernel, shape)

    def describe(index: int) -> str:
        return model.describe(launched[index])

    reports = price_partitioned(counts, spec, plan, price, describe) if plan.placement.fits else []
    assumptions = _assumptions(counts, spec, machine)
    total = total_of(reports)
    unit = _main_unit(total, machine) if reports else None
    return build_report(target, spec, counts, plan, reports, assumptions,
                        _lead(counts, reports, total, machine, unit), _rates(machine, unit), total=total)


@dataclass(frozen=True)
class _Unit:
    """The unit most of a program's executed work runs on, and its rate."""

    tensor: bool  # tensor cores (else CUDA cores)
    precision: str
    peak: float  # FLOP/s
    fraction: float  # the achievable share of `peak` (a spec assumption)

    @property
    def name(self) -> str:
        return "tensor cores" if self.tensor else "CUDA cores"


def _main_unit(total: Cost, machine: GpuMachine) -> _Unit:
    unit = total.ops.largest()
    precision = unit[0].split(":")[-1] if unit else "f32"
    tensor = unit is not None and unit[0].startswith("tensor") and bool(machine.tensor_rate(precision))
    if tensor:
        return _Unit(True, precision, machine.tensor_rate(precision), machine.tensor_fraction)
    return _Unit(False, precision, machine.vector_rate(precision), machine.vector_fraction)


def _rates(machine: GpuMachine, unit: _Unit | None) -> dict[str, str]:
    """The rates `GpuModel.price` divides by, as the why line quotes them (the achievable fractions
    applied; occupancy and wave losses come on top, per kernel)."""
    rates = {"mem:hbm": f"{machine.memory_fraction:g} x {format_si(machine.hbm_bandwidth, 'B/s')} achievable"}
    if machine.l2_bandwidth:
        rates["mem:l2"] = format_si(machine.l2_bandwidth, "B/s")
    if machine.smem_bandwidth:
        rates["mem:smem"] = format_si(machine.smem_bandwidth, "B/s") + " (all SMs)"
    if unit is not None:
        rates["compute"] = f"{unit.fraction:g} x {format_si(unit.peak, 'FLOP/s')} achievable on {unit.name} ({unit.precision})"
    return rates


def _lead(counts: ProgramCounts, reports: list[KernelReport], total: Cost, machine: GpuMachine,
          unit: _Unit | None) -> str:
    """Why the program is bound where it is: the ridge point (the intensity at which the unit most of its
    work runs on, at its achievable rate, meets HBM at its achievable rate), and how much of the time goes
    to kernels above it (compute-bound), below it (memory-bound), and to launches and messages. `total`
    is the reports' total."""
    if not reports or unit is None:
        return ""
    ridge = unit.peak * unit.fraction / (machine.hbm_bandwidth * machine.memory_fraction)
    bound_by: dict[str, list[Cost]] = {}
    for report in reports:
        bound_by.setdefault(report.cost.binding or "compute", []).append(report.cost)
    groups = {binding: sum_costs(costs) for binding, costs in bound_by.items()}
    parts = []
    levels = sorted(g for g in groups if g.startswith("mem:"))
    for group in ["compute", *levels, "launch", "interconnect"]:
        cost = groups.get(group)
        if cost is None or not total.latency or cost.latency < 0.005 * total.latency:
            continue
        share = f"{cost.latency / total.latency:.0%} in "
        if group == "launch":
            parts.append(share + "launch overhead")
        elif group == "interconnect":
            parts.append(share + "NVLink messages")
        else:
            # Intensity against HBM, placed against the ridge as it is (an L2- or smem-bound kernel can
            # sit on either side of the HBM ridge).
            hbm = cost.bytes.get("mem:hbm")
            intensity = cost.flops_executed / hbm if hbm else math.inf
            side = "above" if intensity >= ridge else "below"
            what = "compute-bound" if group == "compute" else f"{group[4:].upper()}-bound"
            parts.append(share + f"{what} kernels ({intensity:.3g} FLOP per HBM byte, {side} the ridge)")
    text = (f"ridge {ridge:.3g} FLOP/B ({unit.name} {unit.precision} at {unit.fraction:g} x "
            f"{format_si(unit.peak, 'FLOP/s')} vs HBM at {machine.memory_fraction:g} x "
            f"{format_si(machine.hbm_bandwidth, 'B/s')}): " + ", ".join(parts))
    weights = counts.weight_bytes
    if weights:
        text = f"weights {format_si(weights, 'B')} read from HBM each step; " + text
    return text


def _assumptions(counts: ProgramCounts, spec: HardwareSpec, machine: GpuMachine) -> list[str]:
    items = [f"{machine.name}: {machine.sms} SMs, {machine.arch}; achievable fractions (spec assumptions): "
             f"tensor cores {machine.tensor_fraction:g}, CUDA cores {machine.vector_fraction:g}, "
             f"HBM {machine.memory_fraction:g}",
             "bf16/f16 matmuls on tensor cores (mma.sync m16n8k16, dense rate; 2x for 2:4 sparse B), everything "
             "else on CUDA cores in f32; exp/tanh/log as polynomials of "
             f"{machine.transcendental_flops:g} FLOPs",
             f"kernel launch overhead {machine.launch_overhead * 1e6:.3g} us each (no CUDA graphs), not overlapped",
             "HBM traffic: each buffer once per kernel, plus matmul operand reloads per wave when an operand "
             f"exceeds {machine.l2_reuse_fraction:g} of L2; intermediates just written are read from L2"]
    for path in machine.defaulted:
        value, why = MODEL_DEFAULTS[path]
        items.append(f"{path} = {value:g} (not in the spec; default: {why})")
    if counts.level == "graph":
        items.append("launch shapes from the GPU launch rules applied to the fusion groups (registers estimated)")
    return items
