"""One LLVM function from loop-IR statements: the statement dispatch and the four kinds of loop.

Layout of every function: an `entry` block holding all allocas (locals are hoisted there, so a local
inside a loop costs nothing per iteration and LLVM's SROA can promote small ones to registers), then
the code, then the frees of heap-allocated locals and `ret void`.

Loops, by annotation:
* SERIAL: a phi-counted loop; innermost ones outside vector code carry `llvm.loop.vectorize.enable`.
* UNROLL: the body emitted `extent` times with the variable a constant (extent must be constant).
* VECTORIZE: the body emitted once as vector code over `extent` lanes (see `memory`, `access`); when
  `vector_check` refuses the loop, or the extent is not a constant, a serial loop with the hint.
  Nested inside vector code a vectorize loop is unrolled.
* PARALLEL: outlined and run on OpenMP threads (`parallel`); nested parallel loops run serially.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from llvmlite import ir

from ir.loops import Allocate, Buffer, Const, For, If, Let, LoopKind, Seq, Stmt, Store, walk
from targets.cpu.codegen.access import substitute
from targets.cpu.codegen.context import BufferRef, ModuleContext, VectorContext
from targets.cpu.codegen.expressions import ExpressionEmitter
from targets.cpu.codegen.helpers import alloca, const_i64, constant, declare_function, for_range, iota, loop_hints, splat
from targets.cpu.codegen.lltypes import I64, PTR, VOID, storage_type
from targets.cpu.codegen.memory import MemoryEmitter
from targets.cpu.codegen.vector_check import can_vectorize

MAX_VECTOR_LANES = 256  # wider vectorize loops run serially (with LLVM's hint)
MAX_UNROLL = 256
STACK_LIMIT = 64 * 1024  # locals above this many bytes go on the heap (threads have small stacks)


class FunctionEmitter(ExpressionEmitter, MemoryEmitter):
    def __init__(self, ctx: ModuleContext, function: ir.Function, in_parallel: bool = False) -> None:
        self.ctx = ctx
        self.function = function
        entry = function.append_basic_block("entry")
        body = function.append_basic_block("body")
        self.alloca_builder = ir.IRBuilder(entry)
        self.builder = ir.IRBuilder(body)
        self.env: dict[str, ir.Value] = {}
        self.buffers: dict[str, BufferRef] = {}
        self.vector: VectorContext | None = None
        self.in_parallel = in_parallel
        self._heap: list[ir.Value] = []

    def finish(self) -> None:
        """Free heap locals, return, and close the entry block."""
        if self._heap:
            free = declare_function(self.ctx.module, "free", VOID, [PTR])
            for pointer in self._heap:
                self.builder.call(free, [pointer])
        self.builder.ret_void()
        self.alloca_builder.branch(self.function.basic_blocks[1])

    # -- scopes and storage --------------------------------------------------------------------

    @contextlib.contextmanager
    def bind(self, name: str, value: ir.Value) -> Iterator[None]:
        missing = object()
        saved = self.env.get(name, missing)
        self.env[name] = value
        try:
            yield
        finally:
            if saved is missing:
                del self.env[name]
            else:
                self.env[name] = saved

    def allocate(self, buffer: Buffer, copies: int = 1) -> ir.Value:
        """Storage for a local buffer (times `copies` for lane-private ones), made in the entry block."""
        element = storage_type(buffer.dtype)
        count = max(1, buffer.size * copies)
        nbytes = count * buffer.dtype.itemsize
        if nbytes <= STACK_LIMIT:
            return alloca(self.alloca_builder, ir.ArrayType(element, count), name=buffer.name, align=64)
        aligned_alloc = declare_function(self.ctx.module, "aligned_alloc", PTR, [I64, I64])
        pointer = self.alloca_builder.call(aligned_alloc, [const_i64(64), const_i64((nbytes + 63) // 64 * 64)],
                                           name=buffer.name)
        self._heap.append(pointer)
        return pointer

    # -- statements ----------------------------------------------------------------------------

    def emit_stmt(self, stmt: Stmt) -> None:
        match stmt:
            case Seq():
                for child in stmt.stmts:
                    self.emit_stmt(child)
            case Store():
                self.emit_store(stmt)
            case For():
                self._emit_for(stmt)
            case If():
                self._emit_if(stmt)
            case Let():
                self._emit_let(stmt)
            case Allocate():
                self._emit_allocate(stmt)
            case _:
                raise TypeError(f"not a loop IR statement: {stmt!r}")

    def _emit_let(self, stmt: Let) -> None:
        value = self.emit_expr(stmt.value)
        vector = self.vector
        lane_dependent = vector is not None and isinstance(value.type, ir.VectorType)
        saved = vector.varying.get(stmt.var) if vector is not None else None
        if lane_dependent:
            vector.varying[stmt.var] = substitute(stmt.value, vector.varying)
        elif vector is not None:
            vector.varying.pop(stmt.var, None)
        with self.bind(stmt.var, value):
            self.emit_stmt(stmt.body)
        if vector is not None:
            vector.varying.pop(stmt.var, None)
            if saved is not None:
                vector.varying[stmt.var] = saved

    def _emit_allocate(self, stmt: Allocate) -> None:
        lanes = self.vector.lanes if self.vector is not None else None
        pointer = self.allocate(stmt.buffer, lanes or 1)
        name = stmt.buffer.name
        saved = self.buffers.get(name)
        self.buffers[name] = BufferRef(stmt.buffer, pointer, local=True, lanes=lanes)
        self.emit_stmt(stmt.body)
        if saved is None:
            del self.buffers[name]
        else:
            self.buffers[name] = saved

    def _emit_if(self, stmt: If) -> None:
        cond = self.emit_expr(stmt.cond)
        if isinstance(cond.type, ir.VectorType):
            self._emit_masked_if(stmt, cond)
            return
        b = self.builder
        if stmt.else_body is None:
            with b.if_then(cond):
                self.emit_stmt(stmt.then_body)
            return
        with b.if_else(cond) as (then, otherwise):
            with then:
                self.emit_stmt(stmt.then_body)
            with otherwise:
                self.emit_stmt(stmt.else_body)

    def _emit_masked_if(self, stmt: If, cond: ir.Value) -> None:
        """A lane-dependent condition: both branches run, their memory accesses masked."""
        vector = self.vector
        outer = vector.mask
        b = self.builder
        vector.mask = cond if outer is None else b.and_(outer, cond)
        self.emit_stmt(stmt.then_body)
        if stmt.else_body is not None:
            inverse = b.xor(cond, constant(cond.type, 1))
            vector.mask = inverse if outer is None else b.and_(outer, inverse)
            self.emit_stmt(stmt.else_body)
        vector.mask = outer

    # -- loops ---------------------------------------------------------------------------------

    def _emit_for(self, loop: For) -> None:
        extent = loop.extent.value if isinstance(loop.extent, Const) else None
        if loop.kind is LoopKind.PARALLEL and self.vector is None and not self.in_parallel and self.ctx.threads > 1:
            from targets.cpu.codegen.parallel import emit_parallel_for
            emit_parallel_for(self, loop)
        elif loop.kind is LoopKind.VECTORIZE and self.vector is None and extent is not None \
                and 1 < extent <= MAX_VECTOR_LANES and can_vectorize(loop, self._buffer_table()):
            self._emit_vector_loop(loop, extent)
        elif loop.kind in (LoopKind.UNROLL, LoopKind.VECTORIZE) and extent is not None and extent <= MAX_UNROLL \
                and (loop.kind is LoopKind.UNROLL or self.vector is not None):
            self._emit_unrolled(loop, extent)
        else:
            self._emit_serial(loop)

    def _buffer_table(self) -> dict[str, Buffer]:
        return {name: ref.buffer for name, ref in self.buffers.items()}

    def _emit_serial(self, loop: For) -> None:
        b = self.builder
        start = self.emit_expr(loop.start)
        extent = self.emit_expr(loop.extent)
        stop = b.add(start, b.mul(extent, const_i64(loop.step)))
        hints = None
        if self.vector is None and self.ctx.vectorize_hints and not _has_inner_loop(loop):
            hints = loop_hints(self.ctx.module, vectorize=True)
        with for_range(b, start, stop, loop.step, name=loop.var, loop_metadata=hints) as index:
            with self.bind(loop.var, index):
                self.emit_stmt(loop.body)

    def _emit_unrolled(self, loop: For, extent: int) -> None:
        start = self.emit_expr(loop.start)
        for iteration in range(extent):
            value = self.builder.add(start, const_i64(iteration * loop.step)) if iteration else start
            with self.bind(loop.var, value):
                self.emit_stmt(loop.body)

    def _emit_vector_loop(self, loop: For, lanes: int) -> None:
        b = self.builder
        base = self.emit_expr(loop.start)
        lane_values = b.add(splat(b, base, lanes), b.mul(iota(lanes, I64), splat(b, const_i64(loop.step), lanes)))
        self.vector = VectorContext(loop.var, lanes, loop.step, base)
        try:
            with self.bind(loop.var, lane_values):
                self.emit_stmt(loop.body)
        finally:
            self.vector = None


def _has_inner_loop(loop: For) -> bool:
    return any(isinstance(node, For) for node in walk(loop.body))
