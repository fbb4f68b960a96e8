"""`WseTarget.estimate`: the cost report of a program on wafers, from the analytical model.

Pricing never lays the program out PE by PE, never simulates and never allocates its tensors: it cuts
the graph into the same regions as the compiler (`targets.wse.regions`), counts from shapes what each
needs (`targets.wse.analysis`), sizes and places them on full wafers and prices one step
(`targets.wse.pricing`). Time grows linearly with the number of regions. With the `mesh` option a wafer
is that mesh instead (`WseMachine.on_mesh`: a small test wafer or part of one), so the same rules decide
how many such wafers the program needs, or whether it streams or does not fit.

Weights are resident when they fit the wafers allowed (`--chips`, or as many as they need), else
streamed from MemoryX (`weights="auto"`); `weights="resident"` or `"streamed"` forces one. The report:

* latency: one step through the pipeline (its fill). Throughput follows the rule of every target
  (`targets.report.THROUGHPUT_RULE`): the program as given has one step in flight (each step needs the
  previous one's tokens), so tokens/s (all users) = tokens per step / latency, tokens/s per user = that /
  users, and energy and money per step are every wafer's system power and price for the whole latency;
* capacity (`CostReport.capacity`, via `targets.report.capacity_of`), not the program as given: with the
  pipeline full, independent steps (other users' batches) could enter every `interval` (the busiest
  region, or a wafer's I/O): tokens per step / interval, with energy and money over that interval; none
  when the interval is the whole latency;
* per region (a kernel): FLOPs useful and fired, cycles of FMAC compute, vector compute and fabric, its
  PEs and memory;
* the binding resource of the latency: compute (matmul FMACs), compute:vector (elementwise, reduction and
  transcendental work on the PEs' SIMD lanes), fabric, interconnect between wafers, io from the host,
  mem:memoryx for streamed weights; the why-line names it with the rate the model used for it, the FMAC
  and vector busy shares, fabric load, memory per PE, and the sparsity gain when weights are sparse (the
  same program priced with dense weights).
"""

from __future__ import annotations

from dataclasses import dataclass

from ir.graph import Graph
from targets.cost import Amounts, Capacity, Cost, CostReport, Energy, KernelReport, Money, Placement
from targets.report import THROUGHPUT_RULE, capacity_of, tokens_of
from targets.spec import HardwareSpec
from targets.spec_schema import precision_of
from targets.units import format_si, format_time
from targets.wse.analysis import Analysis, RegionFacts, default_state
from targets.wse.machine import WseMachine
from targets.wse.pricing import FMAC, RESOURCE_NAMES, VECTOR, Plan, Priced, Pricer
from targets.wse.regions import Partition, partition
from targets.wse.sparsity import Sparsity
from targets.wse.work import vop_cost


@dataclass(frozen=True)
class PricingOptions:
    wafers: int | None = None  # wafers allowed (None: as many as resident weights need)
    weights: str = "auto"  # auto | resident | streamed
    density: float | None = None
    state: tuple[str, ...] | None = None
    mesh: tuple[int, int] | None = None  # (rows, columns) per wafer asked for; the machine given is already on it


@dataclass
class PricedProgram:
    plan: Plan
    facts: list[RegionFacts]
    weight_bytes: float
    state_bytes: float
    parts: Partition | None = None  # the regions priced (shapes only: the same with or without sparsity)


