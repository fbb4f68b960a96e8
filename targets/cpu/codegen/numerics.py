"""The meaning of each loop-IR arithmetic op as LLVM instructions, matching the reference interpreter.

Every function works on scalars and on vectors alike (LLVM's instructions and the intrinsics used are
lane-wise). Values are in their compute types (`lltypes.compute_type`): f16/bf16 arrive as f32 and are
rounded back after each operation (`conversions.round_to`), so a chain of f16 ops rounds like numpy's
float16. Conversions (casts, memory, constants) are in `conversions`.

numpy's rules, spelled out where LLVM's differ:
* integer + - * wrap; `floordiv`/`mod` round toward minus infinity, and x // 0 = x % 0 = 0 (numpy's
  result, with its warning); MIN // -1 wraps (LLVM's sdiv would trap, so -1 is special-cased).
* float `maximum`/`minimum` propagate NaN; float `floordiv`/`mod` follow numpy's divmod (fmod, then
  the sign fix-up); comparisons are ordered except `!=` (NaN != NaN is true).
* `+ - *` carry LLVM's `contract` flag, so a*b + c may become one FMA (error below one rounding).
"""

from __future__ import annotations

from llvmlite import ir

from ir.dtypes import DType
from targets.cpu.codegen.conversions import round_to
from targets.cpu.codegen.helpers import call_binary_intrinsic, call_unary_intrinsic, constant
from targets.cpu.vmath.functions import MATH_FUNCTIONS, emit_math

CONTRACT = ("contract",)


# -- unary --------------------------------------------------------------------------------------


def unary(b: ir.IRBuilder, op: str, x: ir.Value, dtype: DType, has_fma: bool) -> ir.Value:
    if dtype.is_float:
        return round_to(b, _float_unary(b, op, x, has_fma), dtype)
    zero = constant(x.type, 0)
    if op == "neg":
        return b.sub(zero, x)
    if op == "abs":
        return b.select(b.icmp_signed("<", x, zero), b.sub(zero, x), x)
    if op == "relu":
        return b.select(b.icmp_signed(">", x, zero), x, zero)
    if op == "logical_not":
        return b.xor(x, constant(x.type, 1))
    raise NotImplementedError(f"{op} on {dtype}")


def _float_unary(b: ir.IRBuilder, op: str, x: ir.Value, has_fma: bool) -> ir.Value:
    if op == "neg":
        return b.fneg(x)
    if op == "abs":
        return call_unary_intrinsic(b, "llvm.fabs", x)
    if op == "relu":  # max(x, 0) with NaN propagating
        return b.select(b.fcmp_ordered("<", x, constant(x.type, 0.0)), constant(x.type, 0.0), x)
    if op == "sqrt":
        return call_unary_intrinsic(b, "llvm.sqrt", x)
    if op == "rsqrt":  # numpy: reciprocal(sqrt(x)), two roundings
        return b.fdiv(constant(x.type, 1.0), call_unary_intrinsic(b, "llvm.sqrt", x))
    if op in MATH_FUNCTIONS:
        return emit_math(b, op, [x], has_fma)
    raise NotImplementedError(f"{op} on floats")


# -- binary -------------------------------------------------------------------------------------


def binary(b: ir.IRBuilder, op: str, x: ir.Value, y: ir.Value, dtype: DType, has_fma: bool) -> ir.Value:
    """An arithmetic or logical op on two values of `dtype` (comparisons: see `compare`)."""
    if dtype.is_float:
        return round_to(b, _float_binary(b, op, x, y, has_fma), dtype)
    if dtype.is_bool:
        if op in ("logical_and", "mul", "minimum"):
            return b.and_(x, y)
        if op in ("logical_or", "add", "maximum"):
            return b.or_(x, y)
        raise NotImplementedError(f"{op} on bool")
    return _int_binary(b, op, x, y)


def _float_binary(b: ir.IRBuilder, op: str, x: ir.Value, y: ir.Value, has_fma: bool) -> ir.Value:
    if op == "add":
        return b.fadd(x, y, flags=CONTRACT)
    if op == "sub":
        return b.fsub(x, y, flags=CONTRACT)
    if op == "mul":
        return b.fmul(x, y, flags=CONTRACT)
    if op == "div":
        return b.fdiv(x, y)
    if op in ("maximum", "minimum"):
        better = b.fcmp_ordered(">" if op == "maximum" else "<", x, y)
        chosen = b.select(better, x, y)  # NaN in y: compare is false -> y
        return b.select(b.fcmp_unordered("uno", x, x), x, chosen)
    if op == "pow":
        return _pow(b, x, y, has_fma)
    if op in ("floordiv", "mod"):
        return _float_divmod(b, x, y, op)
    raise NotImplementedError(f"{op} on floats")


