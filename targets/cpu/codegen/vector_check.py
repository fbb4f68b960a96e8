"""Can a `vectorize` loop run as SIMD lanes? The check made before emitting it as vector code.

Lanes execute the body in lock step, so two things the loop IR allows in a serial loop cannot be
vector code here: an inner loop whose bounds depend on the lane, and a store of a lane-dependent value
to one address shared by all lanes (a reduction into a scalar written as `acc[0] = acc[0] + x[v]`,
whose result depends on the lane order). A loop that fails the check is emitted as a serial loop with
LLVM's vectorize hint instead, which is always correct. Locals allocated inside the loop are private
to each lane and exempt.
"""

from __future__ import annotations

from typing import Mapping

from ir.loops import Allocate, Buffer, For, If, Let, Seq, Stmt, Store, linear_index
from targets.cpu.codegen.access import is_uniform, lane_stride


def can_vectorize(loop: For, buffers: Mapping[str, Buffer]) -> bool:
    return _check(loop.body, loop.var, loop.step, dict(buffers), {}, set())


def _check(stmt: Stmt, lane: str, step: int, buffers: dict[str, Buffer], varying: dict, private: set[str]) -> bool:
    if isinstance(stmt, Seq):
        return all(_check(s, lane, step, buffers, varying, private) for s in stmt.stmts)
    if isinstance(stmt, For):
        if not (is_uniform(stmt.start, lane, varying) and is_uniform(stmt.extent, lane, varying)):
            return False
        return _check(stmt.body, lane, step, buffers, varying, private)
    if isinstance(stmt, Let):
        inner = dict(varying)
        if not is_uniform(stmt.value, lane, varying):
            inner[stmt.var] = stmt.value
        else:
            inner.pop(stmt.var, None)
        return _check(stmt.body, lane, step, buffers, inner, private)
    if isinstance(stmt, Allocate):
        inner_buffers = dict(buffers)
        inner_buffers[stmt.buffer.name] = stmt.buffer
        return _check(stmt.body, lane, step, inner_buffers, varying, private | {stmt.buffer.name})
    if isinstance(stmt, If):
        return (_check(stmt.then_body, lane, step, buffers, varying, private)
                and (stmt.else_body is None or _check(stmt.else_body, lane, step, buffers, varying, private)))
    if isinstance(stmt, Store):
        if stmt.buffer in private or stmt.buffer not in buffers:
            return True
        offset = linear_index(stmt.indices, buffers[stmt.buffer].element_strides)
        if lane_stride(offset, lane, step, varying) == 0 and not is_uniform(stmt.value, lane, varying):
            return False
        return True
    raise TypeError(f"not a loop IR statement: {stmt!r}")