def price(graph: Graph, machine: WseMachine, options: PricingOptions, ignore_sparsity: bool = False,
          parts: Partition | None = None) -> PricedProgram:
    """`parts`: the graph's regions when already cut (`partition(graph)`, which reads shapes only)."""
    parts = parts if parts is not None else partition(graph)
    sparsity = Sparsity(graph, machine, options.density, ignore=ignore_sparsity)
    state = set(options.state) if options.state is not None else default_state(graph)
    facts = Analysis(graph, parts, machine, sparsity, state).facts
    pricer = Pricer(machine)
    outputs = sum(graph.node(o).type.nbytes for o in dict.fromkeys(graph.outputs))
    weight_bytes = state_bytes = 0.0
    for param in graph.params:
        payload = graph.node(param)
        if payload.attr("weight"):
            weight_bytes += payload.type.nbytes
        elif payload.attr("name") in state:
            state_bytes += payload.type.nbytes
    resident = pricer.resident(facts, options.wafers, outputs)
    needed = resident.wafers_needed
    if options.weights == "streamed" or (options.weights == "auto" and resident.fits and options.wafers is not None
                                         and options.wafers < needed):
        plan = pricer.streamed(facts, options.wafers or 1, needed)
        if weight_bytes > machine.memoryx_bytes:
            plan.fits = False
            plan.reason = (f"weights ({format_si(weight_bytes, 'B')}) exceed MemoryX "
                           f"({format_si(machine.memoryx_bytes, 'B')})")
    else:
        plan = resident
        if plan.fits and options.wafers is not None and options.wafers < needed:
            plan.fits = False
            plan.reason = (f"resident weights need {needed} wafers, only {options.wafers} allowed (weights='resident'); "
                           "allow more (--chips) or stream them")
    return PricedProgram(plan, facts, weight_bytes, state_bytes, parts)


def estimate_graph(graph: Graph, machine: WseMachine, spec: HardwareSpec, target: str,
                   options: PricingOptions = PricingOptions()) -> CostReport:
    priced = price(graph, machine, options)
    plan = priced.plan
    name = graph.name
    placement = _placement(priced, machine, options)
    assumptions = _assumptions(graph, priced, machine, spec, options)
    if not plan.fits:
        return CostReport(target, spec.name, name, placement, assumptions=tuple(assumptions),
                          explanation=placement.reason, level="graph")
    kernels = _kernels(plan, machine)
    peak = _peak(machine, priced)
    executed = sum(p.facts.executed for p in plan.priced)
    total = Cost(flops_useful=sum(p.facts.flops for p in plan.priced), flops_executed=executed,
                 transcendentals=sum(p.facts.transcendentals for p in plan.priced),
                 bytes=Amounts.of(item for k in kernels for item in k.cost.bytes.items),
                 time=Amounts.of(item for k in kernels for item in k.cost.time.items), latency=plan.latency,
                 bound=Amounts.of(plan.bound), peak_chip_seconds=executed / peak,
                 ops=Amounts.of(item for k in kernels for item in k.cost.ops.items))
    wafers = plan.wafers
    energy = Energy(machine.system_power_w * wafers * plan.latency,
                    f"system power ({machine.system_power_w / 1e3:g} kW) x {wafers} wafer(s) x latency: one step "
                    "in flight occupies every wafer for the whole step")
    money = None
    if machine.price_per_hour is not None:
        money = Money(machine.price_per_hour * wafers * plan.latency / 3600.0,
                      f"${machine.price_per_hour:g} per system-hour x {wafers} wafer(s) x latency")
    tokens = tokens_of(graph.attributes, plan.latency, money, energy)
    explanation = _explain(priced, machine, options, graph)
    return CostReport(target, spec.name, name, placement, kernels, energy, money, tokens, tuple(assumptions),
                      explanation, "graph", True, total, capacity=_capacity(graph, plan, machine),
                      main_memory="mem:memoryx" if plan.mode == "streamed" else "mem:sram")


def _capacity(graph: Graph, plan: Plan, machine: WseMachine) -> Capacity | None:
    """The pipeline-full figures: a new independent step every steady-state interval, each charged the
    wafers' power and price over that interval."""
    seconds = plan.wafers * plan.interval
    usd = machine.price_per_hour * seconds / 3600.0 if machine.price_per_hour is not None else None
    return capacity_of(graph.attributes, plan.latency, plan.interval, machine.system_power_w * seconds, usd,
                       plan.bottleneck)


def _peak(machine: WseMachine, priced: PricedProgram) -> float:
    dtype = max(priced.plan.priced, key=lambda p: p.facts.executed).facts.dtype if priced.plan.priced else None
    lanes = machine.lanes(dtype) if dtype is not None else machine.fmac_lanes_f16
    return 2.0 * lanes * machine.mesh_pes * machine.clock_hz


