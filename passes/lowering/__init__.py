"""Lowering graph IR to loop IR: kernel specs (what each kernel computes) and schedules (its loops).

    from passes.lowering import lower_to_loops, NaiveSchedule
    program = lower_to_loops(graph)                 # one kernel per fusion group / ungrouped node

`spec` is the contract schedules program against (a target writes its own `Schedule` and passes it to
`lower_to_loops`); `lower_specs` gives the specs without loops, `lower` the specs with the program,
and `check.check_lowering` runs a lowering against the reference interpreter.
"""

from passes.lowering.lower import LoweredSpecs, LoweringError, build_spec, lower, lower_specs, lower_to_loops
from passes.lowering.naive_schedule import NaiveSchedule, loop_nest
from passes.lowering.spec import (CopyRegion, CopySpec, ElementwiseSpec, Indices, KernelSpec, MatmulSpec, NameGen,
                                  OutputSlot, ReduceStage, ReductionSpec, RowCache, Scalars, Schedule,
                                  UnsupportedGroup, accumulate, accumulator_dtype, local_accumulator, read,
                                  schedule_kernel)

__all__ = [
    "lower_to_loops", "lower", "lower_specs", "build_spec", "LoweredSpecs", "LoweringError", "NaiveSchedule",
    "loop_nest",
    "CopyRegion", "CopySpec", "ElementwiseSpec", "Indices", "KernelSpec", "MatmulSpec", "NameGen", "OutputSlot",
    "ReduceStage", "ReductionSpec", "RowCache", "Scalars", "Schedule", "UnsupportedGroup", "accumulate",
    "accumulator_dtype", "local_accumulator", "read", "schedule_kernel",
]
