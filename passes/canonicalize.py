"""canonicalize (graph IR): fold constants and remove operations that do not change their operand.

Rules (each a named function below, applied by the greedy driver of `passes.rewrite`):

    fold-constants         op(c1, c2)       -> c      elementwise op of splat constants, evaluated once
    fold-view-of-constant  view(c)          -> c      a splat has the same value at any shape
    mul-by-one / div-by-one   x * 1, x / 1  -> x
    add-zero / sub-zero    x + 0, x - 0     -> x      (floats: see below)
    mul-by-zero            x * 0            -> 0      integers only (for floats, inf * 0 is nan)
    pow-two / pow-one      x ** 2 -> x * x,  x ** 1 -> x
    neg-neg                -(-x)            -> x
    transpose-transpose    transpose(transpose(x, p), q) -> transpose(x, p . q), or x
    reshape-reshape        reshape(reshape(x)) -> reshape(x), or x
    identity-view          transpose by the identity, reshape/broadcast_to to the same shape,
                           a slice of everything -> x
    cast-same              cast(x to x's dtype) -> x
    cast-round-trip        cast(cast(x to a wider type) back to x's dtype) -> x
    select-same / select-constant   select(c, x, x) -> x;  select(true, a, b) -> a
    concat-one             concat(x) -> x

Why each is legal: a rule applies only when the result has exactly the type of the node it replaces
(so no shape hidden in a broadcast is lost), and its value is bit-for-bit the node's value as the
reference interpreter computes it: constants are folded with the interpreter's own `evaluate_node`;
x * 1, x / 1, x - (+0) and x ** 1 are exact in IEEE arithmetic; x + 0 is folded for integers and for
x + (-0.0) only, because (-0.0) + (+0.0) is +0.0 (so `1 / (x + 0)` could change sign); casting to a
wider type and back is lossless. Nodes already in fusion groups are left alone, so canonicalize can
run after fusion without breaking a group's contract.
"""

from __future__ import annotations

import math

import numpy as np

from ir import ops
from ir.dtypes import DType, to_numpy
from ir.graph import Graph
from ir.interpreter import evaluate_node
from ir.types import TensorType
from passes.context import PassContext
from passes.registry import Pass, register_pass
from passes.rewrite import Match, Rewriter, Rule, RuleSet, any_value, apply_rules, constant, op, ungrouped


def _same_type(match: Match, name: str = "x") -> bool:
    return match.node(name).type == match.root_node.type


def _splat(match: Match, name: str = "c") -> float | int | bool:
    return match.node(name).attr("value")


def _as_python(value: np.ndarray, dtype: DType) -> float | int | bool:
    item = value.reshape(()).item()
    if dtype.is_bool:
        return bool(item)
    if dtype.is_int:
        return int(item)
    return float(item)


# -- constants -------------------------------------------------------------------------------------


def _all_operands_constant(match: Match) -> bool:
    return all(match.graph.node(o).op == "constant" for o in match.graph.operands(match.root))


def fold_constants(rw: Rewriter, match: Match) -> int | None:
    root = match.root_node
    scalar = root.replace(type=TensorType((), root.type.dtype))
    values = []
    for operand in rw.graph.operands(match.root):
        node = rw.graph.node(operand)
        values.append(to_numpy(np.full((), node.attr("value"), dtype=node.type.dtype.numpy), node.type.dtype))
    result = evaluate_node(scalar, values)
    return rw.constant(_as_python(result, root.type.dtype), root.type)


def fold_view_of_constant(rw: Rewriter, match: Match) -> int:
    return rw.constant(_splat(match), match.root_node.type)


# -- arithmetic identities -------------------------------------------------------------------------


def _is_positive_zero(value: float | int | bool) -> bool:
    return value == 0 and not isinstance(value, bool) and math.copysign(1.0, value) > 0


def mul_by_one(rw: Rewriter, match: Match) -> int | None:
    return match["x"] if _same_type(match) else None


def div_by_one(rw: Rewriter, match: Match) -> int | None:
    return match["x"] if _same_type(match) else None


def add_zero(rw: Rewriter, match: Match) -> int | None:
    value = _splat(match)
    exact = match.root_node.type.dtype.is_int or (value == 0 and math.copysign(1.0, value) < 0)
    return match["x"] if exact and _same_type(match) else None


def sub_zero(rw: Rewriter, match: Match) -> int | None:
    value = _splat(match)
    exact = match.root_node.type.dtype.is_int or _is_positive_zero(value)
    return match["x"] if exact and _same_type(match) else None


def mul_by_zero(rw: Rewriter, match: Match) -> int | None:
    if not match.root_node.type.dtype.is_int:
        return None
    return rw.constant(0, match.root_node.type)


def pow_two(rw: Rewriter, match: Match) -> int | None:
    if not _same_type(match):
        return None
    return rw.add("mul", [match["x"], match["x"]])


def pow_one(rw: Rewriter, match: Match) -> int | None:
    return match["x"] if _same_type(match) else None


def neg_neg(rw: Rewriter, match: Match) -> int:
    return match["x"]


# -- views -----------------------------------------------------------------------------------------


