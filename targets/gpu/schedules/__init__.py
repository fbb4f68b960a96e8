"""GpuSchedule: the kernel specs of `passes.lowering` as loop IR in SIMT form (`targets.gpu.simt`).

    from passes.lowering import lower
    from targets.gpu.schedules import GpuSchedule
    lowered = lower(graph, GpuSchedule(machine))

One module per spec family: `elementwise` (elementwise and copy), `reduction`, `matmul`. The launch of
each kernel comes from `targets.gpu.mapping`; the schedule remembers, per kernel name, the matmul tiles
it chose (`tiles`) so that the cost model prices the kernel that was built.
"""

from __future__ import annotations

from ir.loops import Stmt
from passes.lowering.spec import CopySpec, ElementwiseSpec, MatmulSpec, ReductionSpec
from targets.gpu.machine import GpuMachine, machine_for
from targets.gpu.mapping import MMA_DTYPES, MatmulTiles
from targets.gpu.schedules import elementwise as _elementwise
from targets.gpu.schedules import matmul as _matmul
from targets.gpu.schedules import reduction as _reduction


class GpuSchedule:
    """Turns kernel specs into SIMT loop IR for `machine` (default: the H100 spec)."""

    def __init__(self, machine: GpuMachine | None = None, tensor_cores: bool = True,
                 force_tiles: MatmulTiles | None = None) -> None:
        self.machine = machine or machine_for(None)
        self.tensor_cores = tensor_cores
        self.force_tiles = force_tiles  # these tiles for every matmul they suit (experiments, tests)
        self.tiles: dict[str, MatmulTiles] = {}

    def elementwise(self, spec: ElementwiseSpec) -> Stmt:
        return _elementwise.elementwise(spec)

    def copy(self, spec: CopySpec) -> Stmt:
        return _elementwise.copy(spec)

    def reduction(self, spec: ReductionSpec) -> Stmt:
        return _reduction.reduction(spec)

    def matmul(self, spec: MatmulSpec) -> Stmt:
        forced = self.force_tiles
        if forced is not None and forced.mma == (str(spec.dtype) in MMA_DTYPES and self.tensor_cores):
            tiles = forced
        else:
            tiles = _matmul.tiles_for(spec, self.machine, self.tensor_cores)
        self.tiles[spec.name] = tiles
        return _matmul.matmul(spec, tiles)


__all__ = ["GpuSchedule"]