def _kind(p: Priced) -> str:
    region = p.facts.region
    if region.kind == "matmul":
        return "matmul"
    if region.reduce_axes:
        return "reduction"
    return "elementwise" if p.facts.vector_ops else "copy"


def _kernels(plan: Plan, machine: WseMachine) -> tuple[KernelReport, ...]:
    """A report per region. Its cost reads the region's facts only through `RegionFacts.sizing_key`,
    its cycles (a function of that key and its split, `Pricer.cycles`), its I/O time and the plan's mode:
    regions equal in those (the same region of identical layers) share one `Cost` (frozen)."""
    costs: dict[tuple, Cost] = {}
    kernels = []
    for p in plan.priced:
        key = (p.facts.sizing_key, p.split, p.io)
        cost = costs.get(key)
        if cost is None:
            cost = costs[key] = _cost(p, machine, plan)
        kernels.append(_kernel(p, cost))
    return tuple(kernels)


def _cost(p: Priced, machine: WseMachine, plan: Plan) -> Cost:
    f = p.facts
    clock = machine.clock_hz
    time = {FMAC: p.fmac / clock, VECTOR: p.vector / clock, "fabric": max(p.stream, p.reduce) / clock}
    if plan.mode == "streamed":
        time["mem:memoryx"] = p.io
    latency = max(p.latency / clock, p.io) if plan.mode == "streamed" else p.latency / clock
    binder = "mem:memoryx" if plan.mode == "streamed" and p.io >= p.latency / clock else p.binding
    inputs = f.inputs
    return Cost(flops_useful=f.flops, flops_executed=f.executed, transcendentals=f.transcendentals,
                bytes=Amounts.of({"mem:sram": inputs.stationary + inputs.moving + f.out_bytes,
                                  "fabric": inputs.dynamic, "io": inputs.host}),
                time=Amounts.of(time), latency=latency, bound=Amounts.of({binder: latency}),
                peak_chip_seconds=f.executed / (2.0 * machine.lanes(f.dtype) * machine.mesh_pes * clock),
                ops=Amounts.of({f"fmac:{precision_of(f.dtype)}": f.executed}))


def _kernel(p: Priced, cost: Cost) -> KernelReport:
    f = p.facts
    rows, cols = p.rect
    note = f"{rows}x{cols} PEs at ({p.origin[0]},{p.origin[1]}), {p.bytes_per_pe:,.0f} B/PE"
    if f.density < 1:
        note += f", weights {f.density:.0%} non-zero"
    return KernelReport(f"r{f.region.id} {f.region.label}", _kind(p), cost, 1, p.wafer, note)


def _placement(priced: PricedProgram, machine: WseMachine, options: PricingOptions) -> Placement:
    plan = priced.plan
    resident = priced.weight_bytes + priced.state_bytes
    capacity = float(machine.wafer_bytes)
    strategy = "pipeline" if plan.mode == "resident" else "pipeline, weights streamed"
    mesh = f"; wafers of {_mesh_text(options.mesh)}" if options.mesh is not None else ""
    if not plan.fits:
        return Placement(strategy, 0, plan.wafers_needed, 1, max(1, plan.wafers), resident, capacity, False,
                         plan.reason + mesh)
    what = f"{format_si(priced.weight_bytes, 'B')} of weights"
    if priced.state_bytes:
        where = "on the wafers" if plan.state_resident else "streamed too"
        what += f" + {format_si(priced.state_bytes, 'B')} of state (KV cache) {where}"
    if plan.mode == "resident":
        reason = (f"weights resident: {what}, on {plan.wafers} wafer(s) of {machine.mesh_pes:,} PEs "
                  f"({machine.usable_bytes_per_pe:,} B usable each), a pipeline of wafers")
    else:
        reason = (f"weights streamed from MemoryX at {format_si(machine.io_bytes_per_s, 'B/s')}: {what}; "
                  f"resident they would need {plan.wafers_needed} wafer(s), {plan.wafers} allowed")
    reason += mesh
    return Placement(strategy, plan.wafers, plan.wafers_needed, 1, plan.wafers, resident, capacity, True, reason)


