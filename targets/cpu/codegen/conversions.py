"""Conversions between loop-IR types in LLVM: casts, memory <-> register forms, constants, rounding.

Storage (memory) forms and compute (register) forms are described in `lltypes`. f16 and bf16 compute
in f32: `round_to` rounds an f32 result to their precision (f16 through `fptrunc`/`fpext`, which
round to nearest even; bf16 with the same bit arithmetic as `ir.dtypes.round_bf16`). Casts follow
the interpreter (`ir.interpreter.evaluate_node`): anything -> bool is "!= 0" (NaN is true); float ->
int clips `nan_to_num(x)` to the integer range in the source precision and truncates (`_float_to_int`);
int -> int wraps (truncation) or sign-extends.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from ir.dtypes import DType, round_bf16
from targets.cpu.codegen.helpers import constant, intrinsic
from targets.cpu.codegen.lltypes import F16, I16, I32, compute_type, is_rounded, scalar_type, storage_type, with_lanes


def _lanes(value: ir.Value) -> int | None:
    return value.type.count if isinstance(value.type, ir.VectorType) else None


def _typed(value: ir.Value, element: ir.Type) -> ir.Type:
    return with_lanes(element, _lanes(value))


def round_to(b: ir.IRBuilder, value: ir.Value, dtype: DType) -> ir.Value:
    """Round an f32 compute value to f16/bf16 precision (identity for other dtypes)."""
    if dtype is DType.F16:
        return b.fpext(b.fptrunc(value, _typed(value, F16)), value.type)
    if dtype is DType.BF16:
        return _round_bf16(b, value)
    return value


def _round_bf16(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """Round to nearest even on the upper 16 bits of the f32 pattern; NaN becomes the quiet NaN."""
    int_type = _typed(value, I32)
    bits = b.bitcast(value, int_type)
    lsb = b.and_(b.lshr(bits, constant(int_type, 16)), constant(int_type, 1))
    rounded = b.add(bits, b.add(lsb, constant(int_type, 0x7FFF)))
    rounded = b.and_(rounded, constant(int_type, 0xFFFF0000))
    is_nan = b.fcmp_unordered("uno", value, value)
    rounded = b.select(is_nan, constant(int_type, 0x7FC00000), rounded)
    return b.bitcast(rounded, value.type)


def from_storage(b: ir.IRBuilder, raw: ir.Value, dtype: DType) -> ir.Value:
    """A loaded storage value -> its compute value."""
    if dtype is DType.F16:
        return b.fpext(raw, _typed(raw, compute_type(dtype)))
    if dtype is DType.BF16:
        wide = b.shl(b.zext(raw, _typed(raw, I32)), constant(_typed(raw, I32), 16))
        return b.bitcast(wide, _typed(raw, compute_type(dtype)))
    if dtype is DType.BOOL:
        return b.icmp_unsigned("!=", raw, constant(raw.type, 0))
    return raw


def to_storage(b: ir.IRBuilder, value: ir.Value, dtype: DType) -> ir.Value:
    """A compute value (already rounded for f16/bf16) -> the value to store."""
    if dtype is DType.F16:
        return b.fptrunc(value, _typed(value, F16))
    if dtype is DType.BF16:
        bits = b.bitcast(value, _typed(value, I32))
        return b.trunc(b.lshr(bits, constant(bits.type, 16)), _typed(value, I16))
    if dtype is DType.BOOL:
        return b.zext(value, _typed(value, storage_type(dtype)))
    return value


def constant_value(dtype: DType, value: int | float | bool) -> ir.Constant:
    """A loop-IR constant in its compute type (f16/bf16 values rounded to their precision)."""
    if dtype is DType.F16:
        value = float(np.float16(value))
    elif dtype is DType.BF16:
        value = float(round_bf16(np.array([value], dtype=np.float32))[0])
    elif dtype is DType.BOOL:
        value = 1 if value else 0
    elif dtype.is_int:
        bits = dtype.bits
        value = int(value) & ((1 << bits) - 1)
        if value >= 1 << (bits - 1):
            value -= 1 << bits
    return ir.Constant(compute_type(dtype), value)


# -- casts --------------------------------------------------------------------------------------


def cast(b: ir.IRBuilder, value: ir.Value, source: DType, target: DType) -> ir.Value:
    if source == target:
        return value
    target_type = _typed(value, compute_type(target))
    if target.is_bool:
        zero = constant(value.type, 0.0 if source.is_float else 0)
        if source.is_float:
            return b.fcmp_unordered("!=", value, zero)
        return b.icmp_unsigned("!=", value, zero)
    if source.is_bool:
        return b.uitofp(value, target_type) if target.is_float else b.zext(value, target_type)
    if source.is_float and target.is_float:
        if value.type == target_type:
            converted = value
        elif _width(value.type) < _width(target_type):
            converted = b.fpext(value, target_type)
        else:
            converted = b.fptrunc(value, target_type)
        return round_to(b, converted, target) if is_rounded(target) else converted
    if source.is_float:
        return _float_to_int(b, value, source, target, target_type)
    if target.is_float:
        return round_to(b, b.sitofp(value, target_type), target)
    if _width(value.type) < _width(target_type):
        return b.sext(value, target_type)
    if _width(value.type) > _width(target_type):
        return b.trunc(value, target_type)
    return value


def _float_to_int(b: ir.IRBuilder, value: ir.Value, source: DType, target: DType, target_type: ir.Type) -> ir.Value:
    """The interpreter's float -> int: clip(nan_to_num(x), int min, int max) in the source precision,
    then truncation; a clipped value that rounded up to 2^(bits-1) converts to INT_MIN (x86's
    out-of-range result, which numpy returns on this platform)."""
    container = np.float16 if source is DType.F16 else np.float64 if source is DType.F64 else np.float32
    finite = float(np.finfo(container).max)
    info = np.iinfo(target.numpy)
    with np.errstate(over="ignore"):  # i32/i64 limits are inf in f16
        low, high = float(container(info.min)), float(container(info.max))
    clean = b.select(b.fcmp_unordered("uno", value, value), constant(value.type, 0.0), value)
    for bound, keep in ((-finite, ">"), (finite, "<"), (low, ">"), (high, "<")):
        limit = constant(value.type, bound)
        clean = b.select(b.fcmp_ordered(keep, clean, limit), clean, limit)
    function = intrinsic(b.module, "llvm.fptosi.sat", target_type, [value.type], [target_type, value.type])
    result = b.call(function, [clean])
    if high >= 2.0 ** (target.bits - 1):
        overflow = b.fcmp_ordered(">=", clean, constant(value.type, 2.0 ** (target.bits - 1)))
        result = b.select(overflow, constant(target_type, int(info.min)), result)
    return result


def _width(typ: ir.Type) -> int:
    element = scalar_type(typ)
    if isinstance(element, ir.IntType):
        return element.width
    return {"half": 16, "float": 32, "double": 64}[str(element)]
