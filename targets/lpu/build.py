"""Graph -> LPU program: plan, partition, allocate, lower each stage to jobs, schedule.

Every step is deterministic (ordered containers, ties broken by name or index), so compiling the same
graph twice gives the same listing and the same cycle count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ir.graph import Graph
from targets.base import TargetError
from targets.lpu.homes import Homes
from targets.lpu.jobs import Job
from targets.lpu.lower_compute import lower_compute, lower_transpose
from targets.lpu.lower_matmul import lower_matmul
from targets.lpu.lower_reduce import lower_reduce
from targets.lpu.machine import LpuMachine
from targets.lpu.partition import Partition, partition
from targets.lpu.plan import Plan, Stage, make_plan
from targets.lpu.program import LpuProgram
from targets.lpu.schedule import Scheduler
from targets.lpu.trees import MapTable, TreeBuilder

LOWERINGS: dict[str, Callable[[TreeBuilder, Stage, list[Job]], None]] = {
    "compute": lower_compute,
    "reduce": lower_reduce,
    "matmul": lower_matmul,
    "transpose": lower_transpose,
}


@dataclass
class Build:
    program: LpuProgram
    plan: Plan
    partition: Partition
    stage_of: list[int | None]  # per instruction of the program: the stage it belongs to
    spills: int  # vectors parked in MEM because a job did not fit the machine in one piece


def build_program(graph: Graph, machine: LpuMachine, options: dict[str, Any] | None = None) -> Build:
    options = options or {}
    plan = make_plan(graph, options)
    part = partition(plan, machine, options.get("chips"), strategy=options.get("partition", "auto"))
    jobs: list[Job] = []
    homes = Homes(machine, part.chips, jobs)
    for name, info in plan.tensors.items():
        ranges = part.ranges.get(name)
        if not ranges:
            raise TargetError(f"lpu target: internal error: tensor {name} has no home")
        homes.place(name, info.layout, info.role, ranges, data=info.value)
    maps = MapTable()
    builder = TreeBuilder(plan, machine, homes, maps)
    for stage in plan.stages:
        first = len(jobs)
        for chip, copies in sorted(stage.copies.items()):
            for name, ranges in sorted(copies.items()):
                homes.copy(name, ranges, chip)
        LOWERINGS[stage.kind](builder, stage, jobs)
        for job in jobs[first:]:
            job.tag = stage.index
    scheduler = Scheduler(machine, part.chips, homes.memory)
    for job in jobs:
        scheduler.place(job)
    instructions, stage_of = scheduler.sorted_instructions()
    notes = _notes(plan, part, machine, homes)
    inputs = [str(graph.node(p).attr("name")) for p in graph.params]
    program = LpuProgram(graph.name, machine, part.chips, homes.decls, inputs, list(plan.outputs), maps.maps,
                         instructions, notes)
    return Build(program, plan, part, stage_of, scheduler.spills)


def _notes(plan: Plan, part: Partition, machine: LpuMachine, homes: Homes) -> list[str]:
    notes = [f"chips: {part.chips} ({part.reason})"]
    for chip in range(part.chips):
        used = homes.memory[chip].words_used * machine.word_bytes
        stages = [s.output for s in plan.stages if chip in s.all_chips()]
        shown = ", ".join(stages[:8]) + (f", ... ({len(stages)} stages)" if len(stages) > 8 else "")
        notes.append(f"chip c{chip}: {used / 2**20:.3f} of {machine.sram_bytes / 2**20:.3f} MiB SRAM; "
                     f"stages {shown or '(none)'}")
    for stage in plan.stages:
        if stage.chunk_chips:
            chips = sorted(set(stage.chunk_chips.values()))
            notes.append(f"tensor parallel: {stage.output} split by output columns over chips "
                         + ", ".join(f"c{c}" for c in chips))
        if stage.batch_chips:
            notes.append(f"batch split: {stage.output} split by its leading axis over chips "
                         + ", ".join(f"c{c} [{first}:{end}]" for first, end, c in stage.batch_chips))
    if homes.transferred_bytes:
        notes.append(f"C2C traffic: {homes.transferred_bytes / 2**20:.3f} MiB")
    return notes
