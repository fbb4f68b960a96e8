"""Elementwise and copy kernels: vectorized along the last axis, rows spread over the threads.

    for r in 0..rows parallel {                    rows = product of the outer axes (>= threads)
      let (i0, i1, ...) = unflatten(r)
      vector_range(last axis): out[i.., j] = f(...)
    }

With fewer rows than threads (a 1-D tensor, a few long rows) the vector blocks of each row are the
parallel loop instead. Small kernels (below `PARALLEL_MIN_WORK`) stay on one thread. Points are
independent (`ElementwiseSpec`), so any order and any split is legal.
"""

from __future__ import annotations

import math
from typing import Callable

from ir.dtypes import DType
from ir.loops import Const, Expr, For, Seq, Stmt, Var, seq
from passes.lowering.spec import CopySpec, ElementwiseSpec, KernelSpec
from targets.cpu.schedules.common import Machine, loop_kind, unflatten, vector_range

# Transcendental work makes an element cost about this many simple ones (for the parallel decision).
_COST_PER_ELEMENT = 4


def domain_loops(spec: KernelSpec, machine: Machine, shape: tuple[int, ...], lanes: int,
                 body: Callable[[tuple[Expr, ...]], Stmt]) -> Stmt:
    """`body(index)` at every point of `shape`, vectorized on the last axis and parallel where it pays."""
    if not shape:
        return body(())
    if math.prod(shape) == 0:
        return Seq(())
    last = shape[-1]
    outer = shape[:-1]
    rows = math.prod(outer)
    parallel = machine.parallel(rows * last * _COST_PER_ELEMENT)
    if not outer:
        return vector_range(spec, last, lanes, lambda j, lane: body((j,)), parallel=parallel)
    row = spec.fresh("r")
    outer_index = unflatten(Var(row), outer)
    rows_parallel = parallel and rows >= machine.threads
    inner = vector_range(spec, last, lanes, lambda j, lane: body(outer_index + (j,)),
                         parallel=parallel and not rows_parallel)
    return For(row, Const(0), Const(rows), inner, loop_kind(rows_parallel))


def schedule_elementwise(spec: ElementwiseSpec, machine: Machine) -> Stmt:
    dtypes = [slot.buffer.dtype for slot in spec.outputs] + [buffer.dtype for buffer in spec.reads]
    return domain_loops(spec, machine, spec.domain, kernel_lanes(machine, dtypes), spec.store)


def schedule_copy(spec: CopySpec, machine: Machine) -> Stmt:
    lanes = kernel_lanes(machine, [spec.output.buffer.dtype])
    nests = [domain_loops(spec, machine, region.shape, lanes,
                          lambda index, r=r: spec.region_store(r, index))
             for r, region in enumerate(spec.regions)]
    return seq(*nests) if nests else Seq(())


def kernel_lanes(machine: Machine, dtypes: list[DType]) -> int:
    """One vector width for a kernel: the f32 lane count (wider types take two registers per vector)."""
    return machine.lanes(DType.F32)
