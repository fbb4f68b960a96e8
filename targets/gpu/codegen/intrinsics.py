"""The NVVM intrinsics the GPU code generator calls: special registers, the block barrier, warp shuffles.

    llvm.nvvm.read.ptx.sreg.tid.x / ctaid.x          threadIdx.x / blockIdx.x (i32)
    llvm.nvvm.barrier.cta.sync.aligned.all(i32 0)   bar.sync 0: every thread of the block waits
    llvm.nvvm.shfl.sync.bfly.i32(mask, v, lanemask, 31)   v of lane (lane ^ lanemask), the whole warp

Shuffles move 32-bit words; wider values travel as several words, narrower ones widened first.
"""

from __future__ import annotations

from llvmlite import ir

from targets.cpu.codegen.helpers import declare_function
from targets.cpu.codegen.lltypes import I32, I64, VOID

FULL_MASK = -1  # all 32 lanes of the warp take part


def special_register(builder: ir.IRBuilder, name: str) -> ir.Value:
    """A PTX special register (`tid.x`, `ctaid.x`, ...) as an i64."""
    function = declare_function(builder.module, f"llvm.nvvm.read.ptx.sreg.{name}", I32, [])
    return builder.zext(builder.call(function, []), I64)


def barrier(builder: ir.IRBuilder) -> None:
    function = declare_function(builder.module, "llvm.nvvm.barrier.cta.sync.aligned.all", VOID, [I32])
    builder.call(function, [ir.Constant(I32, 0)])


def shuffle_xor(builder: ir.IRBuilder, value: ir.Value, lane_mask: int) -> ir.Value:
    """`value` as held by lane (this lane ^ lane_mask), for a value of any scalar type up to 64 bits."""
    function = declare_function(builder.module, "llvm.nvvm.shfl.sync.bfly.i32", I32, [I32, I32, I32, I32])
    typ = value.type
    bits = typ.width if isinstance(typ, ir.IntType) else {"half": 16, "float": 32, "double": 64}[str(typ)]
    word_type = ir.IntType(bits)
    word = value if isinstance(typ, ir.IntType) else builder.bitcast(value, word_type)

    def shuffle(word32: ir.Value) -> ir.Value:
        return builder.call(function, [ir.Constant(I32, FULL_MASK), word32, ir.Constant(I32, lane_mask),
                                       ir.Constant(I32, 31)])

    if bits <= 32:
        wide = word if bits == 32 else builder.zext(word, I32)
        moved = shuffle(wide)
        moved = moved if bits == 32 else builder.trunc(moved, word_type)
    else:
        low = shuffle(builder.trunc(word, I32))
        high = shuffle(builder.trunc(builder.lshr(word, ir.Constant(word_type, 32)), I32))
        moved = builder.or_(builder.zext(low, word_type), builder.shl(builder.zext(high, word_type),
                                                                        ir.Constant(word_type, 32)))
    return moved if isinstance(typ, ir.IntType) else builder.bitcast(moved, typ)
