"""How Niche dtypes live in memory and in registers on the CPU.

Storage (memory) types: f32 float, f64 double, f16 half, bf16 i16 (the upper half of an f32, as
`ir.dtypes.round_bf16` defines), i8/i32/i64, bool i8 (numpy's one byte, 0 or 1).
Compute (register) types: f16 and bf16 compute in float, every result rounded to the storage
precision right after each operation (the reference interpreter's per-op rounding); bool is i1.
"""

from __future__ import annotations

from llvmlite import ir

from ir.dtypes import DType

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F16 = ir.HalfType()
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()

_STORAGE = {
    DType.F32: F32, DType.F64: F64, DType.F16: F16, DType.BF16: I16,
    DType.I8: I8, DType.I32: I32, DType.I64: I64, DType.BOOL: I8,
}
_COMPUTE = {
    DType.F32: F32, DType.F64: F64, DType.F16: F32, DType.BF16: F32,
    DType.I8: I8, DType.I32: I32, DType.I64: I64, DType.BOOL: I1,
}


def storage_type(dtype: DType) -> ir.Type:
    return _STORAGE[dtype]


def compute_type(dtype: DType) -> ir.Type:
    return _COMPUTE[dtype]


def is_rounded(dtype: DType) -> bool:
    """f16 and bf16: computed in f32 and rounded after every operation."""
    return dtype in (DType.F16, DType.BF16)


def scalar_type(typ: ir.Type) -> ir.Type:
    return typ.element if isinstance(typ, ir.VectorType) else typ


def lanes_of(value: ir.Value) -> int | None:
    return value.type.count if isinstance(value.type, ir.VectorType) else None


def with_lanes(typ: ir.Type, lanes: int | None) -> ir.Type:
    return typ if lanes is None else ir.VectorType(typ, lanes)


def is_float_type(typ: ir.Type) -> bool:
    return isinstance(scalar_type(typ), (ir.FloatType, ir.DoubleType, ir.HalfType))


def intrinsic_suffix(typ: ir.Type) -> str:
    """LLVM's overload suffix: f32, v16f32, i64, v8i1, p0, v8p0."""
    if isinstance(typ, ir.VectorType):
        return f"v{typ.count}{intrinsic_suffix(typ.element)}"
    if isinstance(typ, ir.PointerType):
        return "p0"
    if isinstance(typ, ir.FloatType):
        return "f32"
    if isinstance(typ, ir.DoubleType):
        return "f64"
    if isinstance(typ, ir.HalfType):
        return "f16"
    if isinstance(typ, ir.IntType):
        return f"i{typ.width}"
    raise TypeError(f"no intrinsic suffix for {typ}")
