"""The CPU schedule: kernel specs (passes.lowering.spec) -> vectorized, parallel, tiled loop IR.

One module per spec family: `elementwise` (and copies), `reduction`, `matmul`, `sparse` (matmuls with
a sparse operand); `common` has the machine parameters and shared loop shapes. Every choice (vector width, tile sizes, whether a loop is
parallel) is derived from `common.Machine`, i.e. from the host's SIMD width, registers, caches and
the thread count, by rules written in each module's docstring.
"""

from __future__ import annotations

from ir.loops import Stmt
from passes.lowering.sparse import SparseMatmulSpec
from passes.lowering.spec import CopySpec, ElementwiseSpec, MatmulSpec, ReductionSpec
from targets.cpu.schedules.common import Machine
from targets.cpu.schedules.elementwise import schedule_copy, schedule_elementwise
from targets.cpu.schedules.matmul import schedule_matmul
from targets.cpu.schedules.reduction import schedule_reduction
from targets.cpu.schedules.sparse import schedule_sparse_matmul


class CpuSchedule:
    """`passes.lowering.spec.Schedule` for this host (or for `machine`, to schedule for another)."""

    def __init__(self, threads: int = 1, machine: Machine | None = None) -> None:
        self.machine = machine or Machine.host(threads)

    def elementwise(self, spec: ElementwiseSpec) -> Stmt:
        return schedule_elementwise(spec, self.machine)

    def reduction(self, spec: ReductionSpec) -> Stmt:
        return schedule_reduction(spec, self.machine)

    def matmul(self, spec: MatmulSpec) -> Stmt:
        return schedule_matmul(spec, self.machine)

    def copy(self, spec: CopySpec) -> Stmt:
        return schedule_copy(spec, self.machine)

    def sparse_matmul(self, spec: SparseMatmulSpec) -> Stmt:
        return schedule_sparse_matmul(spec, self.machine)


__all__ = ["CpuSchedule", "Machine"]
