"""The tensor-core compute phase of a matmul (`schedules.matmul.mma_phase`) as mma.sync.m16n8k16.

For each 16-wide step of K, each warp loads its fragments from shared memory and issues one
`mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}` per 16 x 8 tile it owns. Fragment layouts (PTX ISA,
"Matrix fragments for mma.m16n8k16"), with g = lane / 4 and q = lane % 4:

    A (16 x 16, row-major):  a0a1 = A[g][2q..2q+1]  a2a3 = A[g+8][2q..]  a4a5 = A[g][2q+8..]  a6a7 = A[g+8][2q+8..]
    B (16 x 8, "col"):       b0b1 = B[2q..2q+1][g]   b2b3 = B[2q+8..][g]
    C, D (16 x 8, f32):      c0 = C[g][2q]  c1 = C[g][2q+1]  c2 = C[g+8][2q]  c3 = C[g+8][2q+1]

Shared memory holds A as [BM][BK+8] and B as [BN][BK+8] (K contiguous), so each pair above is one
32-bit load. The accumulators are the thread's private `acc` row, element (mi * tiles_n + ni) * 4 + c,
which is where the loop IR of the phase puts the same sums.
"""

from __future__ import annotations

from llvmlite import ir

from ir.dtypes import DType
from targets.cpu.codegen.helpers import const_i64, declare_function
from targets.cpu.codegen.lltypes import F16, F32, I32, storage_type
from targets.gpu.mapping import MMA_K, MMA_M, MMA_N
from targets.gpu.schedules.matmul import MmaPhase
from targets.gpu.simt import SimtError

_INTRINSICS = {DType.BF16: ("llvm.nvvm.mma.m16n8k16.row.col.bf16", I32),
               DType.F16: ("llvm.nvvm.mma.m16n8k16.row.col.f32.f32", ir.VectorType(F16, 2))}


def emit_mma_phase(emitter, phase: MmaPhase) -> None:  # emitter: GpuKernelEmitter
    if phase.threads != emitter.simt.block:
        raise SimtError(f"kernel {emitter.kernel.name}: the tensor-core phase needs every thread of the block")
    b = emitter.builder
    dtype = phase.shared_a.dtype
    name, pair = _INTRINSICS[dtype]
    result_type = ir.LiteralStructType([F32] * 4)
    mma = declare_function(b.module, name, result_type, [pair] * 6 + [F32] * 4)
    element = storage_type(dtype)
    thread = emitter.thread
    lane = b.and_(thread, const_i64(31))
    warp = b.lshr(thread, const_i64(5))
    group, quad = b.lshr(lane, const_i64(2)), b.and_(lane, const_i64(3))
    warp_row, warp_col = b.udiv(warp, const_i64(phase.warps_n)), b.urem(warp, const_i64(phase.warps_n))
    shared_a, shared_b = emitter.buffers[phase.shared_a.name], emitter.buffers[phase.shared_b.name]
    acc = emitter.buffers[phase.acc.name]
    stride = phase.shared_a.shape[1]  # BK + padding, the same for B

    def pair_at(ref, row: ir.Value, column: ir.Value) -> ir.Value:
        offset = b.add(b.mul(row, const_i64(stride)), column)
        pointer = b.gep(ref.pointer, [offset], inbounds=True, source_etype=element)
        return b.load(pointer, typ=pair, align=4)

    a_base = b.add(b.mul(warp_row, const_i64(MMA_M * phase.tiles_m)), group)
    b_base = b.add(b.mul(warp_col, const_i64(MMA_N * phase.tiles_n)), group)
    column0 = b.mul(quad, const_i64(2))
    for step in range(phase.bk // MMA_K):
        k0 = b.add(column0, const_i64(step * MMA_K))
        k8 = b.add(k0, const_i64(8))
        a_fragments = []
        for mi in range(phase.tiles_m):
            top = b.add(a_base, const_i64(mi * MMA_M))
            bottom = b.add(top, const_i64(8))
            a_fragments.append([pair_at(shared_a, top, k0), pair_at(shared_a, bottom, k0),
                                pair_at(shared_a, top, k8), pair_at(shared_a, bottom, k8)])
        b_fragments = []
        for ni in range(phase.tiles_n):
            column = b.add(b_base, const_i64(ni * MMA_N))
            b_fragments.append([pair_at(shared_b, column, k0), pair_at(shared_b, column, k8)])
        for mi in range(phase.tiles_m):
            for ni in range(phase.tiles_n):
                first = (mi * phase.tiles_n + ni) * 4
                slots = [b.gep(acc.pointer, [const_i64(first + c)], inbounds=True, source_etype=F32) for c in range(4)]
                sums = [b.load(slot, typ=F32, align=4) for slot in slots]
                result = b.call(mma, a_fragments[mi] + b_fragments[ni] + sums)
                for c, slot in enumerate(slots):
                    b.store(b.extract_value(result, c), slot, align=4)
