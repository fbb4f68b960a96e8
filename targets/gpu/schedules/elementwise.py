"""Elementwise and copy kernels on the GPU: one thread per output element.

    for b in 0..G parallel {                       # G = ceil(N / T) blocks of T threads
      for t in 0..T parallel {
        let g = b * T + t                          # the element's linear index
        if g < N { out[g // s0, g // s1 % d1, ...] = f(...) }     # no guard when T divides N
      }
    }

Consecutive threads take consecutive elements of the row-major domain, so the loads and stores of a
warp are contiguous wherever the innermost index is (coalesced). A copy (concat) gives each region its
own range of blocks; `if b in [first, last)` picks the region (a condition uniform over the block).
"""

from __future__ import annotations

import math

from ir.loops import Binary, Const, Let, Seq, Stmt, Var, seq, sub
from passes.lowering.spec import CopySpec, ElementwiseSpec
from targets.gpu.mapping import elementwise_launch
from targets.gpu.schedules.common import decompose, guarded, less, linear
from targets.gpu.simt import grid_loop, phase


def elementwise(spec: ElementwiseSpec) -> Stmt:
    size = math.prod(spec.domain)
    launch = elementwise_launch(size)
    block, thread, flat = spec.fresh("b"), spec.fresh("t"), spec.fresh("g")
    check = less(Var(flat), size) if launch.blocks * launch.threads != size else None
    body = Let(flat, linear(Var(block), launch.threads, Var(thread)),
               guarded(check, spec.store(decompose(Var(flat), spec.domain))))
    return grid_loop(block, launch.blocks, phase(thread, launch.threads, body))


def copy(spec: CopySpec) -> Stmt:
    """Each region is an elementwise kernel over its own blocks of one grid."""
    if not spec.regions:
        return grid_loop(spec.fresh("b"), 1, phase(spec.fresh("t"), 1, Seq(())))
    threads = max(elementwise_launch(math.prod(region.shape)).threads for region in spec.regions)
    block = spec.fresh("b")
    parts = []
    first = 0
    for number, region in enumerate(spec.regions):
        size = math.prod(region.shape)
        blocks = max(1, math.ceil(size / threads))
        thread, flat = spec.fresh("t"), spec.fresh("g")
        local_block = sub(Var(block), Const(first)) if first else Var(block)
        check = less(Var(flat), size) if blocks * threads != size else None
        body = Let(flat, linear(local_block, threads, Var(thread)),
                   guarded(check, spec.region_store(number, decompose(Var(flat), region.shape))))
        inside = less(Var(block), first + blocks)
        if first:
            inside = Binary("logical_and", Binary("ge", Var(block), Const(first)), inside)
        parts.append(guarded(inside, phase(thread, threads, body)))
        first += blocks
    return grid_loop(block, first, seq(*parts))
