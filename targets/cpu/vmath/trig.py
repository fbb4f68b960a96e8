"""sin and cos for f32 and f64.

Range reduction in f64 for both precisions: n = round(x * 2/pi), r = x - n*pi/2 with a three-part
Cody-Waite split of pi/2 (n*C1, n*C2 exact for |n| < 2^20), so the reduction is accurate for
|x| < 1.6e6; beyond that the error grows with |x| (numpy uses Payne-Hanek; see docs/targets/cpu.md).
On |r| <= pi/4 the Taylor polynomials of sin and cos (to r^11/r^12 in f32, r^19/r^20 in f64) are
below 0.1 ulp; the quadrant n mod 4 picks sin or cos of r and the sign. inf and NaN give NaN.
"""

from __future__ import annotations

from llvmlite import ir

from targets.cpu.codegen.helpers import constant
from targets.cpu.codegen.lltypes import F64, scalar_type
from targets.cpu.vmath.constants import PIO2_SPLIT, TWO_OVER_PI, taylor
from targets.cpu.vmath.ops import MathOps

_SIN_LAST = {False: 11, True: 19}  # the highest odd power in the sine polynomial
_COS_LAST = {False: 12, True: 20}


def _sin_poly(ops: MathOps, r: ir.Value, z: ir.Value, f64: bool) -> ir.Value:
    # r - r^3/3! + r^5/5! - ... = r * P(r^2)
    return ops.mul(r, ops.poly(z, taylor(1, _SIN_LAST[f64], 2, sign_alternates=True)))


def _cos_poly(ops: MathOps, z: ir.Value, f64: bool) -> ir.Value:
    return ops.poly(z, taylor(0, _COS_LAST[f64], 2, sign_alternates=True))


def _reduce(ops: MathOps, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(r, n mod 4 as i64 lanes) with r = x - n pi/2, returned in x's precision."""
    wide = ops.convert(x, F64)
    n = ops.round_even(ops.mul(wide, ops.c(wide, TWO_OVER_PI)))
    r = wide
    for part in PIO2_SPLIT:
        r = ops.fma(ops.neg(n), ops.c(wide, part), r)
    # n may be huge (or NaN for inf/NaN input, where r is NaN anyway): keep only what fits in i64.
    bounded = ops.select(ops.lt(ops.fabs(n), ops.c(n, 2.0 ** 52)), n, ops.c(n, 0.0))
    quadrant = ops.b.and_(ops.to_int(bounded), ops.ci(wide, 3))
    return ops.convert(r, scalar_type(x.type)), quadrant


def _sin_cos(ops: MathOps, x: ir.Value, cosine: bool) -> ir.Value:
    f64 = ops.is_f64(x)
    r, quadrant = _reduce(ops, x)
    z = ops.mul(r, r)
    s = _sin_poly(ops, r, z, f64)
    c = _cos_poly(ops, z, f64)
    b = ops.b
    if cosine:  # cos(x) = sin(x + pi/2): one quadrant further
        quadrant = b.add(quadrant, constant(quadrant.type, 1))
    zero = constant(quadrant.type, 0)
    swap = b.icmp_signed("!=", b.and_(quadrant, constant(quadrant.type, 1)), zero)
    negate = b.icmp_signed("!=", b.and_(quadrant, constant(quadrant.type, 2)), zero)
    value = ops.select(swap, c, s)
    return ops.select(negate, ops.neg(value), value)


def sin(ops: MathOps, x: ir.Value) -> ir.Value:
    return _sin_cos(ops, x, cosine=False)


def cos(ops: MathOps, x: ir.Value) -> ir.Value:
    return _sin_cos(ops, x, cosine=True)
