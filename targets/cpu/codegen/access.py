"""How an index expression moves with the lane of a vectorized loop: the facts vector codegen needs.

Inside `for v in b..b+W vectorize`, lane l runs the body with v = b + l*step. For an element offset
e(v) the code generator asks `lane_stride(e)`:

* 0     e does not depend on the lane (uniform): one scalar access, broadcast if needed;
* k     e(b + l*step) = e(b) + k*l for a constant k: k == 1 is a contiguous vector load/store at e(b);
* None  anything else (data-dependent, floordiv/mod of the lane, a non-constant multiplier): a
        per-lane gather/scatter.

Let-bound names that vary with the lane are looked through (their definitions are substituted), so
`let j = j0 + v; x[j]` is still contiguous. The analysis is exact for what it accepts: affine
combinations with integer constants are linear in l, and everything else is reported as None.
"""

from __future__ import annotations

from typing import Mapping

from ir.loops import Binary, Cast, Const, Expr, Load, Select, Unary, Var, map_expr


def lane_stride(expr: Expr, lane_var: str, step: int, varying: Mapping[str, Expr]) -> int | None:
    """The per-lane change of `expr` (see the module docstring); `varying` maps lane-dependent Let
    names to their definitions."""
    coefficient = _coefficient(expr, lane_var, varying)
    return None if coefficient is None else coefficient * step


def _coefficient(expr: Expr, lane_var: str, varying: Mapping[str, Expr]) -> int | None:
    if isinstance(expr, Const):
        return 0
    if isinstance(expr, Var):
        if expr.name == lane_var:
            return 1
        if expr.name in varying:
            return _coefficient(varying[expr.name], lane_var, varying)
        return 0
    if isinstance(expr, Binary):
        left = _coefficient(expr.left, lane_var, varying)
        right = _coefficient(expr.right, lane_var, varying)
        if left is None or right is None:
            return None
        if expr.op == "add":
            return left + right
        if expr.op == "sub":
            return left - right
        if expr.op == "mul":
            if left == 0 and right == 0:
                return 0
            if left == 0 and isinstance(expr.left, Const) and isinstance(expr.left.value, int):
                return expr.left.value * right
            if right == 0 and isinstance(expr.right, Const) and isinstance(expr.right.value, int):
                return expr.right.value * left
            return None
        return 0 if left == 0 and right == 0 else None
    if isinstance(expr, (Unary, Cast)):
        return 0 if _coefficient(expr.operand, lane_var, varying) == 0 else None
    if isinstance(expr, Select):
        parts = (expr.cond, expr.true_value, expr.false_value)
        return 0 if all(_coefficient(p, lane_var, varying) == 0 for p in parts) else None
    if isinstance(expr, Load):
        return 0 if all(_coefficient(i, lane_var, varying) == 0 for i in expr.indices) else None
    raise TypeError(f"not a loop IR expression: {expr!r}")


def is_uniform(expr: Expr, lane_var: str, varying: Mapping[str, Expr]) -> bool:
    return _coefficient(expr, lane_var, varying) == 0


def substitute(expr: Expr, definitions: Mapping[str, Expr]) -> Expr:
    """`expr` with every Var named in `definitions` replaced by its definition (recursively)."""
    if not definitions:
        return expr
    if isinstance(expr, Var):
        if expr.name in definitions:
            return substitute(definitions[expr.name], definitions)
        return expr
    return map_expr(expr, lambda child: substitute(child, definitions))