def transpose_transpose(rw: Rewriter, match: Match) -> int:
    inner = match.node("inner").attr("perm")
    outer = match.root_node.attr("perm")
    perm = tuple(inner[axis] for axis in outer)
    if perm == tuple(range(len(perm))):
        return match["x"]
    return rw.add("transpose", [match["x"]], {"perm": perm})


def reshape_reshape(rw: Rewriter, match: Match) -> int:
    if _same_type(match):
        return match["x"]
    return rw.add("reshape", [match["x"]], {"shape": match.root_node.attr("shape")})


def identity_view(rw: Rewriter, match: Match) -> int | None:
    root = match.root_node
    if not _same_type(match):
        return None
    if root.op == "transpose" and root.attr("perm") != tuple(range(root.type.rank)):
        return None  # a square transpose keeps the type but not the values
    if root.op == "slice" and (any(root.attr("starts")) or any(s != 1 for s in root.attr("steps"))):
        return None
    return match["x"]


def cast_same(rw: Rewriter, match: Match) -> int | None:
    return match["x"] if _same_type(match) else None


_FLOAT_BITS = {DType.BF16: (8, 8), DType.F16: (5, 11), DType.F32: (8, 24), DType.F64: (11, 53)}


def _lossless(narrow: DType, wide: DType) -> bool:
    """Whether every value of `narrow` survives a cast to `wide` (and so the cast back is exact)."""
    if narrow.is_bool:
        return True
    if narrow.is_float and wide.is_float:
        (e1, m1), (e2, m2) = _FLOAT_BITS[narrow], _FLOAT_BITS[wide]
        return e2 >= e1 and m2 >= m1
    if narrow.is_int and wide.is_int:
        return wide.bits >= narrow.bits
    if narrow.is_int and wide.is_float:
        return _FLOAT_BITS[wide][1] >= narrow.bits
    return False


def cast_round_trip(rw: Rewriter, match: Match) -> int | None:
    original = match.node("x").type.dtype
    if not _same_type(match) or not _lossless(original, match.node("inner").type.dtype):
        return None
    return match["x"]


# -- control and shape -----------------------------------------------------------------------------


def select_same(rw: Rewriter, match: Match) -> int | None:
    return match["x"] if _same_type(match) else None


def select_constant(rw: Rewriter, match: Match) -> int | None:
    chosen = "a" if match.node("cond").attr("value") else "b"
    return match[chosen] if _same_type(match, chosen) else None


def concat_one(rw: Rewriter, match: Match) -> int | None:
    (only,) = rw.graph.operands(match.root)
    return only if rw.graph.node(only).type == match.root_node.type else None


def _one_operand(match: Match) -> bool:
    return len(match.graph.operands(match.root)) == 1


ROOT = ungrouped
# Every rule reads only the root, its operands (depth 1) and, for the nested patterns, their operands
# (depth 2), and changes the graph only through the Rewriter: see `Rule.depth`.
RULES = RuleSet(
    Rule(op(None, group=ops.ELEMENTWISE, where=ROOT), fold_constants, guard=_all_operands_constant, depth=1),
    Rule(op(None, constant(capture="c"), group=ops.VIEW, where=ROOT), fold_view_of_constant, depth=1),
    Rule(op("mul", any_value("x"), constant(1), where=ROOT), mul_by_one, depth=1),
    Rule(op("div", any_value("x"), constant(1), where=ROOT), div_by_one, depth=1),
    Rule(op("add", any_value("x"), constant(0, capture="c"), where=ROOT), add_zero, depth=1),
    Rule(op("sub", any_value("x"), constant(0, capture="c"), where=ROOT), sub_zero, depth=1),
    Rule(op("mul", any_value("x"), constant(0), where=ROOT), mul_by_zero, depth=1),
    Rule(op("pow", any_value("x"), constant(2), where=ROOT), pow_two, depth=1),
    Rule(op("pow", any_value("x"), constant(1), where=ROOT), pow_one, depth=1),
    Rule(op("neg", op("neg", any_value("x")), where=ROOT), neg_neg, depth=2),
    Rule(op("transpose", op("transpose", any_value("x"), capture="inner"), where=ROOT), transpose_transpose,
         depth=2),
    Rule(op("reshape", op("reshape", any_value("x")), where=ROOT), reshape_reshape, depth=2),
    Rule(op(("transpose", "reshape", "broadcast_to", "slice"), any_value("x"), where=ROOT), identity_view, depth=1),
    Rule(op("cast", any_value("x"), where=ROOT), cast_same, depth=1),
    Rule(op("cast", op("cast", any_value("x"), capture="inner"), where=ROOT), cast_round_trip, depth=2),
    Rule(op("select", any_value(), any_value("x"), any_value("x"), where=ROOT), select_same, depth=1),
    Rule(op("select", constant(capture="cond"), any_value("a"), any_value("b"), where=ROOT), select_constant,
         depth=1),
    Rule(op("concat", where=ROOT), concat_one, guard=_one_operand, depth=1),
)


@register_pass
class Canonicalize(Pass):
    name = "canonicalize"
    summary = "fold constants and drop no-op arithmetic, views and casts (x*1, x+0, double transposes, ...)"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return apply_rules(graph, RULES, ctx=ctx).graph
