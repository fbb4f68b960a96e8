"""Building blocks of the CPU schedules: the machine parameters they read, and loop shapes they share.

`Machine` is the part of the host a schedule needs (SIMD lanes, vector registers, cache sizes,
threads); it is a plain value so tests can schedule for a machine other than the one they run on.

`vector_range` is the one way the schedules walk a contiguous axis:

    for j0 in 0..n//W [parallel] { for v in 0..W vectorize { body(start + j0*W + v, v) } }
    for v in 0..W vectorize { if v < n%W { body(start + (n//W)*W + v, v) } }     (only when n%W != 0)

The tail is one masked vector iteration (masked loads and stores), never a scalar loop, so odd sizes
stay vectorized and the guard keeps every access in bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ir.dtypes import DType
from ir.loops import Binary, Const, Expr, For, If, LoopKind, Seq, Stmt, Var, add, floordiv, mod, mul, seq
from passes.lowering.spec import KernelSpec

# Below this many elements (times a rough cost per element) a kernel runs on one thread: an OpenMP
# fork/join costs a few microseconds, about what 2^15 simple elements cost on one core.
PARALLEL_MIN_WORK = 1 << 15


@dataclass(frozen=True)
class Machine:
    vector_bits: int
    vector_registers: int
    l1d_bytes: int
    l2_bytes: int
    l3_bytes: int
    threads: int

    @classmethod
    def host(cls, threads: int) -> "Machine":
        from targets.cpu.host import host_info
        host = host_info()
        return cls(host.vector_bits, host.vector_registers, host.l1d_bytes, host.l2_bytes, host.l3_bytes, threads)

    def lanes(self, dtype: DType) -> int:
        """Lanes of one register for `dtype` (f16/bf16 compute as f32; at least 4)."""
        bits = 32 if dtype in (DType.F16, DType.BF16, DType.BOOL, DType.I8) else dtype.bits
        return max(4, self.vector_bits // bits)

    def parallel(self, work: int) -> bool:
        return self.threads > 1 and work >= PARALLEL_MIN_WORK


def loop_kind(parallel: bool) -> LoopKind:
    return LoopKind.PARALLEL if parallel else LoopKind.SERIAL


def vector_range(spec: KernelSpec, n: int, lanes: int, body: Callable[[Expr, Expr], Stmt],
                 start: Expr = Const(0), parallel: bool = False) -> Stmt:
    """`body(index, lane)` for index = start .. start+n-1, `lanes` at a time (see the module doc)."""
    parts = []
    full, tail = divmod(n, lanes)
    if full:
        block, lane = spec.fresh("j"), spec.fresh("v")
        index = add(start, add(mul(Var(block), Const(lanes)), Var(lane)))
        inner = For(lane, Const(0), Const(lanes), body(index, Var(lane)), LoopKind.VECTORIZE)
        parts.append(For(block, Const(0), Const(full), inner, loop_kind(parallel)))
    if tail:
        lane = spec.fresh("v")
        index = add(start, add(Const(full * lanes), Var(lane)))
        guarded = If(Binary("lt", Var(lane), Const(tail)), body(index, Var(lane)))
        parts.append(For(lane, Const(0), Const(lanes), guarded, LoopKind.VECTORIZE))
    return seq(*parts) if parts else Seq(())


def unflatten(flat: Expr, shape: tuple[int, ...]) -> tuple[Expr, ...]:
    """The multi-index (row-major) of flat position `flat` in `shape`."""
    indices = []
    for axis, extent in enumerate(shape):
        index = floordiv(flat, Const(math.prod(shape[axis + 1:])))
        indices.append(mod(index, Const(extent)) if axis > 0 else index)
    return tuple(indices)


def serial_nest(spec: KernelSpec, shape: tuple[int, ...], base: str, body: Callable[[tuple[Expr, ...]], Stmt],
                kind: LoopKind = LoopKind.SERIAL) -> Stmt:
    """Loops over `shape` (outermost first, the outermost of kind `kind`) around `body(index)`."""
    names = [spec.fresh(f"{base}{axis}") for axis in range(len(shape))]
    stmt = body(tuple(Var(name) for name in names))
    for position, (name, extent) in reversed(list(enumerate(zip(names, shape)))):
        stmt = For(name, Const(0), Const(extent), stmt, kind if position == 0 else LoopKind.SERIAL)
    return stmt
