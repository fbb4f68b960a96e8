"""Index algebra: simplify keeps values (checked with the reference evaluator), a quotient and
remainder pair reads back as its dividend, and guards that never hold or contradict are found."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ir.dtypes import DType
from ir.loop_eval import run_kernel
from ir.loop_printer import format_expr
from ir.loop_simplify import IMPOSSIBLE, Interval, affine, conjoin, guard_facts, never_holds, simplify
from ir.loops import Binary, Buffer, Const, Expr, Kernel, Let, Load, Store, Unary, Var

a, b = Var("a"), Var("b")


def add(x: Expr, y: Expr) -> Expr:
    return Binary("add", x, y)


def mul(x: Expr, c: int) -> Expr:
    return Binary("mul", x, Const(c))


def div(x: Expr, c: int) -> Expr:
    return Binary("floordiv", x, Const(c))


def mod(x: Expr, c: int) -> Expr:
    return Binary("mod", x, Const(c))


def evaluate(expr: Expr, values: dict[str, int]) -> int:
    """The value of an i64 expression, computed by ir.loop_eval (the definition)."""
    body = Store("out", (Const(0),), expr)
    for name, value in values.items():
        body = Let(name, Const(value), body)
    out = np.zeros(1, dtype=np.int64)
    run_kernel(Kernel("e", (Buffer("out", DType.I64, (1,)),), body, ("out",)), {"out": out})
    return int(out[0])


def test_a_quotient_and_remainder_pair_reads_back_as_its_dividend() -> None:
    e = add(mul(a, 3), add(b, Const(1)))
    assert format_expr(simplify(add(mul(div(e, 2), 2), mod(e, 2)))) == "a * 3 + b + 1"
    assert format_expr(simplify(add(mod(e, 4), mul(div(e, 4), 4)))) == "a * 3 + b + 1"  # either order
    assert format_expr(simplify(add(mul(div(e, 4), 8), mul(mod(e, 4), 2)))) == "a * 6 + b * 2 + 2"  # scaled
    nested = add(mul(div(add(mul(div(a, 2), 2), mod(a, 2)), 3), 3), mod(a, 3))
    assert format_expr(simplify(nested)) == "a"  # the inner pair merges first, then the outer one
    # Why the failing hypothesis example printed `(t + 3) // 2 * 2 + (t + 3) % 2`: fusing a split.
    t = Var("t")
    assert format_expr(simplify(add(mul(div(add(t, Const(3)), 2), 2), mod(add(t, Const(3)), 2)))) == "t + 3"


def test_pairs_that_do_not_recombine_stay() -> None:
    for expr in (add(mul(div(a, 2), 3), mod(a, 2)),  # coefficient is not k * c
                 add(mul(div(a, 2), 2), mod(a, 3)),  # different divisors
                 add(mul(div(a, 2), 2), mod(b, 2)),  # different dividends
                 add(mul(div(a, -2), -2), mod(a, -2)),  # negative divisor: not merged
                 add(mul(Binary("floordiv", a, b), 2), Binary("mod", a, b))):  # non-constant divisor
        assert affine(simplify(expr)) != affine(a), format_expr(expr)
        for values in ({"a": 7, "b": 2}, {"a": -5, "b": 3}):
            assert evaluate(simplify(expr), values) == evaluate(expr, values)


LEAF = st.one_of(st.sampled_from([a, b]), st.integers(-4, 6).map(Const))


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.builds(Binary, st.sampled_from(["add", "sub"]), children, children),
        st.builds(mul, children, st.integers(-3, 4)),
        st.builds(Binary, st.sampled_from(["floordiv", "mod"]), children, st.integers(1, 4).map(Const)),
        st.builds(lambda e, c, k: add(mul(div(e, c), c * k), mul(mod(e, c), k)), children, st.integers(1, 4),
                  st.integers(-2, 3)),  # the pair, often inside other arithmetic
        st.builds(Binary, st.sampled_from(["maximum", "minimum"]), children, children),
        st.builds(Unary, st.just("neg"), children))


@settings(max_examples=40, deadline=None)
@given(st.recursive(LEAF, _extend, max_leaves=6), st.integers(-9, 9), st.integers(-9, 9))
def test_simplify_keeps_the_value_of_index_expressions(expr: Expr, x: int, y: int) -> None:
    assert evaluate(simplify(expr), {"a": x, "b": y}) == evaluate(expr, {"a": x, "b": y}), format_expr(expr)


def test_never_holds_uses_the_ranges_of_the_variables() -> None:
    t = Var("t")
    tail = Binary("lt", add(mul(div(add(t, Const(3)), 2), 2), mod(add(t, Const(3)), 2)), Const(3))
    ranges = {"t": Interval(0, 0, True, frozenset({"t"})), "a": Interval(0, 3, True, frozenset({"a"}))}
    assert never_holds(tail, ranges)  # the dead tail of a guarded split, after a fuse
    assert not never_holds(tail, ranges, negate=True)
    assert not never_holds(Binary("lt", a, Const(2)), ranges)
    assert never_holds(Binary("gt", a, Const(3)), ranges)
    assert never_holds(Binary("logical_and", Binary("lt", a, Const(2)), Binary("ge", a, Const(4))), ranges)
    assert not never_holds(Binary("logical_or", Binary("lt", a, Const(2)), Binary("ge", a, Const(4))), ranges)
    assert never_holds(Unary("logical_not", Binary("le", a, Const(3))), ranges)
    assert never_holds(Const(False, DType.BOOL), ranges) and not never_holds(Const(True, DType.BOOL), ranges)
    assert not never_holds(Binary("lt", b, Const(0)), ranges)  # b is unbounded


def test_guard_facts_cover_pure_atoms_and_contradictions_are_impossible() -> None:
    quotient = div(a, 5)
    facts = guard_facts(Binary("lt", add(mul(b, 2), quotient), Const(3)))
    assert facts is not None and facts[0].hi == 2 and facts[0].names == {"a", "b"}
    assert guard_facts(Binary("lt", Binary("floordiv", a, b), Const(3))) is not None  # no memory read
    assert guard_facts(Binary("lt", Load("n", (Const(0),), DType.I64), a)) is None  # reads memory
    below = guard_facts(Binary("lt", a, Const(2)))
    above = guard_facts(Binary("ge", a, Const(4)))
    assert conjoin(tuple(below), above) == (IMPOSSIBLE,)
    assert conjoin(tuple(below), guard_facts(Binary("ge", a, Const(1))))[0].lo == 1
