"""The block all-reduce phase (`simt.block_allreduce`) as warp shuffles and one round through shared memory.

    v = partial (this thread's private accumulator)
    v = combine(v, shfl.bfly(v, 16)); ... ; v = combine(v, shfl.bfly(v, 1))   every lane: its warp's total
    lane 0 of warp w: sums[w] = v;  bar.sync
    total = fold(init, sums[0], ..., sums[W-1])       every thread, the same order: the same value
    thread 0: dest[0] = total                          (the phase's own barrier follows)

The butterfly leaves every lane with the warp's total. The combination order is a tree instead of the
serial reading's left-to-right fold; `ReduceStage.combine` is associative up to rounding, which the
reduction contract allows.
"""

from __future__ import annotations

from llvmlite import ir

from targets.cpu.codegen import conversions, numerics
from targets.cpu.codegen.helpers import const_i64
from targets.cpu.codegen.lltypes import storage_type
from targets.gpu.codegen.intrinsics import barrier, shuffle_xor
from targets.gpu.simt import SHARED_ALIGNMENT, WARP, AllReduce, SimtError


def emit_block_allreduce(emitter, reduce: AllReduce) -> None:  # emitter: GpuKernelEmitter
    if reduce.threads != emitter.simt.block:  # shuffles with a full mask need every lane of every warp
        raise SimtError(f"kernel {emitter.kernel.name}: a block all-reduce over {reduce.threads} threads in a block "
                        f"of {emitter.simt.block}; expected the whole block")
    b = emitter.builder
    source = emitter.buffers[reduce.source]
    dtype = source.buffer.dtype
    element = storage_type(dtype)
    own = conversions.from_storage(b, b.load(source.pointer, typ=element, align=dtype.itemsize), dtype)
    value = own
    lanes = WARP // 2
    while lanes:
        other = shuffle_xor(b, value, lanes)
        value = numerics.binary(b, reduce.combiner, value, other, dtype, True)
        lanes //= 2
    thread = emitter.thread
    warps = reduce.threads // WARP
    if warps > 1:
        sums_buffer = ir.ArrayType(element, warps)
        sums = ir.GlobalVariable(b.module, sums_buffer, name=f"{emitter.function.name}.{reduce.source}.warps",
                                 addrspace=3)
        sums.linkage = "internal"
        sums.align = SHARED_ALIGNMENT
        sums.initializer = ir.Constant(sums_buffer, ir.Undefined)
        sums.type = ir.PointerType(addrspace=3)
        lane = b.and_(thread, const_i64(WARP - 1))
        warp = b.lshr(thread, const_i64(5))
        with b.if_then(b.icmp_unsigned("==", lane, const_i64(0))):
            slot = b.gep(sums, [warp], inbounds=True, source_etype=element)
            b.store(conversions.to_storage(b, value, dtype), slot, align=dtype.itemsize)
        barrier(b)
        value = conversions.constant_value(dtype, reduce.init.value)
        for index in range(warps):
            slot = b.gep(sums, [const_i64(index)], inbounds=True, source_etype=element)
            loaded = conversions.from_storage(b, b.load(slot, typ=element, align=dtype.itemsize), dtype)
            value = numerics.binary(b, reduce.combiner, value, loaded, dtype, True)
    dest = emitter.buffers[reduce.dest]
    with b.if_then(b.icmp_unsigned("==", thread, const_i64(0))):
        b.store(conversions.to_storage(b, value, dtype), dest.pointer, align=dtype.itemsize)
