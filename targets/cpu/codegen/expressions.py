"""Expression emission: one `match` over the loop-IR expression nodes, in scalar or vector mode.

In a vectorized loop a value is either a scalar (uniform across lanes: loop-invariant code stays
scalar and is broadcast only where it meets a vector) or a vector of the loop's lane count. The
numerics of each op live in `numerics`; loads in `memory`. One rewrite happens here: an f32/f64 vector
divided by a loop-invariant scalar is multiplied by the scalar's reciprocal, computed once (softmax's
normalisation; the two differ by at most one ulp, far inside the f32/f64 check tolerances).
"""

from __future__ import annotations

from llvmlite import ir

from ir.dtypes import DType
from ir.loops import COMPARE_OPS, Binary, Cast, Const, Expr, Load, Select, Unary, Var
from targets.cpu.codegen import conversions, numerics
from targets.cpu.codegen.access import substitute
from targets.cpu.codegen.helpers import iota, splat
from targets.cpu.codegen.lltypes import I64


class ExpressionEmitter:
    """Mixin of `FunctionEmitter`: needs `builder`, `env`, `vector`, `ctx` and `emit_load`."""

    def emit_expr(self, expr: Expr) -> ir.Value:
        match expr:
            case Const():
                return conversions.constant_value(expr.dtype, expr.value)
            case Var():
                return self._emit_var(expr)
            case Load():
                return self.emit_load(expr)
            case Unary():
                return self._emit_unary(expr)
            case Binary():
                return self._emit_binary(expr)
            case Select():
                return self._emit_select(expr)
            case Cast():
                return self._emit_cast(expr)
        raise TypeError(f"not a loop IR expression: {expr!r}")

    def _emit_var(self, expr: Var) -> ir.Value:
        try:
            return self.env[expr.name]
        except KeyError:
            raise KeyError(f"loop IR variable '{expr.name}' is used outside its loop or let") from None

    def _emit_unary(self, expr: Unary) -> ir.Value:
        operand = self.emit_expr(expr.operand)
        return numerics.unary(self.builder, expr.op, operand, expr.operand.dtype, self.ctx.has_fma)

    def _emit_binary(self, expr: Binary) -> ir.Value:
        left, right = self.emit_expr(expr.left), self.emit_expr(expr.right)
        dtype = expr.left.dtype
        if expr.op == "div" and dtype in (DType.F32, DType.F64) and _is_vector(left) and not _is_vector(right):
            # vector / loop-invariant scalar: one division outside the loop, a multiply per vector
            # (softmax's normalisation); the result differs from the division by at most one ulp.
            one = conversions.constant_value(dtype, 1.0)
            reciprocal = numerics.binary(self.builder, "div", one, right, dtype, self.ctx.has_fma)
            left, reciprocal = self.unify(left, reciprocal)
            return numerics.binary(self.builder, "mul", left, reciprocal, dtype, self.ctx.has_fma)
        left, right = self.unify(left, right)
        if expr.op in COMPARE_OPS:
            return numerics.compare(self.builder, expr.op, left, right, dtype)
        return numerics.binary(self.builder, expr.op, left, right, dtype, self.ctx.has_fma)

    def _emit_select(self, expr: Select) -> ir.Value:
        cond = self.emit_expr(expr.cond)
        true_value, false_value = self.unify(self.emit_expr(expr.true_value), self.emit_expr(expr.false_value))
        if isinstance(cond.type, ir.VectorType) or isinstance(true_value.type, ir.VectorType):
            lanes = cond.type.count if isinstance(cond.type, ir.VectorType) else true_value.type.count
            cond, true_value, false_value = (self.broadcast(v, lanes) for v in (cond, true_value, false_value))
        return self.builder.select(cond, true_value, false_value)

    def _emit_cast(self, expr: Cast) -> ir.Value:
        operand = self.emit_expr(expr.operand)
        return conversions.cast(self.builder, operand, expr.operand.dtype, expr.dtype)

    # -- lanes ---------------------------------------------------------------------------------

    def broadcast(self, value: ir.Value, lanes: int) -> ir.Value:
        if isinstance(value.type, ir.VectorType):
            return value
        return splat(self.builder, value, lanes)

    def unify(self, a: ir.Value, b: ir.Value) -> tuple[ir.Value, ir.Value]:
        """Broadcast a scalar operand to the other's lane count."""
        if isinstance(a.type, ir.VectorType) and not isinstance(b.type, ir.VectorType):
            return a, splat(self.builder, b, a.type.count)
        if isinstance(b.type, ir.VectorType) and not isinstance(a.type, ir.VectorType):
            return splat(self.builder, a, b.type.count), b
        return a, b

    def lane_indices(self) -> ir.Value:
        """<lanes x i64> 0, 1, ..., lanes-1 of the current vector loop."""
        return iota(self.vector.lanes, I64)

    def emit_lane0(self, expr: Expr) -> ir.Value:
        """`expr` evaluated for lane 0 only (a scalar), e.g. the first address of a contiguous access."""
        vector = self.vector
        expr = substitute(expr, vector.varying)
        saved_vector, saved_var = self.vector, self.env[vector.var]
        self.env[vector.var] = vector.base
        self.vector = None  # lane-dependent lets are substituted, so scalar mode is exact here
        try:
            return self.emit_expr(expr)
        finally:
            self.vector = saved_vector
            self.env[vector.var] = saved_var


def _is_vector(value: ir.Value) -> bool:
    return isinstance(value.type, ir.VectorType)