def _pow(b: ir.IRBuilder, x: ir.Value, y: ir.Value, has_fma: bool) -> ir.Value:
    """x ** y; small integer constant exponents become multiplications (exactly rounded for 2)."""
    if isinstance(y, ir.Constant) and not isinstance(y.type, ir.VectorType):
        exponent = y.constant
        if exponent == 1.0:
            return x
        if exponent == 2.0:
            return b.fmul(x, x)
        if exponent == -1.0:
            return b.fdiv(constant(x.type, 1.0), x)
    return emit_math(b, "pow", [x, y], has_fma)


def _float_divmod(b: ir.IRBuilder, x: ir.Value, y: ir.Value, op: str) -> ir.Value:
    """numpy's npy_divmod: mod = fmod(x, y) moved to y's sign; floordiv = (x - mod) / y, made integral."""
    zero = constant(x.type, 0.0)
    fmod = b.frem(x, y)
    fix = b.and_(b.fcmp_ordered("!=", fmod, zero),
                 b.icmp_unsigned("!=", b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", fmod, zero)))
    mod = b.select(fix, b.fadd(fmod, y), fmod)
    if op == "mod":
        # numpy: a zero remainder takes the divisor's sign; x % 0 is NaN (fmod gives NaN already)
        return b.select(b.fcmp_ordered("==", mod, zero), call_binary_intrinsic(b, "llvm.copysign", zero, y), mod)
    quotient = b.fdiv(b.fsub(x, fmod), y)
    quotient = b.select(fix, b.fsub(quotient, constant(x.type, 1.0)), quotient)
    floor = call_unary_intrinsic(b, "llvm.floor", quotient)
    floor = b.select(b.fcmp_ordered(">", b.fsub(quotient, floor), constant(x.type, 0.5)),
                     b.fadd(floor, constant(x.type, 1.0)), floor)
    # numpy: x // 0 is x / 0 (inf or nan); a zero quotient takes the sign of x / y
    floor = b.select(b.fcmp_ordered("==", floor, zero),
                     call_binary_intrinsic(b, "llvm.copysign", zero, b.fdiv(x, y)), floor)
    return b.select(b.fcmp_ordered("==", y, zero), b.fdiv(x, y), floor)


def _int_binary(b: ir.IRBuilder, op: str, x: ir.Value, y: ir.Value) -> ir.Value:
    if op == "add":
        return b.add(x, y)
    if op == "sub":
        return b.sub(x, y)
    if op == "mul":
        return b.mul(x, y)
    if op == "maximum":
        return b.select(b.icmp_signed(">", x, y), x, y)
    if op == "minimum":
        return b.select(b.icmp_signed("<", x, y), x, y)
    if op in ("floordiv", "mod"):
        return _int_divmod(b, x, y, op)
    if op in ("logical_and", "logical_or"):
        return (b.and_ if op == "logical_and" else b.or_)(x, y)
    raise NotImplementedError(f"{op} on integers")


def _int_divmod(b: ir.IRBuilder, x: ir.Value, y: ir.Value, op: str) -> ir.Value:
    zero = constant(y.type, 0)
    minus_one = constant(y.type, -1)
    y_zero = b.icmp_signed("==", y, zero)
    y_minus_one = b.icmp_signed("==", y, minus_one)
    safe = b.select(b.or_(y_zero, y_minus_one), constant(y.type, 1), y)  # sdiv never traps
    quotient = b.sdiv(x, safe)
    remainder = b.srem(x, safe)
    adjust = b.and_(b.icmp_signed("!=", remainder, zero),
                    b.icmp_signed("<", b.xor(remainder, y), zero))
    if op == "floordiv":
        result = b.select(adjust, b.sub(quotient, constant(y.type, 1)), quotient)
        result = b.select(y_minus_one, b.sub(zero, x), result)
    else:
        result = b.select(adjust, b.add(remainder, y), remainder)
        result = b.select(y_minus_one, zero, result)
    return b.select(y_zero, zero, result)


# -- comparisons --------------------------------------------------------------------------------

_FLOAT_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def compare(b: ir.IRBuilder, op: str, x: ir.Value, y: ir.Value, dtype: DType) -> ir.Value:
    symbol = _FLOAT_COMPARE[op]
    if dtype.is_float:
        if op == "ne":
            return b.fcmp_unordered("!=", x, y)
        return b.fcmp_ordered(symbol, x, y)
    if dtype.is_bool:
        return b.icmp_unsigned(symbol, x, y)
    return b.icmp_signed(symbol, x, y)
