"""One GPU kernel: a SIMT-form loop IR kernel as an LLVM function with the ptx_kernel calling convention.

The mapping (see `targets.gpu.simt` for the form and why it is faithful):

    for b in 0..G parallel          b = blockIdx.x (the launch has G blocks)
    for t in 0..E parallel          t = threadIdx.x; `if t < E` when E is below the block size;
                                    `bar.sync 0` after the phase unless it ends the kernel
    block-level let / if / for      emitted as they are: every thread computes the same values
    block-level local, private      an alloca of the per-thread row (the first index dropped)
    block-level local, shared       an addrspace(3) global of the kernel (static shared memory)
    thread-level statements         the CPU target's statement and expression emitters, unchanged

Everything inside a phase is emitted by `targets.cpu.codegen.function.FunctionEmitter` (scalar mode:
no parallel or vectorized loops occur there), so the numerics of every op are the CPU target's, which
the reference interpreter defines. Global buffers are `ptr addrspace(1)` parameters.
"""

from __future__ import annotations

from llvmlite import ir

from ir.loops import Allocate, Buffer, For, If, Kernel, Let, LoopKind, Seq, Stmt
from targets.cpu.codegen.context import BufferRef, ModuleContext
from targets.cpu.codegen.function import FunctionEmitter
from targets.cpu.codegen.helpers import const_i64, for_range
from targets.cpu.codegen.lltypes import storage_type
from targets.gpu.codegen.intrinsics import barrier, special_register
from targets.gpu.simt import (SHARED_ALIGNMENT, SimtError, SimtKernel, match_block_allreduce, private_buffer,
                              strip_private)

SHARED = 3  # the NVPTX address space of shared memory
THREAD_LOCAL_LIMIT = 16 * 1024  # bytes of local arrays one thread may allocate


class GpuKernelEmitter(FunctionEmitter):
    def __init__(self, ctx: ModuleContext, function: ir.Function, kernel: Kernel, simt: SimtKernel) -> None:
        super().__init__(ctx, function)
        self.kernel = kernel
        self.simt = simt
        self.private = frozenset(buffer.name for buffer in simt.private)
        self.originals: dict[str, Buffer] = {param.name: param for param in kernel.params}
        self.thread = None

    def emit_kernel(self) -> None:
        for arg, param in zip(self.function.args, self.kernel.params):
            self.buffers[param.name] = BufferRef(param, arg, local=False)
        grid = self.kernel.body
        self.thread = special_register(self.builder, "tid.x")
        block = special_register(self.builder, "ctaid.x")
        with self.bind(grid.var, block):
            self.emit_block(grid.body, tail=True)
        self.finish()

    def allocate(self, buffer: Buffer, copies: int = 1) -> ir.Value:
        if buffer.nbytes * copies > THREAD_LOCAL_LIMIT:
            raise SimtError(f"kernel {self.kernel.name}: the thread-local buffer {buffer.name} "
                            f"({buffer.nbytes * copies} bytes) exceeds {THREAD_LOCAL_LIMIT} bytes per thread")
        return super().allocate(buffer, copies)

    # -- block level ---------------------------------------------------------------------------

    def emit_block(self, stmt: Stmt, tail: bool) -> None:
        """A block-level statement; `tail` is true when nothing of the kernel follows it."""
        b = self.builder
        match stmt:
            case Seq():
                for index, child in enumerate(stmt.stmts):
                    self.emit_block(child, tail and index == len(stmt.stmts) - 1)
            case Let():
                with self.bind(stmt.var, self.emit_expr(stmt.value)):
                    self.emit_block(stmt.body, tail)
            case Allocate():
                self._emit_block_local(stmt, tail)
            case If():
                cond = self.emit_expr(stmt.cond)
                if stmt.else_body is None:
                    with b.if_then(cond):
                        self.emit_block(stmt.then_body, tail)
                else:
                    with b.if_else(cond) as (then, otherwise):
                        with then:
                            self.emit_block(stmt.then_body, tail)
                        with otherwise:
                            self.emit_block(stmt.else_body, tail)
            case For() if stmt.kind is LoopKind.PARALLEL:
                self.emit_phase(stmt)
                if not tail:
                    barrier(b)
            case For():
                start = self.emit_expr(stmt.start)
                stop = b.add(start, b.mul(self.emit_expr(stmt.extent), const_i64(stmt.step)))
                with for_range(b, start, stop, stmt.step, name=stmt.var) as index:
                    with self.bind(stmt.var, index):
                        self.emit_block(stmt.body, tail=False)
            case _:
                raise SimtError(f"kernel {self.kernel.name}: {type(stmt).__name__} at block level")

    def _emit_block_local(self, stmt: Allocate, tail: bool) -> None:
        buffer = stmt.buffer
        self.originals[buffer.name] = buffer
        if buffer.name in self.private:
            row = private_buffer(buffer)
            ref = BufferRef(row, self.allocate(row), local=True)
        else:
            ref = BufferRef(buffer, self._shared_array(buffer), local=True)
        saved = self.buffers.get(buffer.name)
        self.buffers[buffer.name] = ref
        self.emit_block(stmt.body, tail)
        if saved is None:
            del self.buffers[buffer.name]
        else:
            self.buffers[buffer.name] = saved

    def _shared_array(self, buffer: Buffer) -> ir.Value:
        array_type = ir.ArrayType(storage_type(buffer.dtype), max(1, buffer.size))
        array = ir.GlobalVariable(self.ctx.module, array_type, name=f"{self.function.name}.{buffer.name}",
                                  addrspace=SHARED)
        array.linkage = "internal"
        array.align = SHARED_ALIGNMENT
        array.initializer = ir.Constant(array_type, ir.Undefined)
        array.type = ir.PointerType(addrspace=SHARED)  # opaque, like every pointer the emitters index
        return array

    # -- phases --------------------------------------------------------------------------------

    def emit_phase(self, loop: For) -> None:
        allreduce = match_block_allreduce(loop, self.originals)
        if allreduce is not None:
            from targets.gpu.codegen.reduce import emit_block_allreduce
            emit_block_allreduce(self, allreduce)
            return
        from targets.gpu.schedules.matmul import match_mma_phase
        mma = match_mma_phase(loop, self.originals)
        if mma is not None:
            from targets.gpu.codegen.mma import emit_mma_phase
            emit_mma_phase(self, mma)
            return
        body = strip_private(loop.body, self.private)
        extent = int(loop.extent.value)
        with self.bind(loop.var, self.thread):
            if extent < self.simt.block:
                with self.builder.if_then(self.builder.icmp_unsigned("<", self.thread, const_i64(extent))):
                    self.emit_stmt(body)
            else:
                self.emit_stmt(body)
