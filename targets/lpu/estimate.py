"""The LPU's cost report: latency from the schedule's cycle count, or from counted stages when the
program is too large to schedule instruction by instruction.

Two ways to the latency, both per stage (a stage = one fusion group or materialised value):

* scheduled (programs up to `SCHEDULE_LIMIT` counted instructions): the program is scheduled and its
  cycle count is the latency. A stage is charged the cycles by which it moves the program's finishing
  front (stages that overlap others cost nothing extra), so the stage latencies add up to the total;
* counted (larger programs, e.g. a 70B decode step): `counting` gives each stage's instructions; a stage
  takes its busiest resource's cycles plus its pipeline depth, and stages run one after another (no
  overlap between stages, so this errs long; on the small examples it is within about 2x of the
  schedule, see tests). Nothing is lowered, allocated or simulated.

Resources, as the report names them: `compute` (MXM arrays: products and weight installs),
`mem:sram` (SRAM streaming: MEM read/write ports and weight loads into the MXM), `vector` (VXM ALUs),
`switch` (SXM units), `interconnect` (C2C links, serialisation plus link latency) and `pipeline` (a
stage bound by its dependency chain rather than any resource). Energy, money and token rates come
from the spec through `targets.report.build_report`.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from targets.base import TargetError
from targets.cost import Amounts, Cost, CostReport, KernelReport, Placement
from targets.counts import count_graph, node_flops
from targets.lpu.counting import ProgramCount, StageCount, count_program
from targets.lpu.isa import Instruction, is_transcendental, latency
from targets.lpu.machine import LpuMachine
from targets.lpu.partition import Partition, mib
from targets.lpu.plan import Plan, Stage, _is_view, make_plan
from targets.lpu.rates import model_rates
from targets.lpu.vectors import width
from targets.partition import PartitionPlan
from targets.report import build_report

if TYPE_CHECKING:
    from targets.lpu.build import Build
    from targets.lpu.target import LpuArtifact

SCHEDULE_LIMIT = 50_000
_KINDS = {"compute": "elementwise", "reduce": "reduction", "matmul": "matmul", "transpose": "copy"}


def stage_flops(plan: Plan, stage: Stage) -> tuple[float, float]:
    """(useful FLOPs, transcendental ops) of the graph operations a stage computes."""
    graph = plan.graph
    if stage.kind == "transpose":
        return 0.0, 0.0
    flops = transcendentals = 0.0
    pending, seen = [stage.node], set()
    while pending:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        payload = graph.node(node)
        operands = graph.operands(node)
        if not _is_view(payload.op):
            f, t = node_flops(payload.op, payload.type, [graph.node(o).type for o in operands])
            flops += f
            transcendentals += t
        pending.extend(o for o in operands if o in plan.inline)
    return flops, transcendentals


def _stage_from_instructions(count: StageCount, instructions: list[Instruction], machine: LpuMachine) -> None:
    pairs: Counter = Counter()
    planes: set[tuple[int, str]] = set()
    for instruction in instructions:
        count.ops[instruction.op] += 1
        op = instruction.op
        if op == "READ":
            count.read_words += width(instruction.dtype)
        elif op == "WRITE":
            count.write_words += width(instruction.dtype)
        elif op == "LW":
            count.lw_bytes += width(instruction.dtype) * machine.lanes
        elif op == "MVM":
            count.array_cycles += machine.mvm_cycles(str(instruction.get("prec")))
            planes.add((instruction.chip, instruction.unit))
        elif op == "IW":
            count.array_cycles += machine.mxm_install_cycles
        elif op in ("PERMUTE", "TLD", "TST", "TSW"):
            count.sxm += 1
        elif op == "SEND":
            nbytes = width(instruction.dtype) * machine.lanes
            count.link_cycles += machine.c2c_cycles(nbytes)
            pairs[(instruction.chip, instruction.get("peer"))] += machine.c2c_cycles(nbytes)
            count.c2c_bytes += nbytes
            count.transfers += 1
        elif instruction.kind == "VXM":
            count.vxm += 1
            count.transcendental += is_transcendental(op)
    count.c2c_cycles = max(pairs.values(), default=0)
    count.planes = max(1, len(planes))  # as counting does: the stage's products share out over these


def _cost(plan: Plan, stage: Stage, count: StageCount, cycles: float, machine: LpuMachine,
          depth: float | None) -> Cost:
    clock = machine.clock_hz
    busy = count.resource_cycles(machine)
    if depth is not None:
        busy["pipeline"] = depth
    binding = max(busy, key=busy.get)
    if depth is None and busy[binding] < 0.5 * cycles:
        binding = "pipeline"
        busy["pipeline"] = cycles
    seconds = cycles / clock
    useful, transcendentals = stage_flops(plan, stage)
    lanes = machine.lanes
    mvms = count.ops.get("MVM", 0)
    mxm_flops = mvms * 2.0 * lanes * machine.mxm_size
    vxm_flops = count.vxm * lanes
    planes = 2 * machine.mxm_planes_per_hemisphere
    peak = (count.array_cycles / planes + count.vxm / machine.vxm_alus) / clock
    operations = {}
    if mvms:
        operations[f"mxm:{count.precision or 'fp32'}"] = mxm_flops
    if count.vxm:
        operations["vxm:f32"] = vxm_flops
    return Cost(flops_useful=useful, flops_executed=mxm_flops + vxm_flops,
                transcendentals=count.transcendental * lanes,
                bytes=Amounts.of({"mem:sram": (count.read_words + count.write_words) * machine.word_bytes,
                                  "interconnect": count.c2c_bytes}),
                time=Amounts.of({k: v / clock for k, v in busy.items()}),
                latency=seconds, bound=Amounts.of({binding: seconds}), peak_chip_seconds=peak,
                ops=Amounts.of(operations))


def _placement(part: Partition, machine: LpuMachine, plan: Plan) -> Placement:
    tp = max(part.tensor_parallel.values(), default=1)
    resident = float(sum(part.chip_bytes))
    weights = sum(info.layout.nbytes for info in plan.tensors.values() if info.role == "weight")
    reason = (f"{part.chips} chip(s): {mib(weights)} of weights and {mib(resident - weights)} of other tensors "
              f"in SRAM (no DRAM), {mib(machine.sram_bytes * machine.usable_sram_fraction)} usable per chip; "
              f"{part.reason}")
    return Placement(part.strategy, part.chips, part.chips, tp, max(1, part.pipeline_stages), resident,
                     machine.sram_bytes * machine.usable_sram_fraction, True, reason)


def _utilization(counts: list[StageCount], cycles: float, chips: int, machine: LpuMachine) -> str:
    if cycles <= 0:
        return "utilization by unit: nothing ran"
    total = Counter()
    for count in counts:
        total["MXM"] += count.array_cycles / (2 * machine.mxm_planes_per_hemisphere)
        total["VXM"] += count.vxm / machine.vxm_alus
        total["SXM"] += count.sxm / (2 * machine.sxm_units_per_hemisphere)
        total["MEM"] += (count.read_words + count.write_words) / (2 * machine.mem_slices)
        total["C2C"] += count.link_cycles / machine.c2c_links
    parts = ", ".join(f"{unit} {value / (cycles * chips):.1%}" for unit, value in total.items())
    return f"utilization by unit (busy / (latency x units x {chips} chip(s))): {parts}"


def _where_time_goes(kernels: list[KernelReport]) -> str:
    """The latency split by the resource that bound each stage. The stages' `bound` amounts are added in
    one pass (`Amounts.of`), which is their sum `a + b + ...` bit for bit: each resource's total is added
    up in the same order from 0.0, and `Amounts.__add__` re-adding a running total to 0.0 changes no value
    (a running total is never -0.0, see `targets.cost.sum_costs`)."""
    bound = Amounts.of(item for kernel in kernels for item in kernel.cost.bound.items)
    total = bound.total()
    if total <= 0:
        return "where time goes: nothing ran"
    parts = sorted(bound.items, key=lambda item: -item[1])
    text = ", ".join(f"{name} {seconds / total:.0%}" for name, seconds in parts)
    return f"where time goes (latency by the resource that bounds each stage): {text}"


def estimate_artifact(artifact: LpuArtifact) -> CostReport:
    """The CostReport of an `LpuArtifact`."""
    machine: LpuMachine = artifact.machine
    spec = artifact.spec
    graph = artifact.graph
    options = artifact.options.as_dict()
    plan = None
    try:
        plan = make_plan(graph, options, evaluate=False)
        counted = count_program(graph, machine, options, plan)
    except TargetError as error:
        return _refused(artifact, str(error), options, plan)
    placement = _placement(counted.partition, machine, counted.plan)
    precisions = sorted(set(counted.plan.precision.values()))
    assumptions = [f"LPU model of {spec.name}: static schedule, weights resident in SRAM; the [lpu] "
                   "latencies and unit counts of the spec are assumptions",
                   "MXM precisions: " + (", ".join(f"{p} ({machine.mvm_cycles(p)} cycle(s) per 320x320 product)"
                                                   for p in precisions) or "no matmuls")]
    if counted.instructions <= SCHEDULE_LIMIT:
        build = artifact.built
        kernels, stage_counts, cycles = _scheduled_kernels(build, machine)
        assumptions.append(f"latency: the cycle count of the static schedule ({len(build.program.instructions):,} "
                           f"instructions, {build.program.cycles:,} cycles at {machine.clock_hz / 1e6:g} MHz)")
    else:
        kernels, stage_counts, cycles = _counted_kernels(counted, machine)
        assumptions.append(f"latency: counted, not scheduled (about {counted.instructions:,.0f} instructions): each "
                           "stage its busiest resource plus its pipeline depth, stages one after another")
    assumptions.append(_utilization(stage_counts, cycles, counted.partition.chips, machine))
    assumptions.append(_where_time_goes(kernels))
    plan = PartitionPlan(placement)
    lead = f"{counted.partition.chips} chip(s) of {spec.name}"
    rates = model_rates(machine, precisions, stage_counts)
    return build_report(artifact.target, spec, count_graph(graph), plan, kernels, assumptions, lead, rates)


def _refused(artifact: LpuArtifact, message: str, options: dict, plan: Plan | None) -> CostReport:
    """The report of a program the chips asked for cannot hold (or the LPU cannot run): no kernels, and
    the fewest chips it would take. `plan`: the program's plan, when it was made before the refusal
    (placing it again starts from scratch: `partition.unplace`)."""
    from targets.lpu.partition import partition
    needed = 0
    try:
        if plan is None:
            plan = make_plan(artifact.graph, options, evaluate=False)
        needed = partition(plan, artifact.machine, sizing=True, strategy=artifact.options.partition).needed
    except TargetError:
        pass
    asked = artifact.options.chips or 0  # the chips asked for (--chips), when a count was
    placement = Placement("none", asked, needed, 1, 1, 0.0,
                          artifact.machine.sram_bytes * artifact.machine.usable_sram_fraction, False,
                          message.replace("error: ", "").replace("lpu target: ", ""))
    return build_report(artifact.target, artifact.spec, count_graph(artifact.graph), PartitionPlan(placement), [])


def _counted_kernels(counted: ProgramCount, machine: LpuMachine) -> tuple[list[KernelReport], list[StageCount], float]:
    """A kernel per counted stage. A stage's cycles, cost and instruction summary come from its counts
    and, through `stage_flops`, from the operations it computes, which stages of the same signature share
    (`ProgramCount.same_as`); pricing reads only the counts' values (in float arithmetic), so a stage
    with the signature and `StageCount.totals` of one priced before reuses that one's figures: the layers
    of a model are priced once, not once each."""
    kernels = []
    total = 0.0
    priced: dict[tuple, tuple[float, Cost, str]] = {}
    for stage, count, same_as in zip(counted.plan.stages, counted.stages, counted.same_as):
        key = (same_as, count.totals())
        if key not in priced:
            cycles = count.cycles(machine)
            priced[key] = (cycles, _cost(counted.plan, stage, count, cycles, machine, count.depth), _summary(count))
        cycles, cost, summary = priced[key]
        total += cycles
        kernels.append(KernelReport(stage.output, _KINDS[stage.kind], cost, len(count.chips), stage.chip,
                                    _chips_note(count, summary)))
    return kernels, counted.stages, total


def _scheduled_kernels(build: Build, machine: LpuMachine) -> tuple[list[KernelReport], list[StageCount], float]:
    program = build.program
    plan = build.plan
    by_stage: dict[int, list[Instruction]] = {}
    ends: dict[int, int] = {}
    for instruction, tag in zip(program.instructions, build.stage_of):
        key = -1 if tag is None else tag
        by_stage.setdefault(key, []).append(instruction)
        ends[key] = max(ends.get(key, 0), instruction.cycle + latency(machine, instruction.op) + 1)
    front = 0
    charged: dict[int, int] = {}
    for key in sorted(ends, key=lambda k: (ends[k], k)):
        charged[key] = max(0, ends[key] - front)
        front = max(front, ends[key])
    kernels, counts = [], []
    for stage in plan.stages:
        chips = stage.all_chips()
        count = StageCount(stage.index, stage.output, stage.kind, chips)
        count.precision = plan.precision.get(stage.anchor) if stage.anchor is not None else None
        _stage_from_instructions(count, by_stage.get(stage.index, []), machine)
        cycles = charged.get(stage.index, 0)
        counts.append(count)
        kernels.append(KernelReport(stage.output, _KINDS[stage.kind], _cost(plan, stage, count, cycles, machine, None),
                                    len(chips), stage.chip, _note(count)))
    return kernels, counts, float(program.cycles)


def _note(count: StageCount) -> str:
    return _chips_note(count, _summary(count))


def _summary(count: StageCount) -> str:
    """A stage's instructions, in all and of its five commonest ops."""
    shown = ", ".join(f"{op} {n:,.0f}" for op, n in count.ops.most_common(5))
    return f"{count.instructions:,.0f} instructions ({shown})"


def _chips_note(count: StageCount, summary: str) -> str:
    chips = ",".join(f"c{c}" for c in count.chips)
    return f"on {chips}: {summary}"

