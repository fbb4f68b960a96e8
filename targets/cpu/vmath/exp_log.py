"""exp, expm1 (on a small range) and log, for f32 and f64 values (scalars or vectors).

exp(x): n = round(x / ln2), r = x - n ln2 (two-part ln2, |r| <= ln2/2), e^r by its Taylor polynomial
(degree 7 in f32, 13 in f64: truncation below 0.1 ulp), times 2^n built in the exponent bits. 2^n is
applied as 2^(n>>1) * 2^(n - n>>1) so results down in the subnormal range and up to overflow come
out right; x is clamped first so that overflow gives inf and underflow 0, and NaN passes through.

log(x): x = m 2^e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s) with s = (m-1)/(m+1), |s| <=
0.172, from the odd series 2(s + s^3/3 + ...) (to s^9 in f32, s^23 in f64) arranged as f - s(f - R)
with f = m - 1. Subnormal inputs are
scaled by 2^24 (2^54) first. log(0) = -inf, log(x<0) = NaN, log(inf) = inf, NaN stays NaN.
"""

from __future__ import annotations

from llvmlite import ir

from targets.cpu.vmath.constants import LN2, LN2_SPLIT_F32, LN2_SPLIT_F64, LOG2E, SQRT2, taylor
from targets.cpu.vmath.ops import MathOps

_EXP_DEGREE = {False: 7, True: 13}  # by is_f64
_EXPM1_DEGREE = {False: 8, True: 15}
_LOG_TERMS = {False: 5, True: 12}  # odd-series terms s, s^3, ..., s^(2k-1)
# Clamp range: beyond it exp is inf (above) or 0 (below) in the type.
_EXP_RANGE = {False: (-104.0, 89.0), True: (-746.0, 710.0)}


def exp(ops: MathOps, x: ir.Value) -> ir.Value:
    f64 = ops.is_f64(x)
    low, high = _EXP_RANGE[f64]
    clamped = ops.min(ops.max(x, ops.c(x, low)), ops.c(x, high))
    n = ops.round_even(ops.mul(clamped, ops.c(x, LOG2E)))
    ln2_hi, ln2_lo = LN2_SPLIT_F64 if f64 else LN2_SPLIT_F32
    r = ops.fma(ops.neg(n), ops.c(x, ln2_hi), clamped)
    r = ops.fma(ops.neg(n), ops.c(x, ln2_lo), r)
    p = ops.poly(r, taylor(0, _EXP_DEGREE[f64]))
    k = ops.to_int(n)
    half = ops.b.ashr(k, ops.ci(x, 1))
    rest = ops.b.sub(k, half)
    result = ops.mul(ops.mul(p, ops.pow2(half, x)), ops.pow2(rest, x))
    return ops.select(ops.is_nan(x), x, result)


def expm1_small(ops: MathOps, x: ir.Value) -> ir.Value:
    """e^x - 1 for |x| <= ln2/2 (Taylor, no cancellation)."""
    f64 = ops.is_f64(x)
    coefficients = taylor(1, _EXPM1_DEGREE[f64])
    return ops.mul(x, ops.poly(x, coefficients))


def expm1(ops: MathOps, x: ir.Value) -> ir.Value:
    """e^x - 1: the small-range series near 0, exp(x) - 1 elsewhere (cancellation there costs < 2 bits)."""
    small = ops.lt(ops.fabs(x), ops.c(x, float(LN2) / 2))
    return ops.select(small, expm1_small(ops, x), ops.sub(exp(ops, x), ops.c(x, 1.0)))


def log(ops: MathOps, x: ir.Value) -> ir.Value:
    f64 = ops.is_f64(x)
    mantissa_bits, bias = (52, 1023) if f64 else (23, 127)
    smallest_normal = 2.0 ** (1 - bias)
    subnormal_scale = 54 if f64 else 24
    b = ops.b
    tiny = ops.lt(x, ops.c(x, smallest_normal))
    scaled = ops.select(tiny, ops.mul(x, ops.c(x, 2.0 ** subnormal_scale)), x)
    bits = ops.bits(scaled)
    exponent = b.sub(b.lshr(bits, ops.ci(x, mantissa_bits)), ops.ci(x, bias))
    exponent = b.sub(exponent, b.select(tiny, ops.ci(x, subnormal_scale), ops.ci(x, 0)))
    mantissa_mask = (1 << mantissa_bits) - 1
    m_bits = b.or_(b.and_(bits, ops.ci(x, mantissa_mask)), ops.ci(x, bias << mantissa_bits))
    m = ops.from_bits(m_bits, x)  # in [1, 2)
    big = ops.gt(m, ops.c(x, SQRT2))
    m = ops.select(big, ops.mul(m, ops.c(x, 0.5)), m)
    exponent = b.add(exponent, b.zext(big, exponent.type))
    f = ops.sub(m, ops.c(x, 1.0))  # exact
    s = ops.div(f, ops.add(f, ops.c(x, 2.0)))
    z = ops.mul(s, s)
    # 2 atanh(s) = 2s + s R with R = 2z/3 + 2z^2/5 + ...; and 2s = f - s f, so log m = f - s (f - R):
    # the rounding errors of s and R only touch the small correction s (f - R).
    r = ops.mul(z, ops.poly(z, [2.0 / (2 * k + 1) for k in range(1, _LOG_TERMS[f64])]))
    log_m = ops.sub(f, ops.mul(s, ops.sub(f, r)))
    e = ops.to_float(exponent, x)
    ln2_hi, ln2_lo = (float(LN2), float(LN2 - type(LN2)(float(LN2)))) if f64 else LN2_SPLIT_F32
    result = ops.fma(e, ops.c(x, ln2_hi), ops.fma(e, ops.c(x, ln2_lo), log_m))
    result = ops.select(ops.eq(x, ops.c(x, float("inf"))), x, result)
    result = ops.select(ops.eq(x, ops.c(x, 0.0)), ops.c(x, float("-inf")), result)
    result = ops.select(ops.lt(x, ops.c(x, 0.0)), ops.c(x, float("nan")), result)
    return ops.select(ops.is_nan(x), x, result)