def _explain(priced: PricedProgram, machine: WseMachine, options: PricingOptions, graph: Graph) -> str:
    """The binding resource of one step as given, the rate the model used for it, and how busy the PEs'
    FMAC and vector work keeps the wafers over the step (the pipeline-full figures are the capacity's)."""
    plan = priced.plan
    clock = machine.clock_hz
    wafer_pes = plan.wafers * machine.mesh_pes
    shares = ", ".join(f"{k} {v / plan.latency:.0%}" for k, v in sorted(plan.bound.items(), key=lambda kv: -kv[1])
                       if plan.latency > 0)
    text = f"{plan.mode} weights on {plan.wafers} wafer(s); step latency {format_time(plan.latency)} ({shares})"
    binding = max(plan.bound, key=plan.bound.get) if plan.bound else None
    if binding is not None:
        text += f"; bound by {_binding_text(binding, plan, machine)}"
    if plan.mode == "resident":
        occupied = sum(p.pes for p in plan.priced) / wafer_pes
        fmac = sum(p.pes * p.fmac for p in plan.priced)
        vector = sum(p.pes * p.vector for p in plan.priced)
        memory = max((p.bytes_per_pe for p in plan.priced), default=0.0)
        hops = sum(p.fabric_wavelet_hops for p in plan.priced)
        load = hops / (wafer_pes * 4 * plan.latency * clock) if plan.latency > 0 else 0.0
        step = (_share(fmac, wafer_pes, plan.latency, clock), _share(vector, wafer_pes, plan.latency, clock))
        full = (_share(fmac, wafer_pes, plan.interval, clock), _share(vector, wafer_pes, plan.interval, clock))
        text += (f"; PEs {occupied:.0%} occupied; of the wafers' PE-cycles, FMAC busy {step[0]} and vector busy "
                 f"{step[1]} over the step (one step in flight: a region works only while the step passes it), "
                 f"{full[0]} and {full[1]} with the pipeline full; up to {memory:,.0f} B "
                 f"per PE; fabric {hops:.3g} wavelet-hops per step ({load:.2%} of link capacity)")
    gain = _sparsity_gain(priced, machine, options, graph)
    if gain:
        text += "; " + gain
    return text


def _share(cycles: float, pes: int, seconds: float, clock: float) -> str:
    return f"{cycles / (pes * seconds * clock):.1%}" if seconds > 0 else "-"


def _binding_text(binding: str, plan: Plan, machine: WseMachine) -> str:
    """The binding resource in words, with the rate the model used for it."""
    clock = machine.clock_hz
    if binding in (FMAC, VECTOR):
        regions = [p for p in plan.priced if p.binding == binding] or plan.priced
        dtypes = sorted({p.facts.dtype for p in regions}, key=lambda d: d.bits)
        lanes = ", ".join(f"{d} {machine.lanes(d)} lanes/cycle" for d in dtypes)
        if binding == FMAC:
            return f"{RESOURCE_NAMES[FMAC]} at {lanes} per PE ({clock / 1e9:.3g} GHz), each lane one MAC per cycle"
        return (f"{RESOURCE_NAMES[VECTOR]}, not matmul (reductions, exp, divides on the PEs' SIMD at {lanes} per "
                f"PE, {clock / 1e9:.3g} GHz; exp = {vop_cost('exp', machine)} vector ops, divide = "
                f"{vop_cost('div', machine)})")
    if binding == "fabric":
        return (f"the fabric at one {machine.wavelet_bytes}-byte wavelet per link per cycle "
                f"({format_si(machine.wavelet_bytes * clock, 'B/s')}) and {machine.hop_cycles:g} cycle(s) per hop")
    if binding in ("interconnect", "io", "mem:memoryx"):
        return (f"{binding} at {format_si(machine.io_bytes_per_s, 'B/s')} off-wafer I/O "
                f"(+{format_time(machine.io_latency_s)} per transfer)")
    return binding


