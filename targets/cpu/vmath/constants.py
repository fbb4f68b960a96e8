"""Constants of the math routines, derived exactly (with fractions) rather than typed in as decimals.

Cody-Waite splits write a constant C as C1 + C2 + C3 where C1 and C2 carry few enough significant
bits that n * C1 and n * C2 are exact in floating point for every n the range reduction produces; the
reduced argument x - n*C1 - n*C2 - n*C3 is then accurate to about the last part's precision. Series
coefficients are exact rationals (1/k!, 2/(2k+1)) rounded once to the working precision.
"""

from __future__ import annotations

import math
from fractions import Fraction

# 60 significant digits; the splits below use at most ~110 bits of them.
PI = Fraction("3.14159265358979323846264338327950288419716939937510582097494")
LN2 = Fraction("0.693147180559945309417232121458176568075500134360255254120680")


def _truncate(value: Fraction, bits: int) -> float:
    """`value` truncated toward zero to `bits` significant bits (exactly representable as a double)."""
    if value == 0:
        return 0.0
    exponent = math.floor(math.log2(abs(float(value))))
    scale = Fraction(2) ** (bits - 1 - exponent)
    truncated = Fraction(math.floor(value * scale)) / scale
    return float(truncated)


def split(value: Fraction, bits: int, parts: int) -> tuple[float, ...]:
    """`parts` doubles summing to `value`; all but the last have at most `bits` significant bits."""
    chunks = []
    rest = value
    for _ in range(parts - 1):
        chunk = _truncate(rest, bits)
        chunks.append(chunk)
        rest -= Fraction(chunk)
    chunks.append(float(rest))
    return tuple(chunks)


def taylor(first: int, last: int, step: int = 1, sign_alternates: bool = False) -> list[float]:
    """Coefficients 1/k! for k = first, first+step, ..., last (alternating signs if asked)."""
    result = []
    for position, k in enumerate(range(first, last + 1, step)):
        value = 1.0 / math.factorial(k)
        result.append(-value if sign_alternates and position % 2 else value)
    return result


LOG2E = float(1 / LN2)
TWO_OVER_PI = float(2 / PI)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
SQRT2 = math.sqrt(2.0)
# ln 2 for exp's reduction x - n ln2: |n| <= 1100 (11 bits) in f64, <= 160 in f32 arithmetic.
LN2_SPLIT_F64 = split(LN2, 42, 2)
LN2_SPLIT_F32 = split(LN2, 16, 2)
# pi/2 for sin/cos (reduced in f64 for both precisions): n*C1 and n*C2 exact for |n| < 2^20.
PIO2_SPLIT = split(PI / 2, 33, 3)
