"""PARALLEL loops on OpenMP threads: the loop body is outlined and run through libgomp's `GOMP_parallel`.

For `for i in start..+extent parallel { body }` inside function F:

    struct ctx { i64 start, extent; ptr buffers...; scalars in scope... }   (an alloca in F)
    F.parallel.N.body(ctx*, lo, hi): for t in lo..hi { i = start + t*step; body }
    F.parallel.N(ctx*):  t = omp_get_thread_num(), n = omp_get_num_threads();
                         body(ctx, extent*t/n, extent*(t+1)/n)          (a static, balanced split)
    F:  n = min(threads, extent); n < 2 ? body(ctx, 0, extent) : GOMP_parallel(F.parallel.N, ctx, n, 0)

Why this is correct: PARALLEL promises that iterations are independent; every thread gets a disjoint
range and their union is 0..extent; GOMP_parallel returns after all threads finish (an implicit
barrier), so code after the loop sees every write. Locals allocated inside the body are allocas of the
outlined function, hence private to each thread; buffers from outside are shared through `ctx`.
The thread count is a compile-time constant (CompileOptions.extra["threads"]); no environment variable
is read. GOMP's own threads are reused between regions.
"""

from __future__ import annotations

from llvmlite import ir

from ir.loops import For
from targets.cpu.codegen.context import BufferRef
from targets.cpu.codegen.helpers import alloca, const_i64, declare_function, for_range
from targets.cpu.codegen.function import FunctionEmitter  # which imports this module lazily
from targets.cpu.codegen.lltypes import I32, I64, PTR, VOID


def emit_parallel_for(parent: FunctionEmitter, loop: For) -> None:
    ctx = parent.ctx
    module = ctx.module
    b = parent.builder
    start = parent.emit_expr(loop.start)
    extent = parent.emit_expr(loop.extent)
    scalars = sorted(parent.env.items())
    buffers = sorted(parent.buffers.items())
    field_types = [I64, I64] + [PTR] * len(buffers) + [value.type for _, value in scalars]
    struct_type = ir.LiteralStructType(field_types)
    context = alloca(parent.alloca_builder, struct_type, name="parallel.ctx")
    values = [start, extent] + [ref.pointer for _, ref in buffers] + [value for _, value in scalars]
    for index, value in enumerate(values):
        b.store(value, b.gep(context, [ir.Constant(I32, 0), ir.Constant(I32, index)], inbounds=True,
                             source_etype=struct_type))

    name = ctx.unique(f"{parent.function.name}.parallel")
    body_function = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, I64]), name=f"{name}.body")
    body_function.linkage = "internal"
    body_function.attributes.add("noinline")  # called by each thread and on the one-thread path
    worker = FunctionEmitter(ctx, body_function, in_parallel=True)
    wb = worker.builder
    fields = [wb.load(wb.gep(body_function.args[0], [ir.Constant(I32, 0), ir.Constant(I32, index)],
                             inbounds=True, source_etype=struct_type), typ=typ)
              for index, typ in enumerate(field_types)]
    for (buffer_name, ref), pointer in zip(buffers, fields[2:2 + len(buffers)]):
        worker.buffers[buffer_name] = BufferRef(ref.buffer, pointer, ref.local, ref.lanes)
    for (var, _), value in zip(scalars, fields[2 + len(buffers):]):
        worker.env[var] = value
    low, high = body_function.args[1], body_function.args[2]
    with for_range(wb, low, high, 1, name=loop.var) as trip:
        value = wb.add(fields[0], wb.mul(trip, const_i64(loop.step)))
        with worker.bind(loop.var, value):
            worker.emit_stmt(loop.body)
    worker.finish()

    thread_function = ir.Function(module, ir.FunctionType(VOID, [PTR]), name=name)
    thread_function.linkage = "internal"
    _emit_thread_entry(thread_function, body_function, struct_type)

    threads = b.select(b.icmp_signed("<", extent, const_i64(ctx.threads)), extent, const_i64(ctx.threads))
    with b.if_else(b.icmp_signed("<", threads, const_i64(2))) as (alone, team):
        with alone:
            b.call(body_function, [context, const_i64(0), extent])
        with team:
            gomp_parallel = declare_function(module, "GOMP_parallel", VOID, [PTR, PTR, I32, I32])
            b.call(gomp_parallel, [thread_function, context, b.trunc(threads, I32), ir.Constant(I32, 0)])


def _emit_thread_entry(function: ir.Function, body: ir.Function, struct_type: ir.Type) -> None:
    """What each OpenMP thread runs: its static share of the iterations."""
    module = function.module
    b = ir.IRBuilder(function.append_basic_block("entry"))
    context = function.args[0]
    extent = b.load(b.gep(context, [ir.Constant(I32, 0), ir.Constant(I32, 1)], inbounds=True,
                          source_etype=struct_type), typ=I64)
    thread = b.sext(b.call(declare_function(module, "omp_get_thread_num", I32, []), []), I64)
    team = b.sext(b.call(declare_function(module, "omp_get_num_threads", I32, []), []), I64)
    low = b.sdiv(b.mul(extent, thread), team)
    high = b.sdiv(b.mul(extent, b.add(thread, const_i64(1))), team)
    b.call(body, [context, low, high])
    b.ret_void()
