"""Reduction kernels on the GPU: a row per thread for short rows, a row per block for long ones.

Row per thread (rows of at most `mapping.ROW_PER_THREAD_MAX` elements): the naive schedule's code for
one kept position (all stages, cached rows, the epilogue) runs in one thread; thread g takes row g.

Row per block (one block of T threads per kept position):

    for b in 0..rows parallel {
      let kept = decompose(b)
      for each stage s:                                   # in order; later stages read earlier results
        local partial[T, 1], total[1] {
          for t in 0..T parallel {                        # each thread folds elements t, t+T, t+2T, ...
            partial[t, 0] = init
            for j in 0..ceil(R/T) { let r = j*T + t; if r < R { partial[t, 0] = combine(partial[t, 0], in(r)) } }
          }
          for t in 0..T parallel { total[0] = fold(partial[0..T, 0]) }     # block all-reduce (simt)
          let result_s = finalize(total[0]) { ...next stage... }
        }
      for t in 0..T parallel {                            # the epilogue
        if t == 0 { reduced outputs }
        for j in 0..ceil(R/T) { let r = j*T + t; if r < R { domain outputs at r } }
      }
    }

`partial` is private (registers: thread t only touches row t outside the all-reduce), `total` shared.
Stage inputs are reloaded from global memory in each stage (L1/L2 serve the re-reads); rows are not
cached in shared memory.
"""

from __future__ import annotations

import math

from ir.loops import Allocate, Binary, Buffer, Const, For, Let, Load, Scope, Stmt, Store, Var, add, mul, seq
from passes.lowering.naive_schedule import NaiveSchedule
from passes.lowering.spec import ReductionSpec
from targets.gpu.mapping import reduction_launch
from targets.gpu.schedules.common import bind_all, decompose, guarded, less, linear, peel_nest
from targets.gpu.simt import block_allreduce, grid_loop, phase


def reduction(spec: ReductionSpec) -> Stmt:
    rows, length = math.prod(spec.kept_shape), math.prod(spec.reduce_shape)
    launch = reduction_launch(rows, length)
    if launch.mode == "thread":
        return _row_per_thread(spec, rows, launch.blocks, launch.threads)
    return _row_per_block(spec, rows, length, launch.threads)


def _row_per_thread(spec: ReductionSpec, rows: int, blocks: int, threads: int) -> Stmt:
    nest = NaiveSchedule(cache_rows="suggested").reduction(spec)
    block, thread, flat = spec.fresh("b"), spec.fresh("t"), spec.fresh("g")
    body = peel_nest(nest, spec.kept_shape, decompose(Var(flat), spec.kept_shape))
    check = less(Var(flat), rows) if blocks * threads != rows else None
    return grid_loop(block, blocks, phase(thread, threads,
                                          Let(flat, linear(Var(block), threads, Var(thread)), guarded(check, body))))


def _row_per_block(spec: ReductionSpec, rows: int, length: int, threads: int) -> Stmt:
    block = spec.fresh("b")
    names = [spec.fresh(f"k{axis}") for axis in range(len(spec.kept_shape))]
    kept = tuple(Var(name) for name in names)
    steps = math.ceil(length / threads)

    def strided(thread: str, body) -> Stmt:
        """for j in 0..steps { let r = j*T + t; if r < R { body(reduced index of r) } }"""
        step, flat = spec.fresh("j"), spec.fresh("r")
        check = less(Var(flat), length) if steps * threads != length else None
        inner = Let(flat, add(mul(Var(step), Const(threads)), Var(thread)),
                    guarded(check, body(decompose(Var(flat), spec.reduce_shape))))
        return For(step, Const(0), Const(steps), inner)

    def stage(number: int) -> Stmt:
        if number == len(spec.stages):
            return _epilogue(spec, kept, threads, strided)
        current = spec.stages[number]
        acc_dtype = current.acc_dtype
        partial = Buffer(spec.fresh("partial"), acc_dtype, (threads, 1), scope=Scope.LOCAL)
        total = Buffer(spec.fresh("total"), acc_dtype, (1,), scope=Scope.LOCAL)
        thread = spec.fresh("t")
        mine = (Var(thread), Const(0))

        def fold(red):
            scalars = spec.stage_input(number, kept, red)
            return scalars.bind(Store(partial.name, mine, current.combine(Load(partial.name, mine, acc_dtype),
                                                                          scalars.value)))

        accumulate = phase(thread, threads, seq(Store(partial.name, mine, current.init), strided(thread, fold)))
        acc = Buffer(spec.fresh("acc"), acc_dtype, (1,), scope=Scope.LOCAL)
        combine = block_allreduce(spec.fresh("t"), threads, partial, total, current.combiner, current.init, acc,
                                  spec.fresh("w"))
        result = Let(current.result.name, current.finalize(Load(total.name, (Const(0),), acc_dtype)),
                     stage(number + 1))
        return Allocate(partial, Allocate(total, seq(accumulate, combine, result)))

    body = bind_all(names, decompose(Var(block), spec.kept_shape), stage(0))
    return grid_loop(block, max(1, rows), body)


def _epilogue(spec: ReductionSpec, kept, threads: int, strided) -> Stmt:
    thread = spec.fresh("t")
    parts = []
    if spec.reduced_outputs:
        parts.append(guarded(Binary("eq", Var(thread), Const(0)), spec.reduced_store(kept)))
    if spec.domain_outputs:
        parts.append(strided(thread, lambda red: spec.domain_store(kept, red)))
    return phase(thread, threads, seq(*parts))
