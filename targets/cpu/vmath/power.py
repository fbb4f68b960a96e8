"""pow(x, y) with numpy's (C99's) special cases, for f32 and f64.

|x|^y = exp(y log|x|), computed in f64 for both precisions: for f32 the result is then correctly
rounded in almost every case; in f64 the relative error grows like |y log x| * 2^-53 (at most about
1e-13 where the result is finite). The sign and the special cases are selects:
x^0 = 1 and 1^y = 1 (even for NaN), (-1)^(+-inf) = 1, a negative finite base with a non-integer
exponent is NaN, a negative base with an odd integer exponent negates (so (-0)^3 = -0, (-0)^-1 = -inf).
"""

from __future__ import annotations

from llvmlite import ir

from targets.cpu.codegen.lltypes import F64, scalar_type
from targets.cpu.vmath.exp_log import exp, log
from targets.cpu.vmath.ops import MathOps


def pow_(ops: MathOps, x: ir.Value, y: ir.Value) -> ir.Value:
    b = ops.b
    wx = ops.convert(x, F64)
    wy = ops.convert(y, F64)
    magnitude = exp(ops, ops.mul(wy, log(ops, ops.fabs(wx))))
    y_integer = ops.eq(ops.floor(wy), wy)
    half = ops.mul(wy, ops.c(wy, 0.5))
    y_odd = ops.and_(y_integer, b.fcmp_unordered("!=", ops.floor(half), half))
    negative_base = b.icmp_signed("<", ops.bits(wx), ops.ci(wx, 0))  # sign bit set, -0 included
    result = ops.select(ops.and_(negative_base, y_odd), ops.neg(magnitude), magnitude)
    finite_negative = ops.and_(ops.lt(wx, ops.c(wx, 0.0)), ops.gt(wx, ops.c(wx, float("-inf"))))
    result = ops.select(ops.and_(finite_negative, ops.not_(y_integer)), ops.c(wx, float("nan")), result)
    one = ops.c(wx, 1.0)
    unit_base_infinite_power = ops.and_(ops.eq(ops.fabs(wx), one), ops.eq(ops.fabs(wy), ops.c(wy, float("inf"))))
    is_one = ops.or_(ops.or_(ops.eq(wy, ops.c(wy, 0.0)), ops.eq(wx, one)), unit_base_infinite_power)
    result = ops.select(is_one, one, result)
    return ops.convert(result, scalar_type(x.type))
