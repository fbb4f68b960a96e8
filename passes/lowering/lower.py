"""Graph IR -> loop IR: `lower_to_loops(graph, schedule)`.

The graph is cut into units (`plan`): one per fusion group, one per ungrouped node. Each unit becomes
a kernel spec (`spec`) built by its family's module (`elementwise`, `reduction`, `matmul`, `concat`),
and the schedule (default `NaiveSchedule`) turns the spec into the kernel's loops. Group kinds come
from `ir.groups.classify_group`, the contract with the fusion passes; a grouping it rejects is a
`LoweringError`.

When a legal group still cannot be one kernel (`UnsupportedGroup`: a view inside a reduction group
reads a reduction result at another kept position than the one being computed), the group is lowered
one node per kernel instead and the whole program is planned again; the kernels then carry the
attribute `split_group`. Values are never computed differently, only stored more often.

A matmul with a sparse weight operand becomes a `SparseMatmulSpec` (`sparse`): the storage of that
weight replaces its dense buffer among the program's inputs, unless another kernel still reads it.

Standalone views are copies: a reshape of a contiguous buffer could alias its operand, but copying
keeps every kernel's outputs distinct buffers, which the runtimes and cost models rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ir.graph import Graph
from ir.groups import GroupError, GroupKind, classify_group, topological_index
from ir.loops import Buffer, Kernel, KernelCall, LoopProgram
from passes.lowering.concat import build_concat
from passes.lowering.context import kernel_context
from passes.lowering.elementwise import build_elementwise
from passes.lowering.matmul import build_matmul
from passes.lowering.naive_schedule import NaiveSchedule
from passes.lowering.plan import LoweringError, Unit, global_buffers, plan_units
from passes.lowering.reduction import build_reduction
from passes.lowering.sparse import SparseStorage, build_sparse_matmul, finish_inputs, plan_storages
from passes.lowering.spec import KernelSpec, NameGen, Schedule, UnsupportedGroup, schedule_kernel


@dataclass
class LoweredSpecs:
    """A program's kernel specs: the program (buffers, inputs, outputs; its kernels once scheduled),
    one spec per kernel in call order, the global buffer of every graph value that has one (parameters
    and materialised values), and the groups lowered node by node (`split_groups`)."""

    program: LoopProgram
    specs: list[KernelSpec]
    buffers: dict[int, Buffer]
    split_groups: frozenset[int]
    sparse: tuple = ()  # passes.lowering.sparse.SparseStorage of each sparse parameter, in input order


def lower_specs(graph: Graph, split_groups: frozenset[int] = frozenset()) -> LoweredSpecs:
    """The kernel specs of `graph`, one per unit, in call order."""
    units = plan_units(graph, set(split_groups))
    buffers, outputs, names = global_buffers(graph, units)
    index = topological_index(graph)  # sorted once, shared by every classify_group call
    storages = plan_storages(graph, units, names, index)  # sparse matmuls: how each reads its sparse operand
    program = LoopProgram(graph.name, {}, [graph.node(p).attr("name") for p in graph.params], outputs)
    for buffer in buffers.values():
        program.buffers[buffer.name] = buffer
    specs = [build_spec(graph, unit, _kernel_name(graph, unit, names), buffers, storages, index)
             for unit in units]
    sparse = finish_inputs(program, graph, specs, storages) if storages else ()
    return LoweredSpecs(program, specs, buffers, frozenset(split_groups), sparse)


def _kernel_name(graph: Graph, unit: Unit, names: NameGen) -> str:
    if unit.group is None:
        node = unit.members[0]
        return names.fresh(f"{graph.node(node).op}_{node}")
    return names.fresh(f"fused{unit.group}" if unit.group >= 0 else f"fused_m{-unit.group}")


def build_spec(graph: Graph, unit: Unit, name: str, buffers: dict[int, Buffer],
               storages: dict[int, SparseStorage] | None = None,
               index: Mapping[int, int] | None = None) -> KernelSpec:
    """The spec of one unit's kernel (`storages`: the sparse operand of each sparse matmul, by anchor)."""
    ctx = kernel_context(graph, unit, name, buffers)
    if unit.group is None and graph.node(unit.members[0]).op == "concat":
        return build_concat(ctx)
    try:
        info = classify_group(graph, unit.members, index)
    except GroupError as error:
        raise LoweringError(f"group {unit.group} cannot be one kernel: {error}") from None
    if info.kind is GroupKind.MATMUL:
        if storages and info.anchor in storages:
            return build_sparse_matmul(ctx, info.anchor, storages[info.anchor])
        return build_matmul(ctx, info.anchor)
    if info.kind is GroupKind.REDUCTION:
        return build_reduction(ctx, info.domain, info.reduce_axes)
    return build_elementwise(ctx)


def lower_to_loops(graph: Graph, schedule: Schedule | None = None) -> LoopProgram:
    """The loop program of `graph`: one kernel per fusion group or ungrouped node, scheduled by
    `schedule` (default: `NaiveSchedule()`, plain serial loops)."""
    return lower(graph, schedule).program


def lower(graph: Graph, schedule: Schedule | None = None) -> LoweredSpecs:
    """Like `lower_to_loops`, also returning the specs and which buffer holds which graph value."""
    schedule = schedule or NaiveSchedule()
    split: set[int] = set()
    while True:
        lowered = lower_specs(graph, frozenset(split))
        try:
            _schedule_all(lowered, schedule)
            return lowered
        except _SplitNeeded as failure:
            if failure.group is None or failure.group in split:
                raise LoweringError(f"cannot lower: {failure.reason}") from None
            split.add(failure.group)


class _SplitNeeded(Exception):
    def __init__(self, group: int | None, reason: str) -> None:
        super().__init__(reason)
        self.group = group
        self.reason = reason


def _schedule_all(lowered: LoweredSpecs, schedule: Schedule) -> None:
    program = lowered.program
    for spec in lowered.specs:
        try:
            body = schedule_kernel(schedule, spec)
        except UnsupportedGroup as error:
            raise _SplitNeeded(spec.group, str(error)) from None
        attrs = dict(spec.attrs())
        node_groups = {spec.elemental.graph.node(n).group for n in spec.nodes}
        split_from = node_groups & lowered.split_groups
        if split_from:
            attrs["split_group"] = split_from.pop()
        kernel = Kernel(spec.name, spec.params, body, tuple(b.name for b in spec.writes),
                        tuple(sorted(attrs.items())))
        program.kernels[kernel.name] = kernel
        program.calls.append(KernelCall(kernel.name, tuple(b.name for b in spec.params)))


__all__ = ["LoweredSpecs", "lower_specs", "build_spec", "lower", "lower_to_loops", "LoweringError"]
