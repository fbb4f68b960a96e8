"""Type-generic arithmetic for the math routines: one code path for f32/f64, scalars and vectors.

Every method takes values of one floating type (scalar or vector) and builds the matching constants
and integer views itself, so a routine like `exp` is written once. Nothing here branches: selects
replace control flow, which keeps the code valid lane by lane in a vector.
"""

from __future__ import annotations

from typing import Sequence

from llvmlite import ir

from targets.cpu.codegen.helpers import call_binary_intrinsic, call_unary_intrinsic, constant, intrinsic
from targets.cpu.codegen.lltypes import F64, scalar_type, with_lanes

CONTRACT = ("contract",)


class MathOps:
    def __init__(self, builder: ir.IRBuilder, has_fma: bool) -> None:
        self.b = builder
        self.has_fma = has_fma

    # -- types ---------------------------------------------------------------------------------

    @staticmethod
    def lanes(value: ir.Value) -> int | None:
        return value.type.count if isinstance(value.type, ir.VectorType) else None

    def float_type(self, like: ir.Value, element: ir.Type) -> ir.Type:
        return with_lanes(element, self.lanes(like))

    def int_type(self, like: ir.Value) -> ir.Type:
        """The integer type of the same width (i32 for f32, i64 for f64), same lane count."""
        bits = 64 if scalar_type(like.type) == F64 else 32
        return with_lanes(ir.IntType(bits), self.lanes(like))

    @staticmethod
    def is_f64(value: ir.Value) -> bool:
        return scalar_type(value.type) == F64

    def c(self, like: ir.Value, value: float) -> ir.Constant:
        """A float constant of `like`'s type."""
        return constant(like.type, value)

    def ci(self, like: ir.Value, value: int) -> ir.Constant:
        """An integer constant of the same-width integer type as `like`."""
        return constant(self.int_type(like), value)

    # -- float arithmetic ----------------------------------------------------------------------

    def add(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fadd(a, b, flags=CONTRACT)

    def sub(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fsub(a, b, flags=CONTRACT)

    def mul(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fmul(a, b, flags=CONTRACT)

    def div(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fdiv(a, b)

    def neg(self, a: ir.Value) -> ir.Value:
        return self.b.fneg(a)

    def fma(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        """a * b + c, fused (one rounding) where the host has FMA."""
        if self.has_fma:
            function = intrinsic(self.b.module, "llvm.fma", a.type, [a.type] * 3)
            return self.b.call(function, [a, b, c])
        return self.add(self.mul(a, b), c)

    def poly(self, x: ir.Value, coefficients: Sequence[float]) -> ir.Value:
        """c0 + c1 x + c2 x^2 + ... by Horner's rule with FMAs."""
        result = self.c(x, coefficients[-1])
        for coefficient in reversed(coefficients[:-1]):
            result = self.fma(result, x, self.c(x, coefficient))
        return result

    def fabs(self, a: ir.Value) -> ir.Value:
        return call_unary_intrinsic(self.b, "llvm.fabs", a)

    def sqrt(self, a: ir.Value) -> ir.Value:
        return call_unary_intrinsic(self.b, "llvm.sqrt", a)

    def floor(self, a: ir.Value) -> ir.Value:
        return call_unary_intrinsic(self.b, "llvm.floor", a)

    def round_even(self, a: ir.Value) -> ir.Value:
        """Round to the nearest integer, ties to even (one vroundps/vrndscaleps)."""
        return call_unary_intrinsic(self.b, "llvm.roundeven", a)

    def copysign(self, magnitude: ir.Value, sign: ir.Value) -> ir.Value:
        return call_binary_intrinsic(self.b, "llvm.copysign", magnitude, sign)

    def min(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """min for non-NaN operands (NaN handling is the caller's)."""
        return self.select(self.lt(a, b), a, b)

    def max(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.select(self.gt(a, b), a, b)

    # -- comparisons and selection -------------------------------------------------------------

    def lt(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fcmp_ordered("<", a, b)

    def le(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fcmp_ordered("<=", a, b)

    def gt(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fcmp_ordered(">", a, b)

    def eq(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fcmp_ordered("==", a, b)

    def is_nan(self, a: ir.Value) -> ir.Value:
        return self.b.fcmp_unordered("uno", a, a)

    def select(self, condition: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.select(condition, a, b)

    def and_(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.and_(a, b)

    def or_(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.or_(a, b)

    def not_(self, a: ir.Value) -> ir.Value:
        return self.b.xor(a, constant(a.type, 1))

    # -- integer views -------------------------------------------------------------------------

    def bits(self, a: ir.Value) -> ir.Value:
        return self.b.bitcast(a, self.int_type(a))

    def from_bits(self, bits: ir.Value, like: ir.Value) -> ir.Value:
        return self.b.bitcast(bits, like.type)

    def to_int(self, a: ir.Value) -> ir.Value:
        """Convert an integral float (|a| < 2^31 resp. 2^63) to the same-width integer."""
        return self.b.fptosi(a, self.int_type(a))

    def to_float(self, i: ir.Value, like: ir.Value) -> ir.Value:
        return self.b.sitofp(i, like.type)

    def pow2(self, n: ir.Value, like: ir.Value) -> ir.Value:
        """2^n as a float of `like`'s type, for an integer n in the normal exponent range."""
        if self.is_f64(like):
            bias, shift = 1023, 52
        else:
            bias, shift = 127, 23
        biased = self.b.add(n, self.ci(like, bias))
        return self.from_bits(self.b.shl(biased, self.ci(like, shift)), like)

    def convert(self, a: ir.Value, element: ir.Type) -> ir.Value:
        """fpext/fptrunc between f32 and f64 (same lane count)."""
        target = self.float_type(a, element)
        if a.type == target:
            return a
        if element == F64:
            return self.b.fpext(a, target)
        return self.b.fptrunc(a, target)

