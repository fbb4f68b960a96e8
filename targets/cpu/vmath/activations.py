"""tanh, sigmoid, silu and gelu (tanh form), built on exp/expm1 without branches.

tanh(x) = sign(x) * t / (t + 2) with t = expm1(2|x|), |x| clamped where tanh rounds to 1 (9 in f32,
19.1 in f64); the expm1 series near 0 keeps small arguments accurate (tanh(x) ~ x).
sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) below, with e = exp(-|x|) (numpy's stable form,
NaN passes through). silu(x) = x * sigmoid(x). gelu uses 1 + tanh(z) = 2 sigmoid(2z):
gelu(x) = x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3)), one exp and one division, and no cancellation
for negative x (numpy's 0.5x(1 + tanh z) rounds those to 0; the difference is below 1e-30).
"""

from __future__ import annotations

from llvmlite import ir

from targets.cpu.vmath.constants import SQRT_2_OVER_PI
from targets.cpu.vmath.exp_log import exp, expm1
from targets.cpu.vmath.ops import MathOps

_TANH_SATURATION = {False: 9.0, True: 19.1}


def tanh(ops: MathOps, x: ir.Value) -> ir.Value:
    a = ops.min(ops.fabs(x), ops.c(x, _TANH_SATURATION[ops.is_f64(x)]))
    t = expm1(ops, ops.add(a, a))
    result = ops.copysign(ops.div(t, ops.add(t, ops.c(x, 2.0))), x)
    return ops.select(ops.is_nan(x), x, result)


def sigmoid(ops: MathOps, x: ir.Value) -> ir.Value:
    # numpy's stable form: e = exp(-|x|) never overflows; 1/(1+e) for x >= 0, e/(1+e) below.
    one = ops.c(x, 1.0)
    e = exp(ops, ops.neg(ops.fabs(x)))
    positive = ops.div(one, ops.add(one, e))
    return ops.select(ops.b.fcmp_ordered(">=", x, ops.c(x, 0.0)), positive, ops.mul(e, positive))


def silu(ops: MathOps, x: ir.Value) -> ir.Value:
    return ops.mul(x, sigmoid(ops, x))


def gelu(ops: MathOps, x: ir.Value) -> ir.Value:
    cube = ops.mul(ops.mul(x, x), x)
    inner = ops.fma(cube, ops.c(x, 0.044715), x)
    return ops.mul(x, sigmoid(ops, ops.mul(inner, ops.c(x, 2.0 * SQRT_2_OVER_PI))))