def _sparsity_gain(priced: PricedProgram, machine: WseMachine, options: PricingOptions, graph: Graph) -> str:
    sparse = [f for f in priced.facts if f.density < 1 and f.per_step]
    if not sparse:
        return ""
    dense = price(graph, machine, options, ignore_sparsity=True, parts=priced.parts)
    fired = sum(f.executed for f in priced.facts if f.per_step)
    dense_fired = sum(f.executed for f in dense.facts if f.per_step)
    held = sum(f.inputs.stationary for f in priced.facts if f.per_step)
    dense_held = sum(f.inputs.stationary for f in dense.facts if f.per_step)
    plan, other = priced.plan, dense.plan
    low, high = min(f.density for f in sparse), max(f.density for f in sparse)
    share = f"{low:.0%}" if abs(high - low) < 0.005 else f"{low:.0%}-{high:.0%}"
    text = (f"sparsity: weights at {share} non-zeros fire {dense_fired / fired:.1f}x "
            f"fewer FLOPs and hold {dense_held / held:.1f}x less weight memory than dense")
    if plan.memory_pes and other.memory_pes:
        text += f"; {plan.memory_pes:,} PEs hold the data vs {other.memory_pes:,} dense"
    if other.fits and plan.fits and plan.latency > 0:
        text += (f"; dense: latency {format_time(other.latency)} vs {format_time(plan.latency)}, interval "
                 f"{format_time(other.interval)} vs {format_time(plan.interval)}, {other.wafers} vs {plan.wafers} "
                 "wafer(s)")
    return text


def _mesh_text(mesh: tuple[int, int]) -> str:
    rows, cols = mesh
    return f"the mesh option's {rows}x{cols} PEs (rows x columns)"


def _assumptions(graph: Graph, priced: PricedProgram, machine: WseMachine, spec: HardwareSpec,
                 options: PricingOptions) -> list[str]:
    plan = priced.plan
    state = options.state if options.state is not None else tuple(sorted(default_state(graph)))
    if options.mesh is None:
        wafers = f"wafers: {machine.mesh_width}x{machine.mesh_height} usable PEs each"
    else:
        wafers = (f"wafers: {_mesh_text(options.mesh)} each ({machine.mesh_pes:,} PEs: a small test wafer or part "
                  f"of one, not the spec's full usable mesh); each is still charged its whole system's power and "
                  f"price")
    items = [f"weights {plan.mode}" + (f" on {plan.wafers} wafer(s)" if plan.fits else ""),
             f"{wafers}, {machine.usable_bytes_per_pe:,} B per PE for data ({machine.code_reserve:,} B kept for "
             "code and buffers)",
             "inputs kept on the wafer between steps (state): " + (", ".join(state) if state else "none"),
             f"throughput {THROUGHPUT_RULE} (a chip is a wafer: its system's power and price)",
             "capacity (not the program as given): with the pipeline full, independent steps (other users' "
             "batches) could enter every steady-state interval (the busiest region or wafer I/O); its energy "
             "and cost per step are over that interval",
             "regions are sized by memory and by work: at least the PEs that hold their data, and the spare PEs "
             "where they shorten the step most, FMAC (matmul) and vector (elementwise, reductions, "
             "transcendentals) work alike; vector work runs on each PE's SIMD at its FMAC lane width per dtype",
             "regions reading weights only are computed once at configuration, not per step",
             "the analytical model prices the same regions and splits as the compiler, on "
             + ("full wafers" if options.mesh is None else _mesh_text(options.mesh)) + ": "
             "compute, fabric streams and partial-sum reductions overlap inside a region",
             f"{graph.attributes.get('users', 1)} user(s), {graph.attributes.get('tokens', '?')} token(s) per step"
             if graph.attributes.get("tokens") else "no token counts (not an @tokens program)"]
    densities = {f.density for f in priced.facts if f.density < 1}
    if densities:
        items.append(f"sparse weights: {', '.join(f'{d:.0%}' for d in sorted(densities))} non-zeros; each PE fires "
                     "only on the non-zeros it holds, stored with a "
                     f"{machine.sparse_index_bytes}-byte index each")
    items.extend(machine.assumptions())
    return items
